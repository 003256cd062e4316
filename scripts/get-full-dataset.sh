#!/usr/bin/env bash
# Get Özgenel's full "Concrete Crack Images for Classification" (40,000 photos, CC BY 4.0,
# doi:10.17632/5y9wdsg2zt.2) into a local folder, verify it byte for byte, check it with
# `crackops data check`, and list its duplicate groups. Never commit the data.
#
#   bash scripts/get-full-dataset.sh [DEST]          # default DEST: datasets/concrete-full
#   CRACKOPS_DATASET_ARCHIVE=/path/to/archive.(rar|zip) bash scripts/get-full-dataset.sh   # a copy you have
#
# Sources, in order: an archive you name; the official Mendeley Data release; a public Git copy of
# the same files (laveenbhatia/Surface-Crack-Detection-Using-Deep-Learning, which splits each class
# into 18,000 training + 2,000 testing files; they are merged back). Whatever the source, the result
# must match the digest below (every file's name and SHA-256; two independent public copies agree
# on it), or the script stops.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-datasets/concrete-full}
# sha256 over the sorted lines "<class>/<file name> <sha256 of the file>" of all 40,000 files
DIGEST=c4762e3ae0348967afd910b7b134b1ff3f0a02b701bfa68ffacaaad3095fb475
MENDELEY="https://data.mendeley.com/public-files/datasets/5y9wdsg2zt/files/8a70d8a5-bce9-4291-bab9-b48cfb3e87c3/file_downloaded"
GITCOPY="https://github.com/laveenbhatia/Surface-Crack-Detection-Using-Deep-Learning.git"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

digest() {  # digest DIR -> the digest above, computed
  "$PY" - "$1" <<'EOF'
import hashlib, sys
from pathlib import Path
root = Path(sys.argv[1])
lines = []
for cls in ("Negative", "Positive"):
    for p in sorted((root / cls).iterdir()):
        lines.append(f"{cls}/{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}")
print(len(lines), hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest())
EOF
}

unpack() {  # unpack ARCHIVE DIR
  case "$1" in
    *.zip) "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2" ;;
    *) command -v unar >/dev/null || { apt-get install -y -q unar >/dev/null 2>&1 || { echo "install unar (or 7z) to unpack $1" >&2; exit 1; }; }
       unar -q -o "$2" "$1" >/dev/null ;;
  esac
  # a zip may wrap the rar
  find "$2" -maxdepth 2 -name '*.rar' -print0 | while IFS= read -r -d '' r; do unar -q -o "$2" "$r" >/dev/null; done
}

collect_classes() {  # collect_classes SRC DEST: every */Positive/*.jpg and */Negative/*.jpg under SRC into DEST
  mkdir -p "$2/Positive" "$2/Negative"
  for cls in Positive Negative; do
    find "$1" -type d -iname "$cls" -print0 | while IFS= read -r -d '' d; do
      find "$d" -maxdepth 1 -type f -iname '*.jpg' -exec mv -n -t "$2/$cls" {} +
    done
  done
}

if [ -d "$DEST/Positive" ] && [ -d "$DEST/Negative" ]; then
  echo "$DEST already holds Positive/ and Negative/; verifying" >&2
else
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/crackops-dataset.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if [ -n "${CRACKOPS_DATASET_ARCHIVE:-}" ]; then
    unpack "$CRACKOPS_DATASET_ARCHIVE" "$tmp/x"
  elif curl -fL --retry 2 -o "$tmp/release.rar" "$MENDELEY" 2>/dev/null; then
    unpack "$tmp/release.rar" "$tmp/x"
  elif git clone -q --depth 1 "$GITCOPY" "$tmp/x"; then
    :
  else
    echo "could not download the dataset; get the archive from https://data.mendeley.com/datasets/5y9wdsg2zt/2 and set CRACKOPS_DATASET_ARCHIVE" >&2
    exit 1
  fi
  collect_classes "$tmp/x" "$tmp/full"
  mkdir -p "$(dirname "$DEST")"
  mv "$tmp/full" "$DEST"
fi

read -r n got < <(digest "$DEST")
if [ "$n" != 40000 ] || [ "$got" != "$DIGEST" ]; then
  echo "$DEST: $n files, digest $got; expected 40000 files with digest $DIGEST (a changed or partial copy)" >&2
  exit 1
fi
echo "$DEST: 40,000 files, identical to the published release (digest ${DIGEST:0:16}...)" >&2
.venv/bin/crackops data check "$DEST" >&2 || true
.venv/bin/crackops data check "$DEST" --json | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
root = d["data_dir"].rstrip("/") + "/"
groups = sorted(sorted(p.replace(root, "") for p in g) for g in d["duplicates"])
print(f"# {len(groups)} groups of byte-identical files ({sum(len(g) - 1 for g in groups)} extra copies), all within a class")
for g in groups:
    print(" ".join(g))
' > "$DEST.duplicates.txt"
echo "duplicate groups listed in $DEST.duplicates.txt" >&2
