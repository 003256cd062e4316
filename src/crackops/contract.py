"""The run contract: what a training job and the tools around it agree on.

One place for the names of the files a run leaves behind, the two small JSON files that say how a
job is doing, and the environment a job reads to learn who it is and what it was given. The job
(``crackops.job``, ``crackops.ml``), the backends, ``crackops.artifacts`` (collect) and the report
all use it. Standard library only: no TensorFlow, no registry, no rich.

Files in ``out/<job_id>/`` (written by the job)
    ``SEED_ARTIFACTS`` (the seed's files), ``PREDICTIONS`` and ``MANIFEST``: ``manifest.json``,
    written last and atomically, ``"schema": MANIFEST_SCHEMA``, ``"status": "completed"`` and the
    keys in ``MANIFEST_KEYS``; its presence means the training finished.
    ``STATUS_FILE``: ``status.json``, the job's own account, ``"phase"`` one of ``PHASES``
    (running, then completed / failed / cancelled), with pid, host, times and, on failure, the
    exception. It tells "crashed" from "finished" when the scheduler cannot.

File beside a local job's spec (written by the local backend's runner)
    ``STATE_FILE``: ``state.json``, ``"state"`` in Slurm's names (PENDING, RUNNING, COMPLETED,
    FAILED, CANCELLED, OUT_OF_MEMORY), with pid, times, reason and exit code.

Environment the job reads
    Job id: ``config.job_id`` when the backend set it (local), else ``CRACKOPS_JOB_ID``, else
    Slurm's ``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID`` (``<array>_<task>``), else
    ``SLURM_JOB_ID``. A new scheduler backend exports ``CRACKOPS_JOB_ID`` in its job script.
    CPUs: ``CRACKOPS_CPUS`` (set by the local backend, or by hand), else ``SLURM_CPUS_PER_TASK``,
    else the process' CPU affinity. TensorFlow's thread pools and the image scanner's workers both
    use :func:`allocated_cpus`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- out/<job_id>/

MODEL_FILE = "best.h5"                         # the best epoch's model, stock Keras
SEED_ARTIFACTS = ("confusion_train.png", "confusion_test.png", "history_loss.png", "metrics.txt", MODEL_FILE)
PREDICTIONS = "predictions_test.csv"          # path,label,prob_crack for every test image
PREDICTIONS_COLUMNS = ("path", "label", "prob_crack")
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
#: What a finished run's manifest holds (``ml/train.py`` writes it; the report and collect read it).
MANIFEST_KEYS = ("schema", "job_id", "status", "config", "metrics", "history", "epochs_run", "best_epoch",
                 "dataset", "versions", "runtime", "started_at", "ended_at", "wall_time_s", "artifacts")
#: What ``collect`` requires of a finished run: the seed's files and the manifest.
EXPECTED = SEED_ARTIFACTS + (MANIFEST,)

STATUS_FILE = "status.json"
PHASES = ("running", "completed", "failed", "cancelled")

# ---------------------------------------------------------------- beside a local job's spec

STATE_FILE = "state.json"

# ---------------------------------------------------------------- environment

JOB_ID_ENV = "CRACKOPS_JOB_ID"
CPUS_ENV = "CRACKOPS_CPUS"
SLURM_JOB_ID_ENV = "SLURM_JOB_ID"
SLURM_ARRAY_JOB_ENV = "SLURM_ARRAY_JOB_ID"
SLURM_ARRAY_TASK_ENV = "SLURM_ARRAY_TASK_ID"
SLURM_CPUS_ENV = "SLURM_CPUS_PER_TASK"


# ---------------------------------------------------------------- JSON files

def write_json_atomic(path: Path | str, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON so a reader never sees half a file (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: Path | str) -> dict[str, Any] | None:
    """A JSON file's content, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_status(out_dir: Path | str) -> dict[str, Any] | None:
    """``out_dir/status.json`` (``phase``, ``error``...), or None."""
    return read_json(Path(out_dir) / STATUS_FILE)


def write_status(out_dir: Path | str, data: Mapping[str, Any]) -> None:
    write_json_atomic(Path(out_dir) / STATUS_FILE, data)


def read_state(job_dir: Path | str) -> dict[str, Any] | None:
    """A local job's ``state.json`` (``state``, ``pid``...) in its job folder, or None."""
    return read_json(Path(job_dir) / STATE_FILE)


def write_state(job_dir: Path | str, data: Mapping[str, Any]) -> None:
    write_json_atomic(Path(job_dir) / STATE_FILE, data)


def read_manifest(out_dir: Path | str) -> dict[str, Any] | None:
    """``out_dir/manifest.json``, or None (not finished, or not readable)."""
    return read_json(Path(out_dir) / MANIFEST)


# ---------------------------------------------------------------- who am I, what was I given

def job_id_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The job id the scheduler gave this process (see the module notes), or None outside a job."""
    env = os.environ if env is None else env
    if env.get(JOB_ID_ENV):
        return env[JOB_ID_ENV]
    array_job, task = env.get(SLURM_ARRAY_JOB_ENV), env.get(SLURM_ARRAY_TASK_ENV)
    if array_job and task:
        return f"{array_job}_{task}"
    return env.get(SLURM_JOB_ID_ENV) or None


def in_slurm_job(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs inside a Slurm job (Slurm, through submitit, owns its signals)."""
    env = os.environ if env is None else env
    return bool(env.get(SLURM_JOB_ID_ENV))


def allocated_cpus(env: Mapping[str, str] | None = None) -> int:
    """CPUs this job may use: ``CRACKOPS_CPUS``, else ``SLURM_CPUS_PER_TASK``, else the CPU
    affinity of the process (values that are not positive integers are ignored)."""
    env = os.environ if env is None else env
    for var in (CPUS_ENV, SLURM_CPUS_ENV):
        v = (env.get(var) or "").strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (macOS)
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------ job control
# What the job's signal handlers and the Slurm time limit (crackops.job) tell the training
# (crackops.ml.train), read at every epoch end.

class Requeue(Exception):
    """Raised by the training when it stopped at an epoch end to be requeued (time limit near,
    or a requeue asked for by SIGUSR1): its backup is complete."""


#: What the signal handlers and the Slurm time limit tell the training (read at epoch ends).
CONTROL: dict[str, Any] = {"stop": None, "deadline": None, "interrupted": None}

#: Seconds kept free before the time limit, on top of 1.5 x the longest epoch.
REQUEUE_MARGIN_S = float(os.environ.get("CRACKOPS_REQUEUE_MARGIN_S", "20"))


def stop_reason(longest_epoch_s: float) -> str | None:
    """Why the training should stop at this epoch end to be requeued, or None."""
    if CONTROL["stop"]:
        return CONTROL["stop"]
    deadline = CONTROL["deadline"]
    if deadline is not None and time.time() + 1.5 * longest_epoch_s + REQUEUE_MARGIN_S > deadline:
        return f"time limit in {max(0.0, deadline - time.time()):.0f} s: less than one more epoch"
    return None
