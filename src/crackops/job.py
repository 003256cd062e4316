"""The job wrapper: what actually runs on the node (local process or Slurm allocation).

``run_training(config)`` is the function backends submit. It finds its job id, writes
``out/<job_id>/status.json`` as it goes (phase, pid, host, exception and traceback on failure) and
calls the training. ``status.json`` is how crackops tells "crashed" from "finished" when the
scheduler cannot (a Python exception in a job Slurm still calls COMPLETED, a killed process...).
TensorFlow is imported only inside the training call.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from crackops.config import TrainConfig

STATUS_FILE = "status.json"


def current_job_id(config: TrainConfig) -> str:
    if config.job_id:
        return config.job_id
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    jid = os.environ.get("SLURM_JOB_ID")
    if jid:
        return jid
    raise RuntimeError("no job id: set config.job_id or run inside a Slurm job")


def out_dir_for(config: TrainConfig, job_id: str) -> Path:
    """``out_root/<job_id>``, or, when a reused Slurm job id finds it taken by an earlier run, this
    submission's own folder beside it (see ``crackops.paths.claim_out_dir``). Creates it."""
    from crackops.paths import claim_out_dir

    return claim_out_dir(config.out_root, job_id, config.submission_id)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_status(out_dir: Path | str) -> dict[str, Any] | None:
    p = Path(out_dir) / STATUS_FILE
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


class _Status:
    def __init__(self, out_dir: Path, job_id: str):
        self.path = out_dir / STATUS_FILE
        self.data: dict[str, Any] = {
            "job_id": job_id, "phase": "running", "pid": os.getpid(), "host": socket.gethostname(),
            "started_at": time.time(), "ended_at": None, "python": sys.executable,
        }

    def write(self, **kw: Any) -> None:
        self.data.update(kw)
        write_json_atomic(self.path, self.data)


def _record_start(out_dir: Path) -> None:
    """Add what this process really runs (crackops version and source digest) to provenance.json."""
    try:
        from crackops import provenance

        provenance.merge_file(out_dir, "start", provenance.at_start())
    except Exception as e:  # noqa: BLE001 - provenance must never fail a training
        print(f"crackops: could not record provenance at start: {e}", file=sys.stderr, flush=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Train the crack CNN as ``config`` says; returns the manifest. Raises on failure."""
    from crackops.ml.tfsetup import configure_environment

    return _run(config, _train, configure_environment)


def _train(config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    from crackops.ml.train import train

    return train(config, out_dir)


def _run(config: TrainConfig, body: Any, prepare: Any = None) -> Any:
    job_id = current_job_id(config)
    out_dir = out_dir_for(config, job_id)
    status = _Status(out_dir, job_id)
    status.write()
    _record_start(out_dir)
    if prepare is not None:
        prepare()
    old = None
    if sys.platform != "win32" and not os.environ.get("SLURM_JOB_ID"):
        # local runs: SIGTERM from `crackops cancel` ends the job cleanly as CANCELLED.
        # On Slurm submitit owns the signal handlers.
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = body(config, out_dir)
    except KeyboardInterrupt as e:
        status.write(phase="cancelled", ended_at=time.time(), error=str(e) or "interrupted")
        raise
    except BaseException as e:
        tb = traceback.format_exc()
        status.write(phase="failed", ended_at=time.time(), error=f"{type(e).__name__}: {e}",
                     error_type=type(e).__name__, traceback=tb[-4000:],
                     oom=isinstance(e, MemoryError) or "OOM" in str(e) or "ResourceExhausted" in type(e).__name__)
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    status.write(phase="completed", ended_at=time.time())
    return result
