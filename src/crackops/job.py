"""The job wrapper: what actually runs on the node (local process or Slurm allocation).

``run_training(config)`` is the function backends submit. It finds its job id, writes
``out/<job_id>/status.json`` as it goes (phase, pid, host, exception and traceback on failure) and
calls the training. ``status.json`` is how crackops tells "crashed" from "finished" when the
scheduler cannot (a Python exception in a job Slurm still calls COMPLETED, a killed process...).
File names, the job id and CPU count from the environment: ``crackops.contract``.
TensorFlow is imported only inside the training call.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from crackops import contract
from crackops.config import TrainConfig

# The contract's names, kept importable from here for scripts that used them.
from crackops.contract import STATUS_FILE, read_status, write_json_atomic  # noqa: F401


def current_job_id(config: TrainConfig) -> str:
    """``config.job_id`` when the backend set it, else what the scheduler says (``crackops.contract``)."""
    if config.job_id:
        return config.job_id
    jid = contract.job_id_from_env()
    if jid:
        return jid
    raise RuntimeError(f"no job id: set config.job_id, {contract.JOB_ID_ENV}, or run inside a Slurm job")


def out_dir_for(config: TrainConfig, job_id: str) -> Path:
    return Path(config.out_root) / job_id


class _Status:
    def __init__(self, out_dir: Path, job_id: str):
        self.out_dir = out_dir
        self.data: dict[str, Any] = {
            "job_id": job_id, "phase": "running", "pid": os.getpid(), "host": socket.gethostname(),
            "started_at": time.time(), "ended_at": None, "python": sys.executable,
        }

    def write(self, **kw: Any) -> None:
        self.data.update(kw)
        contract.write_status(self.out_dir, self.data)


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
    out_dir.mkdir(parents=True, exist_ok=True)
    status = _Status(out_dir, job_id)
    status.write()
    if prepare is not None:
        prepare()
    old = None
    if sys.platform != "win32" and not contract.in_slurm_job():
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
