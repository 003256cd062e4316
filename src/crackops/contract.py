"""The run contract: what a training job and the tools around it agree on.

One place for the names of the files a run leaves behind, the two small JSON files that say how a
job is doing, and the environment a job reads to learn who it is and what it was given. The job
(``crackops.job``, ``crackops.ml``), the backends, ``crackops.artifacts`` (collect) and the report
all use it. Standard library only: no TensorFlow, no registry, no rich.

Files in ``out/<job_id>/`` (written by the job)
    ``SEED_ARTIFACTS`` (the seed's files), ``PREDICTIONS`` and ``MANIFEST``: ``manifest.json``,
    written last and atomically, ``"schema": MANIFEST_SCHEMA``, ``"status": "completed"`` and the
    keys in ``MANIFEST_KEYS``; its presence means the training finished.
    ``TENSORBOARD_DIR``: ``tensorboard/``, the event files (optional, never required by collect).
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
#: What ``collect`` requires of a finished run: the seed's files, the test predictions and the manifest.
EXPECTED = SEED_ARTIFACTS + (PREDICTIONS, MANIFEST)
#: TensorBoard event files (``train/``, ``validation/``), written by Keras' callback during the
#: training, one continuous run across requeues and resumes. Not in ``EXPECTED``: runs made before
#: it existed, or with ``tensorboard_every = 0``, have none.
TENSORBOARD_DIR = "tensorboard"

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


# ---------------------------------------------------------------- file modes

#: What crackops never lets group or others do to the folders and files it creates: write. With
#: a umask of 000 they would be world-writable (0777 / 0666); the job, the command and a submission
#: add this to the process umask first, so modes are at most 0755 / 0644 whatever the caller's.
UMASK_ADD = 0o022


def tighten_umask() -> int:
    """Add ``UMASK_ADD`` to this process' umask (kept stricter if it is); returns the new one.
    Processes started from here (the local job, sbatch, which gives Slurm jobs its umask) inherit it."""
    old = os.umask(0)
    new = old | UMASK_ADD
    os.umask(new)
    return new


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
# (crackops.ml.callbacks), read after every training batch and at every epoch end.

class Requeue(Exception):
    """Raised by the training when it stopped to be requeued (time limit near, or a requeue asked
    for by SIGUSR1) right after a complete backup."""


#: ``stop``: why to stop now (SIGUSR1); ``deadline``: when the Slurm time limit ends (epoch
#: seconds); ``interrupted``: the signal that is ending the job; ``on_stop``: called with the
#: reason once the backup is complete: on Slurm it requeues the job and ends the process at once
#: (raising if the requeue failed), so that nothing in TensorFlow's teardown can hold the
#: job past its limit; ``slurm_limit_signal``: SIGUSR1 is Slurm's limit warning (``LIMIT_SIGNAL_S``);
#: ``requeue_margin_s``: ``CRACKOPS_REQUEUE_MARGIN_S`` as the job read it (None: ``REQUEUE_MARGIN_S``).
CONTROL: dict[str, Any] = {"stop": None, "deadline": None, "interrupted": None, "on_stop": None,
                           "slurm_limit_signal": False, "requeue_margin_s": None}

#: Seconds kept free before the time limit for the requeue itself and Slurm's bookkeeping, on top
#: of what the training needs to reach its next stopping point and save (``stop_reason``): the
#: default of ``CRACKOPS_REQUEUE_MARGIN_S``, which the job reads when it starts (``crackops.job``)
#: into ``CONTROL["requeue_margin_s"]``.
REQUEUE_MARGIN_S = 20.0

#: ``sbatch --signal=B:USR1@LIMIT_SIGNAL_S``: Slurm's own warning before the limit, a second line
#: of defence for when the job cannot read its time left (``squeue``). Slurm may send it up to a
#: minute early, so it only sets a deadline the job does not have already.
LIMIT_SIGNAL_S = 120


def stop_reason(needed_s: float, needs: str = "the next step and a backup need") -> str | None:
    """Why the training should stop at this point (its state is, or is about to be, backed up)
    to be requeued, or None. ``needed_s``: what going on to the next stopping point and saving
    there would take (the slowest recent batch, validation, a save), or, after the last epoch,
    what finishing the run takes (``needs`` says which, in the reason)."""
    if CONTROL["stop"]:
        return CONTROL["stop"]
    deadline = CONTROL["deadline"]
    if deadline is None:
        return None
    margin = CONTROL.get("requeue_margin_s")
    margin = REQUEUE_MARGIN_S if margin is None else float(margin)
    if time.time() + needed_s + margin > deadline:
        return (f"time limit in {max(0.0, deadline - time.time()):.0f} s: {needs} "
                f"about {needed_s:.0f} s, plus {margin:.0f} s kept for the requeue")
    return None


def stop_now(why: str) -> None:
    """Stop the training for a requeue (its backup is complete): ``CONTROL["on_stop"]`` (on Slurm
    the job requeues itself and exits here), else raise ``Requeue``."""
    hook = CONTROL.get("on_stop")
    if hook is not None:
        hook(why)
    raise Requeue(why)
