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
from crackops.backends import local_queue
from crackops.backends.base import Backend, Batch, BatchPlan, RefreshResult, StateUpdate, Submission, Submitted
from crackops.backends.local_proc import _pid_alive, group_pids, job_dir, read_state  # noqa: F401
from crackops.errors import BackendError
from crackops.paths import log_paths
from crackops.registry import Run
from crackops.slurm.limits import MemCap
from crackops.slurm.units import mem_text


def new_job_id() -> str:
    """Sortable by submit time, unique without a shared counter: L<yymmdd>-<hhmmss>-<4 hex>."""
    return time.strftime("L%y%m%d-%H%M%S-") + secrets.token_hex(2)


#: Seconds a cancelled job has to end after SIGTERM before its whole process group is killed: the
#: default of ``CRACKOPS_CANCEL_GRACE_S`` (read when used).
CANCEL_GRACE_S = 15.0


def cancel_grace_s() -> float:
    from crackops.fmt import env_number

    return env_number("CRACKOPS_CANCEL_GRACE_S", CANCEL_GRACE_S, "seconds", "e.g. CRACKOPS_CANCEL_GRACE_S=15",
                      maximum=3600)


def _start(job_id: str, spec: Path, out_path: Path, err_path: Path, cpus: int) -> int:
    env = dict(os.environ)
    env["CRACKOPS_CPUS"] = str(min(cpus, os.cpu_count() or 1))
    for k in [k for k in env if k.startswith("SLURM_")]:  # not a Slurm job, even if submitted from one
        env.pop(k)
    with open(out_path, "ab") as out, open(err_path, "ab") as err:
        try:
            # its own session and process group: cancel signals the group, so nothing it started survives
            proc = subprocess.Popen(
                [sys.executable, "-m", "crackops.backends.local_runner", str(spec)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise BackendError(f"could not start the local job: {e}") from None
    contract.write_state(job_dir(job_id), {"state": "PENDING", "pid": proc.pid, "submitted_at": time.time()})
    return proc.pid


class LocalBackend(Backend):
    name = "local"
    enforces_resources = False   # --cpus only sets the job's thread count; --mem and --time are not enforced
    measures_usage = False
    resumable = True

    def submit(self, sub: Submission) -> Submitted:
        for _ in range(100):   # an id made here may be taken by another submit in the same second
            job_id = sub.config.job_id or new_job_id()
            jdir = job_dir(job_id)
            try:
                jdir.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                if sub.config.job_id:
                    raise
        else:  # pragma: no cover - 100 collisions in a row
            raise BackendError("could not find a free local job id", f"check {jdir.parent}")
        sub.config.job_id = job_id
        spec = jdir / "spec.pkl"
        with open(spec, "wb") as f:
            pickle.dump({"fn": sub.fn, "config": sub.config, "job_id": job_id}, f)
        sub.logs_dir.mkdir(parents=True, exist_ok=True)
        out_path, err_path = log_paths(sub.logs_dir, job_id, sub.resources.job_name)
        pid = _start(job_id, spec, out_path, err_path, sub.resources.cpus)
        return Submitted(job_id=job_id, log_out=out_path, log_err=err_path,
                         extra={"pid": pid, "spec": str(spec)})

    def resume(self, run: Run) -> dict:
        """Start an ended run's job again, same job id and out dir: the training continues from
        its last backup. Returns the new pid (``{"pid": ...}``)."""
        spec = job_dir(run.job_id) / "spec.pkl"
        if not spec.exists():
            raise BackendError(f"run {run.job_id} has no local job spec at {spec}",
                               "was it submitted with another CRACKOPS_HOME?")
        pid = read_state(run.job_id) or {}
        if pid.get("pid") and _pid_alive(int(pid["pid"]), str(spec)):
            raise BackendError(f"run {run.job_id} is still running (pid {pid['pid']})")
        cpus = int((run.resources or {}).get("cpus") or 1)
        return {"pid": _start(run.job_id, spec, Path(run.log_out), Path(run.log_err), cpus)}

    def refresh(self, runs: list[Run]) -> RefreshResult:
        updates: dict[str, StateUpdate] = {}
        for run in runs:
            st = read_state(run.job_id)
            if st is None:
                updates[run.job_id] = StateUpdate("FAILED", reason="no local job state found (state dir moved?)")
                continue
            state = st.get("state", "UNKNOWN")
            pid = st.get("pid") or run.extra.get("pid")
            if state == "PENDING" and not pid and st.get("queue"):   # waiting in a sweep's queue
                if not local_queue.runner_alive(st["queue"]):
                    st = read_state(run.job_id) or st     # it may have been started just now
                    if st.get("state") == "PENDING" and not st.get("pid"):
                        st = {**st, "state": "FAILED", "ended_at": time.time(),
                              "reason": "the local queue runner stopped before starting this run"}
                    state, pid = st.get("state", state), st.get("pid")
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
        """SIGTERM to each run's process group (the job saves nothing more and exits); whatever
        of a group is still alive after ``cancel_grace_s()`` is killed (SIGKILL to the group)."""
        grace = cancel_grace_s()   # read first: a bad value is refused before any signal is sent
        groups: list[int] = []
        owner: dict[int, str] = {}
        for run in runs:
            st = read_state(run.job_id) or {}
            pid = st.get("pid") or run.extra.get("pid")
            if not pid and st.get("queue"):
                if local_queue.cancel_queued(run.job_id, st["queue"]):
                    continue
                st = read_state(run.job_id) or {}
                pid = st.get("pid")
            if not pid or not group_pids(int(pid)):
                continue
            try:
                os.killpg(int(pid), signal.SIGTERM)  # the runner leads its own session/group
                groups.append(int(pid))
                owner[int(pid)] = run.job_id
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while groups and time.monotonic() < deadline:
            groups = [g for g in groups if group_pids(g)]
            if groups:
                time.sleep(0.1)
        killed = set(groups)
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                pass
            end = time.monotonic() + 5.0
            while group_pids(g) and time.monotonic() < end:  # SIGKILL is delivered asynchronously
                time.sleep(0.05)
        for g, job_id in owner.items():
            # ended by the cancel without a final state of its own (killed, or SIGTERM before its
            # handler was installed, just after the start): CANCELLED, not "died"
            st = read_state(job_id) or {}
            if st.get("state") in ("PENDING", "RUNNING") and not group_pids(g):
                why = (f"cancelled (killed: no exit {grace:.0f} s after SIGTERM)" if g in killed
                       else "cancelled (ended by SIGTERM before it could record it)")
                st.update(state="CANCELLED", reason=why, exit_code="0:9" if g in killed else "0:15", ended_at=time.time())
                contract.write_state(job_dir(job_id), st)

    def memory_limit(self, resources) -> MemCap | None:
        """The machine's physical memory (nothing enforces ``--mem`` locally; more cannot help)."""
        try:
            mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
        except (ValueError, OSError, AttributeError):
            return None
        return MemCap(int(mb), f"this machine has {mem_text(int(mb))}") if mb > 0 else None

    def dry_run(self, sub: Submission) -> str:
        return (f"{sys.executable} -m crackops.backends.local_runner <spec: "
                f"{sub.fn.__module__}.{sub.fn.__qualname__}({sub.config!r})>")

    # ------------------------------------------------------------ many runs: a throttled queue
    def plan_batch(self, resources, max_parallel: int | None) -> BatchPlan:
        """One queue running at most ``max_parallel`` at once (default: as many as the cores
        allow for the runs' ``--cpus``)."""
        if max_parallel is None:
            n = os.cpu_count() or 1
            cpus = resources[0].cpus if resources else 1
            max_parallel = max(1, n // max(1, min(cpus, n)))
        return BatchPlan(max_parallel=max_parallel)   # one queue: no groups

    def submit_batch(self, subs, plan: BatchPlan, ids, batch_id: str, note_id: str | None = None) -> Batch:
        qpath, done = local_queue.enqueue(subs, ids, plan.max_parallel or 1, batch_id)
        return Batch(submitted=list(enumerate(done)), extra={"queue": str(qpath)})

    def after_record(self, batch: Batch) -> None:
        if batch.extra.get("queue"):
            local_queue.start_runner(Path(batch.extra["queue"]))

    def dry_run_batch(self, subs, plan: BatchPlan) -> str:
        return (f"{len(subs)} local runs, at most {plan.max_parallel} at once: "
                f"{sys.executable} -m crackops.backends.local_queue <queue>")
