"""Provenance: which code, packages and data a run used, recorded at submit and again at start.

At submit (``crackops.api``) every run gets one ``provenance`` dict, stored in the registry and
written to ``out/<job_id>/provenance.json`` under ``"submit"``:

- ``crackops``: the version and ``source_sha256``, a digest of the installed package's ``.py``
  files (a version string does not change when someone edits the source in place);
- ``git``: commit, dirty flag and root of the git work tree the command was run from, if any;
- ``python`` and ``packages`` (every installed distribution and its version, like ``pip freeze``);
- ``config``: the resolved ``TrainConfig``; ``command``: the exact command line;
- ``dataset``: a content fingerprint of each data folder (see :func:`dataset_fingerprint`).

At start the job (``crackops.job``) adds ``"start"``: the crackops version and source digest it
actually imported, Python, host and time. The job runs whatever crackops is installed when it
starts, not a copy of the code at submit time: a run queued while the installed crackops changed
runs the new code. ``crackops status`` shows such a run as "code changed" (``code_changed``).

Nothing here imports TensorFlow, ``crackops.api`` or the registry (the job imports this module).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

PROVENANCE_FILE = "provenance.json"
SCHEMA = 1
FINGERPRINT_CACHE = "fingerprints.json"


# ------------------------------------------------------------------ code

@lru_cache(maxsize=1)
def code_identity() -> dict[str, Any]:
    """The crackops this process imported: version, package folder, digest of its ``.py`` files."""
    import crackops

    root = Path(crackops.__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        h.update(str(p.relative_to(root)).encode() + b"\0")
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
        h.update(b"\0")
    return {"version": crackops.__version__, "source_sha256": h.hexdigest(), "path": str(root)}


def code_changed(submit: dict[str, Any] | None, start: dict[str, Any] | None) -> bool | None:
    """Whether the code a job started with differs from the code recorded at submit (None: unknown)."""
    a, b = (submit or {}).get("crackops"), (start or {}).get("crackops")
    if not a or not b:
        return None
    return (a.get("version"), a.get("source_sha256")) != (b.get("version"), b.get("source_sha256"))


def git_info(cwd: str | Path | None = None) -> dict[str, Any] | None:
    """Commit, dirty flag and root of the git work tree around ``cwd``; None outside one (or no git)."""
    cwd = str(cwd or os.getcwd())

    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    if not root:
        return None
    commit = git("rev-parse", "HEAD")
    porcelain = git("status", "--porcelain", "--untracked-files=no")
    return {"root": root, "commit": commit, "dirty": bool(porcelain) if porcelain is not None else None,
            "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


@lru_cache(maxsize=1)
def installed_packages() -> dict[str, str]:
    """``{distribution: version}`` of everything importable here, like ``pip freeze``."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") if dist.metadata else None
        if name and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def python_info() -> dict[str, Any]:
    return {"version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable}


# ------------------------------------------------------------------ data

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dataset_files(data_dir: Path) -> list[tuple[str, str, os.stat_result]]:
    """``(class/name, path, stat)`` of the image files directly in each class folder, sorted."""
    out = []
    for cls_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for entry in os.scandir(cls_dir):
            try:
                entry.name.encode("utf-8")
                if entry.is_file() and not entry.name.startswith(".") \
                        and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTS:
                    out.append((f"{cls_dir.name}/{entry.name}", entry.path, entry.stat()))
            except (OSError, UnicodeEncodeError):   # a link loop, a name not UTF-8: not used (the scan says so)
                continue
    out.sort()
    return out


def dataset_fingerprint(data_dir: str | Path, *, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """A content fingerprint of a dataset: sha256 over the sorted ``(class/name, sha256 of the
    file)`` list, so the same names with other pixels give another fingerprint. With ``cache_dir``,
    a file's digest is reused while its size and modification time stay the same."""
    root = Path(data_dir).expanduser().resolve()
    files = _dataset_files(root)
    cache: dict[str, Any] = {}
    cache_path = Path(cache_dir) / FINGERPRINT_CACHE if cache_dir else None
    if cache_path is not None:
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
    changed = False
    h = hashlib.sha256()
    total = 0
    by_digest: dict[str, list[str]] = {}
    for key, path, st in files:
        stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        hit = cache.get(path)
        if hit and hit[0] == stamp:
            digest = hit[1]
        else:
            digest = _file_sha256(path)
            cache[path] = [stamp, digest]
            changed = True
        total += st.st_size
        h.update(f"{key}\0{digest}\n".encode())
        by_digest.setdefault(digest, []).append(key)
    if cache_path is not None and changed:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        except OSError:
            pass
    conflicts = [keys for keys in by_digest.values()
                 if len({k.split("/", 1)[0].lower() for k in keys} & {"positive", "negative"}) > 1]
    return {"path": str(root), "files": len(files), "bytes": total, "sha256": h.hexdigest(),
            "method": "sha256 of sorted (class/name, file sha256)", "label_conflicts": conflicts}


# ------------------------------------------------------------------ records

def command_line(argv: Iterable[str] | None = None) -> str:
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = os.path.basename(args[0]) if args[0].endswith("crackops") else args[0]
    return shlex.join(args)


def collect(config: dict[str, Any], *, argv: Iterable[str] | None = None, cwd: str | Path | None = None,
            cache_dir: str | Path | None = None, with_packages: bool = True) -> dict[str, Any]:
    """The submit-time provenance of a run with this (resolved) ``config``."""
    datasets = {}
    for key in ("data_dir", "test_dir"):
        d = config.get(key)
        if d and Path(d).is_dir():
            datasets[key] = dataset_fingerprint(d, cache_dir=cache_dir)
    return {
        "schema": SCHEMA,
        "recorded_at": time.time(),
        "crackops": code_identity(),
        "git": git_info(cwd),
        "python": python_info(),
        "packages": installed_packages() if with_packages else {},
        "config": dict(config),
        "command": command_line(argv),
        "cwd": str(Path(cwd or os.getcwd()).resolve()),
        "host": socket.gethostname(),
        "dataset": datasets,
    }


def for_run(base: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``base`` (collected once for a sweep) with one run's config."""
    return {**base, "config": dict(config)}


def at_start() -> dict[str, Any]:
    """What the job records when it starts: the code it really imported."""
    return {"recorded_at": time.time(), "crackops": code_identity(), "python": python_info(),
            "host": socket.gethostname(), "pid": os.getpid()}


def merge_file(out_dir: str | Path, section: str, data: dict[str, Any]) -> Path:
    """Set ``section`` of ``out_dir/provenance.json``, keeping the other sections. The submitting
    process and the job may write at the same moment: a lock file serialises them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PROVENANCE_FILE
    with open(out / f".{PROVENANCE_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                doc = {"schema": SCHEMA}
            doc[section] = data
            if "submit" in doc and "start" in doc:
                doc["code_changed"] = code_changed(doc["submit"], doc["start"])
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc, indent=2, default=str))
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def read_file(out_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(out_dir) / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None
