"""Where crackops keeps things. Everything moves with environment variables.

- ``CRACKOPS_HOME``: the state directory (registry, job specs). Default ``~/.crackops``.
- ``CRACKOPS_OUT``: where runs write ``<job_id>/`` artifact folders. Default ``./out``.
- ``CRACKOPS_LOGS``: where ``cnn_crack_<job_id>.out/.err`` go. Default ``./logs``.

Out and logs directories are resolved to absolute paths at submit time and stored with the run,
so later commands work from any directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from crackops.errors import UsageError

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")


def state_dir() -> Path:
    p = Path(os.environ.get("CRACKOPS_HOME") or Path.home() / ".crackops").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_out_root() -> Path:
    return Path(os.environ.get("CRACKOPS_OUT") or "out").expanduser().resolve()


def default_logs_dir() -> Path:
    return Path(os.environ.get("CRACKOPS_LOGS") or "logs").expanduser().resolve()


def validate_job_id(job_id: str) -> str:
    """Job ids end up in paths: refuse anything that could escape a folder."""
    job_id = str(job_id).strip()
    if not JOB_ID_RE.match(job_id) or ".." in job_id:
        raise UsageError(
            f"invalid job id {job_id!r}",
            "job ids are letters, digits, '_', '-', '.', '+'; see `crackops status` for the ids you have",
        )
    return job_id


def log_paths(logs_dir: Path, job_id: str, job_name: str = "cnn_crack") -> tuple[Path, Path]:
    return logs_dir / f"{job_name}_{job_id}.out", logs_dir / f"{job_name}_{job_id}.err"
