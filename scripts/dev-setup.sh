#!/usr/bin/env bash
# Create .venv and install crackops with TensorFlow and the test tools. Idempotent.
#   CRACKOPS_TF_EXTRA=gpu  installs the full tensorflow wheel (NVIDIA GPUs) instead of tensorflow-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRA=${CRACKOPS_TF_EXTRA:-cpu}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "crackops needs Python >= 3.10" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.crackops-installed
want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$EXTRA"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRA,test]"
  echo "$want" >"$stamp"
fi
echo "crackops is installed in .venv (run .venv/bin/crackops, or: source .venv/bin/activate)" >&2
