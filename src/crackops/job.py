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
from crackops.contract import CONTROL, Requeue, read_status


def requeue_margin_s() -> float:
    """``CRACKOPS_REQUEUE_MARGIN_S`` (read when a job that can be requeued starts), or
    ``contract.REQUEUE_MARGIN_S``; a value that is not a number of seconds is a one-line error
    naming the variable."""
    from crackops.fmt import env_number

    return env_number("CRACKOPS_REQUEUE_MARGIN_S", contract.REQUEUE_MARGIN_S, "seconds",
                      "e.g. CRACKOPS_REQUEUE_MARGIN_S=20", maximum=86400)


def current_job_id(config: TrainConfig) -> str:
    """``config.job_id`` when the backend set it, else what the scheduler says (``crackops.contract``)."""
    if config.job_id:
        return config.job_id
    jid = contract.job_id_from_env()
    if jid:
        return jid
    raise RuntimeError(f"no job id: set config.job_id, {contract.JOB_ID_ENV}, or run inside a Slurm job")


def out_dir_for(config: TrainConfig, job_id: str) -> Path:
    """``out_root/<job_id>``, or, when a reused Slurm job id finds it taken by an earlier run, this
    submission's own folder beside it (see ``crackops.paths.claim_out_dir``). Creates it."""
    from crackops.paths import claim_out_dir

    return claim_out_dir(config.out_root, job_id, config.submission_id)


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


