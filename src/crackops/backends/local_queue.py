"""A throttled queue of local runs: at most ``max_parallel`` at once, the rest start as others end.

``enqueue`` writes every run's spec (as ``LocalBackend.submit`` does) with the state
``PENDING`` and no process, and a queue file ``$CRACKOPS_HOME/queues/<queue_id>.json``;
``start_runner`` then starts ``python -m crackops.backends.local_queue QUEUE`` in its own session,
so the queue keeps going after the command that made it exits. The runner checks the queue every
half second: runs with a live process count against the limit, queued runs start in order, and
it exits once none is left to start.

One lock file per queue (``<queue>.lock``) serialises the runner and ``cancel``: a queued run is
either started or cancelled, never both. If the runner dies (killed, machine rebooted), ``status``
reports its queued runs FAILED with that reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from crackops.backends.base import Submission, Submitted
from crackops.backends.local_proc import _pid_alive, job_dir
from crackops.errors import BackendError
from crackops.paths import log_paths, state_dir

POLL_S = 0.5


def queues_dir() -> Path:
    d = state_dir() / "queues"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def queue_lock(queue_path: str | Path) -> Iterator[None]:
    with open(str(queue_path) + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def job_env(cpus: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["CRACKOPS_CPUS"] = str(min(cpus, os.cpu_count() or 1))
    return env


def start_job(spec: Path, out_path: Path, err_path: Path, env: dict[str, str]) -> int:
    """Start one local runner process (detached, its own session); its pid."""
    with open(out_path, "ab") as out, open(err_path, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crackops.backends.local_runner", str(spec)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True, close_fds=True)
    return proc.pid


def enqueue(subs: Sequence[Submission], job_ids: Sequence[str], max_parallel: int,
            queue_id: str) -> tuple[Path, list[Submitted]]:
    """Write the specs and the queue file of ``subs`` (ids given); start nothing."""

    qpath = queues_dir() / f"{queue_id}.json"
    jobs, done = [], []
    now = time.time()
    for sub, job_id in zip(subs, job_ids):
        sub.config.job_id = job_id
        jdir = job_dir(job_id)
        jdir.mkdir(parents=True, exist_ok=False)
        spec = jdir / "spec.pkl"
        with open(spec, "wb") as f:
            pickle.dump({"fn": sub.fn, "config": sub.config, "job_id": job_id}, f)
        sub.logs_dir.mkdir(parents=True, exist_ok=True)
        out_path, err_path = log_paths(sub.logs_dir, job_id, sub.resources.job_name)
        (jdir / "state.json").write_text(json.dumps({
            "state": "PENDING", "queue": str(qpath), "submitted_at": now,
            "reason": f"queued: at most {max_parallel} at once"}))
        jobs.append({"job_id": job_id, "spec": str(spec), "out": str(out_path), "err": str(err_path),
                     "cpus": sub.resources.cpus})
        done.append(Submitted(job_id=job_id, log_out=out_path, log_err=err_path,
                              extra={"spec": str(spec), "queue": str(qpath)}))
    _write(qpath, {"queue_id": queue_id, "max_parallel": max_parallel, "jobs": jobs, "runner_pid": None,
                   "created_at": now})
    return qpath, done


def start_runner(qpath: Path) -> int:
    """Start the detached queue runner for ``qpath``; its pid (also written into the queue file)."""
    log = qpath.with_suffix(".log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    try:
        with open(log, "ab") as f:
            proc = subprocess.Popen([sys.executable, "-m", "crackops.backends.local_queue", str(qpath)],
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=env,
                                    start_new_session=True, close_fds=True)
    except OSError as e:
        raise BackendError(f"could not start the local queue runner: {e}") from None
    with queue_lock(qpath):
        q = _read(qpath) or {}
        q["runner_pid"] = proc.pid
        _write(qpath, q)
    return proc.pid


def runner_alive(qpath: str | Path) -> bool:
    """Whether the queue's runner is still there (True while it is being started)."""

    q = _read(Path(qpath))
    if q is None:
        return False
    pid = q.get("runner_pid")
    if not pid:
        return time.time() - float(q.get("created_at") or 0) < 60
    return _pid_alive(int(pid), str(qpath))


def cancel_queued(job_id: str, qpath: str | Path) -> bool:
    """Cancel a run still waiting in its queue; False when it has started meanwhile."""

    sfile = job_dir(job_id) / "state.json"
    with queue_lock(qpath):
        st = _read(sfile) or {}
        if st.get("pid") or st.get("state") != "PENDING":
            return False
        st.update(state="CANCELLED", reason="cancelled before it started", exit_code="0:15",
                  ended_at=time.time())
        _write(sfile, st)
    return True


def step(qpath: Path) -> int:
    """Start what may start now; how many runs are still waiting."""

    with queue_lock(qpath):
        q = _read(qpath)
        if q is None:
            return 0
        limit = max(1, int(q.get("max_parallel") or 1))
        running, waiting = 0, []
        for j in q["jobs"]:
            sfile = job_dir(j["job_id"]) / "state.json"
            st = _read(sfile) or {}
            state, pid = st.get("state"), st.get("pid")
            if state in ("PENDING", "RUNNING") and pid:
                if _pid_alive(int(pid), j["spec"]):
                    running += 1
            elif state == "PENDING":
                waiting.append((j, sfile, st))
        for j, sfile, st in waiting[:max(0, limit - running)]:
            try:
                pid = start_job(Path(j["spec"]), Path(j["out"]), Path(j["err"]), job_env(int(j["cpus"])))
            except OSError as e:
                st.update(state="FAILED", reason=f"could not start: {e}", ended_at=time.time())
                _write(sfile, st)
                continue
            st.update(pid=pid, reason=None, dequeued_at=time.time())
            _write(sfile, st)
        return max(0, len(waiting) - max(0, limit - running))


def main(queue_path: str) -> int:
    qpath = Path(queue_path)
    while step(qpath) > 0:
        time.sleep(POLL_S)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
