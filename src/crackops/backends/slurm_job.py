"""The job side of the Slurm backend: what a training job running in a Slurm allocation asks of
Slurm (time left before its limit, a requeue). ``crackops.backends.job_control`` picks it when the
job's environment says it runs under Slurm; ``crackops.job`` uses it through ``JobControl``."""

from __future__ import annotations

import os
import subprocess

from crackops.backends.base import JobControl
from crackops.config import TrainConfig
from crackops.slurm.units import parse_duration_s


class SlurmJobControl(JobControl):
    limit_signal = True   # the batch script asks Slurm for --signal=B:USR1@... (backends/slurm.py)

    def __init__(self, job_id: str):
        self.job_id = job_id

    def time_left_s(self) -> float | None:
        """Seconds before this job's time limit (``squeue %L``), or None."""
        try:
            p = subprocess.run(["squeue", "-h", "-j", self.job_id, "-o", "%L"], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else ""
        return parse_duration_s(text) if text and text[0].isdigit() else None

    def requeue(self) -> str | None:
        """``scontrol requeue`` this job; None when done, else why not."""
        try:
            p = subprocess.run(["scontrol", "requeue", self.job_id], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
        return None if p.returncode == 0 else (p.stderr.strip() or f"exit {p.returncode}")


def from_env(config: TrainConfig, job_id: str) -> SlurmJobControl | None:
    """The job's control when it runs in a Slurm allocation (``SLURM_JOB_ID``) and its id is
    Slurm's (a backend that set ``config.job_id`` runs it itself)."""
    if os.environ.get("SLURM_JOB_ID") and not config.job_id:
        return SlurmJobControl(job_id)
    return None