def _record_start(out_dir: Path) -> None:
    """Add what this process really runs (crackops version and source digest) to provenance.json."""
    try:
        from crackops import provenance

        provenance.merge_file(out_dir, "start", provenance.at_start())
    except Exception as e:  # noqa: BLE001 - provenance must never fail a training
        print(f"crackops: could not record provenance at start: {e}", file=sys.stderr, flush=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    if CONTROL["interrupted"]:
        return  # already on the way out: let the cleanup finish
    CONTROL["interrupted"] = signal.Signals(signum).name
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def _on_usr1(signum: int, frame: Any) -> None:
    """SIGUSR1. On Slurm it is the job's ``--signal=B:USR1@...`` warning that the limit is near:
    it gives a deadline when the job could not read one (``squeue`` failed), and is otherwise
    redundant (Slurm may send it a minute early). Anywhere else: stop and requeue now."""
    if CONTROL.get("slurm_limit_signal"):
        if CONTROL["deadline"] is None and CONTROL["on_stop"] is not None:  # not on the last attempt
            CONTROL["deadline"] = time.time() + contract.LIMIT_SIGNAL_S
        return
    CONTROL["stop"] = "requeue asked for (SIGUSR1)"


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Train the crack CNN as ``config`` says; returns the manifest. Raises on failure."""
    from crackops.ml.tfsetup import configure_environment

    return _run(config, _train, configure_environment)


def _train(config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    from crackops.ml.train import train

    return train(config, out_dir)


def _run(config: TrainConfig, body: Any, prepare: Any = None) -> Any:
    contract.tighten_umask()   # artifacts never group- or world-writable, whatever umask the job got
    job_id = current_job_id(config)
    out_dir = out_dir_for(config, job_id)
    previous = read_status(out_dir) or (read_status(config.resume_from) if config.resume_from else None) or {}
    attempt = int(previous.get("attempt") or 0) + 1
    status = _Status(out_dir, job_id)
    status.data["attempt"] = attempt
    if previous.get("started_at"):
        status.data["first_started_at"] = previous.get("first_started_at") or previous["started_at"]
    status.write()
    _record_start(out_dir)
    if prepare is not None:
        prepare()
    from crackops.backends import job_control

    ctl = job_control(config, job_id)   # None: a local process, no scheduler to ask
    under_scheduler = ctl is not None   # its kill ends the job: exit at once, state "interrupted"
    max_attempts = max(1, int(getattr(config, "max_attempts", 1) or 1))
    can_requeue = ctl is not None and attempt < max_attempts

    def requeue_and_exit(why: str) -> None:
        """The backup is complete: requeue this Slurm job and end the process at once, before
        anything unwinds (tearing down TensorFlow's input pipeline has been seen to block for
        tens of seconds, past the time limit). Installed only where a requeue is possible (on
        Slurm, attempts left); raises if the requeue failed."""
        status.write(phase="requeued", ended_at=time.time(), requeue_reason=str(why))
        print(f"crackops: attempt {attempt} stops: {why}; requeueing job {job_id}", file=sys.stderr, flush=True)
        CONTROL["interrupted"] = "requeue"  # the SIGTERM the requeue sends is ours: the handler lets it pass
        problem = ctl.requeue()
        if problem:
            CONTROL["interrupted"] = None
            status.write(phase="failed", error=f"could not requeue: {problem}", error_type="Requeue")
            raise RuntimeError(f"could not requeue job {job_id}: {problem}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # Slurm ends and requeues this job now; nothing more to do

    CONTROL.update(stop=None, deadline=None, interrupted=None, on_stop=requeue_and_exit if can_requeue else None,
                   slurm_limit_signal=bool(ctl and ctl.limit_signal))
    old = {}
    if sys.platform != "win32":
        # SIGTERM (crackops cancel, scancel, the time limit, preemption) ends the job at once and
        # cleanly: the last backup is the resume point, no manifest is written. On Slurm
        # this replaces submitit's handler, which ignores SIGTERM (the process then outlived its job);
        # the batch script execs this process so that Slurm's SIGTERM reaches it (backends/slurm.py).
        old[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_sigterm)
        old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, _on_usr1)
    if can_requeue:
        CONTROL["requeue_margin_s"] = requeue_margin_s()
        left = ctl.time_left_s()
        if left is not None:
            CONTROL["deadline"] = time.time() + left
        else:
            print(f"crackops: could not read the time left of job {job_id} (squeue); relying on Slurm's "
                  f"signal {contract.LIMIT_SIGNAL_S} s before the limit", file=sys.stderr, flush=True)
    status.write(max_attempts=max_attempts, deadline=CONTROL["deadline"])
    from crackops.heartbeat import Heartbeat

    beat = Heartbeat(out_dir).start()
    try:
        result = body(config, out_dir)
    except Requeue as e:   # a stop with no requeue to do (not on Slurm, e.g. SIGUSR1 to a local run)
        status.write(phase="stopped", ended_at=time.time(), error=f"stopped to be resumed: {e}")
        raise KeyboardInterrupt(f"stopped to be resumed: {e}") from None
    except KeyboardInterrupt as e:
        CONTROL["interrupted"] = CONTROL["interrupted"] or "interrupt"
        status.write(phase="interrupted" if under_scheduler else "cancelled", ended_at=time.time(),
                     error=str(e) or "interrupted")
        if under_scheduler:
            print(f"crackops: job {job_id} stopped by {e}; last backup kept in {out_dir}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(143)  # at once: Slurm kills what is left after KillWait
        raise
    except BaseException as e:
        tb = traceback.format_exc()
        status.write(phase="failed", ended_at=time.time(), error=f"{type(e).__name__}: {e}",
                     error_type=type(e).__name__, traceback=tb[-4000:],
                     oom=isinstance(e, MemoryError) or "OOM" in str(e) or "ResourceExhausted" in type(e).__name__)
        raise
    finally:
        beat.stop()
        for sig, h in old.items():
            signal.signal(sig, h)
        CONTROL.update(on_stop=None, slurm_limit_signal=False)
    if CONTROL["interrupted"]:  # a signal came while the result was being written: not "completed"
        status.write(phase="cancelled", ended_at=time.time(), error=f"received {CONTROL['interrupted']}")
        raise KeyboardInterrupt(f"received {CONTROL['interrupted']}")
    status.write(phase="completed", ended_at=time.time())
    return result
