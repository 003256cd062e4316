"""Local backend: each job is a detached Python process on this machine.

``submit`` pickles (function, config) into ``$CRACKOPS_HOME/jobs/<job_id>/spec.pkl`` and starts
``python -m crackops.backends.local_runner <spec>`` in its own session, stdout/stderr to the run's
``cnn_crack_<job_id>.out/.err``. The CLI may exit at once: the process lives on. The runner writes
the contract's ``state.json`` beside the spec (RUNNING with its pid, then COMPLETED / FAILED / CANCELLED), which
``refresh`` reads; a process that died without writing a final state (kill -9, the OOM killer) is
reported FAILED with that reason. No scheduler, so ``refresh`` runs no command.
"""

from __future__ import annotations

import os
import pickle
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from crackops import contract
from crackops.backends.base import Backend, RefreshResult, StateUpdate, Submission, Submitted
from crackops.errors import BackendError
from crackops.paths import log_paths, state_dir
from crackops.registry import Run


def new_job_id() -> str:
    """Sortable by submit time, unique without a shared counter: L<yymmdd>-<hhmmss>-<4 hex>."""
    return time.strftime("L%y%m%d-%H%M%S-") + secrets.token_hex(2)


def job_dir(job_id: str) -> Path:
    return state_dir() / "jobs" / job_id


def read_state(job_id: str) -> dict | None:
    return contract.read_state(job_dir(job_id))


def _pid_alive(pid: int, spec: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if spec:  # guard against pid reuse: the process must be our runner for this spec
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return True  # no /proc (macOS): trust kill(0)
        if spec not in cmdline:
            return False
        try:  # a zombie is dead
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            pass
    return True


class LocalBackend(Backend):
    name = "local"

    def submit(self, sub: Submission) -> Submitted:
        job_id = sub.config.job_id or new_job_id()
        sub.config.job_id = job_id
        jdir = job_dir(job_id)
        jdir.mkdir(parents=True, exist_ok=False)
        spec = jdir / "spec.pkl"
        with open(spec, "wb") as f:
            pickle.dump({"fn": sub.fn, "config": sub.config, "job_id": job_id}, f)
        sub.logs_dir.mkdir(parents=True, exist_ok=True)
        out_path, err_path = log_paths(sub.logs_dir, job_id, sub.resources.job_name)
        env = dict(os.environ)
        env[contract.CPUS_ENV] = str(min(sub.resources.cpus, os.cpu_count() or 1))
        for k in [k for k in env if k.startswith("SLURM_")]:  # not a Slurm job, even if submitted from one
            env.pop(k)
        with open(out_path, "ab") as out, open(err_path, "ab") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "crackops.backends.local_runner", str(spec)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True,
                    close_fds=True,
                )
            except OSError as e:
                raise BackendError(f"could not start the local job: {e}") from None
        contract.write_state(jdir, {"state": "PENDING", "pid": proc.pid, "submitted_at": time.time()})
        return Submitted(job_id=job_id, log_out=out_path, log_err=err_path,
                         extra={"pid": proc.pid, "spec": str(spec)})

    def refresh(self, runs: list[Run]) -> RefreshResult:
        updates: dict[str, StateUpdate] = {}
        for run in runs:
            st = read_state(run.job_id)
            if st is None:
                updates[run.job_id] = StateUpdate("FAILED", reason="no local job state found (state dir moved?)")
                continue
            state = st.get("state", "UNKNOWN")
            pid = st.get("pid") or run.extra.get("pid")
            if state in ("PENDING", "RUNNING") and pid and not _pid_alive(int(pid), run.extra.get("spec")):
                # re-read: the runner may have written its final state just now
                st = read_state(run.job_id) or st
                state = st.get("state", state)
                if state in ("PENDING", "RUNNING"):
                    state = "FAILED"
                    st["reason"] = "process died without a final state (killed, or out of memory?)"
                    st.setdefault("ended_at", time.time())
            updates[run.job_id] = StateUpdate(
                state=state, reason=st.get("reason"), exit_code=st.get("exit_code"),
                started_at=st.get("started_at"), ended_at=st.get("ended_at"))
        return RefreshResult(updates=updates, source="local", calls=0)

    def cancel(self, runs: list[Run]) -> None:
        for run in runs:
            st = read_state(run.job_id) or {}
            pid = st.get("pid") or run.extra.get("pid")
            if not pid or not _pid_alive(int(pid), run.extra.get("spec")):
                continue
            try:
                os.killpg(int(pid), signal.SIGTERM)  # the runner leads its own session/group
            except ProcessLookupError:
                pass

    def dry_run(self, sub: Submission) -> str:
        return (f"{sys.executable} -m crackops.backends.local_runner <spec: "
                f"{sub.fn.__module__}.{sub.fn.__qualname__}({sub.config!r})>")
