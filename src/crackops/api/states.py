"""Run states: refreshed from each backend under its polling policy, stored, waited on; logs and
cancelling."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from crackops import artifacts, backends
from crackops.api.adopt import Adoption, adopt_submissions
from crackops.api.retry import _auto_retry
from crackops.api.submission import makes_artifacts
from crackops.contract import read_status
from crackops.errors import NotFoundError, StateError
from crackops.registry import Registry, Run
from crackops.states import TERMINAL_STATES


@dataclass
class StatusReport:
    runs: list[Run]
    sources: dict[str, str] = field(default_factory=dict)   # backend -> where states came from
    warnings: list[str] = field(default_factory=list)
    calls: int = 0                                         # scheduler commands run
    #: the scheduler's controller did not answer (slurmctld down or restarting): why. States of
    #: unfinished runs are then the last known; ``crackops status`` exits 5.
    scheduler_down: str | None = None
    retried: list[Any] = field(default_factory=list)       # rerun.Plan of each --retries rerun submitted

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "sources": self.sources,
                "warnings": self.warnings, "scheduler_calls": self.calls, "scheduler_down": self.scheduler_down,
                "retried": [p.to_dict() for p in self.retried]}


def refresh(runs: list[Run], registry: Registry) -> StatusReport:
    """Ask each backend once about all of its unfinished runs; store what changed.

    Each backend is asked under its own polling policy (:meth:`Backend.poll`): Slurm's shares one
    sacct call per interval among all crackops processes (``crackops.slurm.throttle``), serving
    runs refreshed a moment ago from the registry, and backs off after failures. The backend's
    controller is asked too (sacct answers without slurmctld, and shows stale states while it is
    down): if it does not answer, the report's ``scheduler_down`` says why, and the policy backs
    off as for a failed call."""
    report = StatusReport(runs=runs)
    by_backend: dict[str, list[Run]] = {}
    for r in runs:
        if not r.terminal:
            by_backend.setdefault(r.backend, []).append(r)
    now = time.time()
    for name, live in by_backend.items():
        be = backends.get_backend(name)
        poll = be.poll(registry, live, now)
        report.warnings += [w for w in poll.warnings if w not in report.warnings]
        report.scheduler_down = report.scheduler_down or poll.scheduler_down
        if not poll.ask:
            report.sources[name] = poll.source or "registry"
            continue
        ok, error = True, None
        try:
            # first, so that a backend whose controller is down skips its fallback's long retries
            down = be.controller_problem()   # not in report.calls, which counts state queries
            for batch in _unique_ids(live):
                res = be.refresh(batch)
                if not res.ok:
                    ok, error = False, res.warning
                _store_refresh(name, batch, res, registry, report, now, local_files=be.paths_are_local)
            if down:
                report.scheduler_down = down   # the CLI's error line says it (exit 5)
                ok, error = False, down
        except BaseException as e:
            ok, error = False, f"{type(e).__name__}: {e}"
            raise
        finally:
            poll.done(ok, error)
    _note_start_provenance(runs, registry)
    _auto_retry(report, registry)
    for r in runs:
        if held(r):
            line = (f"{r.shown_id} is pending and will not start by itself: {r.reason} "
                    f"(release it: scontrol release {r.job_id}; or crackops cancel {r.shown_id})")
            if line not in report.warnings:
                report.warnings.append(line)
    return report


def _store_refresh(name: str, live: list[Run], res: Any, registry: Registry, report: StatusReport,
                   now: float, local_files: bool = True) -> None:
    """Record one backend answer about ``live`` (runs with distinct job ids) in the registry and
    in the runs themselves; every run asked gets ``refreshed_at`` (other processes read it).
    ``local_files`` False: the runs' folders are on another machine until ``collect`` copies them
    (the backend's answer already says whether the artifacts there are sound)."""
    report.sources[name] = res.source
    report.calls += res.calls
    if res.warning and res.warning not in report.warnings:
        report.warnings.append(res.warning)
    changes: dict[int, dict[str, Any]] = {}
    for r in live:
        u = res.updates.get(r.job_id)
        # still waiting and never started: its job has written nothing to read (a 1,000-run sweep
        # waiting in the queue costs no file reads)
        waiting = u is not None and u.state == r.state == "PENDING" and not (r.started_at or u.started_at)
        moved = None if waiting or not local_files else _claimed_out_dir(r)
        if u is None:
            ch0: dict[str, Any] = {"refreshed_at": now}
            if moved:
                r.out_dir = moved
                ch0["out_dir"] = moved
            r.refreshed_at = now
            changes[registry.key(r)] = ch0
            continue
        ch: dict[str, Any] = {"refreshed_at": now, "state_source": res.source}
        if moved:
            ch["out_dir"] = r.out_dir = moved
        for k in ("state", "reason", "exit_code", "started_at", "ended_at", "accounting"):
            v = getattr(u, k)
            if v is not None and v != getattr(r, k):
                ch[k] = v
        if r.state == "REQUEUED" and u.state != "REQUEUED" and u.reason is None and r.reason:
            ch["reason"] = None   # "attempt N waiting" ends with the wait
        if u.state == "RUNNING" and local_files:
            _check_heartbeat(r, ch, report, now)
        attempt = None if waiting or not local_files else (read_status(r.out_dir) or {}).get("attempt")
        if attempt and attempt != r.attempt:
            ch["attempt"] = attempt
        if u.state == "COMPLETED" and makes_artifacts(r) and local_files:
            # artifacts decide, as collect does: every file present and sound, or INCOMPLETE
            problem = artifacts.manifest_problem(r.out_dir)
            if problem is None:
                rep = artifacts.verify(r.out_dir)
                problem = None if rep.ok else f"artifacts {rep.summary()} in {r.out_dir}"
            if problem:
                ch["state"] = "INCOMPLETE"
                ch["reason"] = f"{res.source} says COMPLETED but {problem}"
        changes[registry.key(r)] = ch
        for k, v in ch.items():
            setattr(r, k, v)
    registry.update_many(changes)


def _check_heartbeat(run: Run, ch: dict[str, Any], report: StatusReport, now: float) -> None:
    """A RUNNING run whose job's heartbeat stopped (``crackops.heartbeat``): say so, in the run's
    reason and a warning; the state stays the scheduler's. ``extra["heartbeat"]`` keeps the last
    beat seen and when (this process's clock)."""
    from crackops import heartbeat

    beat = heartbeat.mtime(run.out_dir)
    if beat is None:
        return
    seen, silent = heartbeat.silent_for((run.extra or {}).get("heartbeat"), beat, now)
    if seen != (run.extra or {}).get("heartbeat"):
        ch["extra"] = {**(run.extra or {}), "heartbeat": seen}
    if silent > heartbeat.stale_s():
        how_long = f"{silent:.0f} s" if silent < 120 else f"{silent / 60:.0f} min"
        why = (f"no sign of life from the job for {how_long} (its heartbeat stopped): its node may "
               "have failed; the scheduler still says RUNNING")
        ch["reason"] = why
        report.warnings.append(f"{run.shown_id}: {why}")
    elif run.reason and "heartbeat stopped" in run.reason:
        ch["reason"] = None


def _unique_ids(runs: list[Run]) -> list[list[Run]]:
    """Batches in which no job id repeats (backends answer by job id): one batch unless a job id
    was handed out twice, newest runs first."""
    batches: list[list[Run]] = []
    seen: dict[str, int] = {}   # job id -> how many batches already hold it
    for r in sorted(runs, key=lambda r: -(r.submitted_at or 0)):
        i = seen.get(r.job_id, 0)
        seen[r.job_id] = i + 1
        if i == len(batches):
            batches.append([])
        batches[i].append(r)
    return [sorted(b, key=lambda r: r.submitted_at or 0) for b in batches]


def _claimed_out_dir(run: Run) -> str | None:
    """The out dir this run's job claimed, when it is not the one recorded (the job found the
    recorded one taken after submit time); None when nothing moved."""
    sid = (run.config or {}).get("submission_id")
    if not sid or not run.config.get("out_root"):
        return None
    from crackops.paths import OWNER_FILE, out_dir_candidates

    for d in out_dir_candidates(run.config["out_root"], run.job_id, sid):
        try:
            if (d / OWNER_FILE).read_text().strip() == sid:
                return None if str(d) == run.out_dir else str(d)
        except OSError:
            continue
    return None


def _note_start_provenance(runs: list[Run], registry: Registry) -> None:
    """Read the code a started run really ran (its provenance.json) into the registry, once."""
    from crackops import provenance as prov

    changes: dict[int, dict[str, Any]] = {}
    for r in runs:
        if r.provenance is None or "start" in r.provenance or (r.started_at is None and not r.terminal):
            continue
        doc = prov.read_file(r.out_dir) or {}
        if "start" not in doc and not r.terminal:
            continue
        p = {**r.provenance, "start": doc.get("start")}
        p["code_changed"] = prov.code_changed(r.provenance, doc.get("start"))
        r.provenance = p
        changes[r.run_key] = {"provenance": p}
    if changes:
        registry.update_many(changes)


def status(job_ids: Iterable[str] | None = None, *, refresh_states: bool = True, limit: int | None = None,
           registry: Registry | None = None) -> StatusReport:
    """Runs and their states, refreshed. Jobs of submissions whose crackops process died after
    sbatch are adopted first (:func:`adopt_submissions`), and said so in the warnings."""
    reg = registry or Registry()
    adopted = adopt_submissions(reg) if refresh_states else Adoption()
    runs = reg.list(job_ids=list(job_ids) if job_ids else None, limit=limit)
    if not refresh_states:
        return StatusReport(runs=runs)
    rep = refresh(runs, reg)
    rep.warnings[:0] = adopted.warnings
    return rep


def get_run(job_id: str, registry: Registry | None = None) -> Run:
    return (registry or Registry()).get(job_id)


def cancel(job_ids: Iterable[str], registry: Registry | None = None) -> list[Run]:
    """Cancel the runs that have not ended, their states refreshed first (a run that ended since the
    registry last looked is not cancelled, and is not said to be); returns the runs cancelled, their
    states refreshed again (CANCELLED where the backend ended them at once, e.g. locally)."""
    reg = registry or Registry()
    runs = reg.list(job_ids=list(job_ids))
    live = [r for r in refresh(runs, reg).runs if not r.terminal] if any(not r.terminal for r in runs) else []
    by_backend: dict[str, list[Run]] = {}
    for r in live:
        by_backend.setdefault(r.backend, []).append(r)
    for name, rs in by_backend.items():
        backends.get_backend(name).cancel(rs)
    return refresh(live, reg).runs if live else []


def log_path(job_id: str, err: bool = False, registry: Registry | None = None) -> Path:
    run = get_run(job_id, registry)
    p = run.log_err if err else run.log_out
    if not p:
        raise NotFoundError(f"run {job_id} has no {'error' if err else 'output'} log recorded")
    return Path(p)


def wait(job_ids: Iterable[str], *, poll_s: float = 2.0, timeout_s: float | None = None,
         registry: Registry | None = None) -> Iterator[StatusReport]:
    """Yield a status report every ``poll_s`` until every run is terminal (or the timeout). A run
    that was rerun (by ``crackops rerun`` or ``--retries``) is followed: the report shows, and the
    wait is for, the last attempt of each."""
    reg = registry or Registry()
    ids = list(job_ids)
    start = time.monotonic()
    while True:
        rep = status(ids, registry=reg)
        last = [_last_attempt(r, reg) for r in rep.runs]
        if any(a.run_key != r.run_key for a, r in zip(last, rep.runs)):
            # followed: the newer attempts were recorded just now (states as the registry has them,
            # refreshed at the next poll), not a second full status
            ids = [a.shown_id for a in last]
            rep.runs = last
        yield rep
        if all(r.state in TERMINAL_STATES for r in rep.runs):
            return
        live = [r for r in rep.runs if r.state not in TERMINAL_STATES]
        if live and all(held(r) for r in live):
            names = ", ".join(f"{r.shown_id} ({r.reason})" for r in live)
            raise StateError(f"held by the scheduler, so they will not start by themselves: {names}",
                             "release them (scontrol release JOB_ID) and wait again, or crackops cancel them")
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise StateError(f"runs still unfinished after {timeout_s:.0f} s",
                             "check them with crackops status; they keep running")
        time.sleep(poll_s)


#: Pending reasons of a job that never starts by itself (Slurm's names).
HELD_REASONS = ("JobHeldUser", "JobHeldAdmin", "launch failed requeued held", "BadConstraints", "DependencyNeverSatisfied")


def held(run: Run) -> bool:
    """Whether the run waits for something that never comes by itself (held, or an impossible
    dependency): ``wait`` says so instead of waiting forever."""
    return run.state in ("PENDING", "REQUEUED") and any(h.lower() in (run.reason or "").lower() for h in HELD_REASONS)


def _last_attempt(run: Run, reg: Registry) -> Run:
    """The newest run of ``run``'s rerun chain (``run`` itself unless it ended and was rerun)."""
    seen = {run.run_key}
    while run.terminal:
        nxt = reg.continued_by(run)
        if nxt is None or nxt.run_key in seen:
            break
        seen.add(nxt.run_key)
        run = nxt
    return run


_EPOCH_RE = re.compile(rb"Epoch (\d+)/(\d+)")


def epoch_progress(run: Run) -> tuple[int, int] | None:
    """(current epoch, max epochs) from a run's .out log, if it has started training."""
    if not run.log_out or not Path(run.log_out).exists():
        return None
    with open(run.log_out, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 32768))
        hits = _EPOCH_RE.findall(f.read())
    return (int(hits[-1][0]), int(hits[-1][1])) if hits else None


def read_log(job_id: str, *, err: bool = False, follow: bool = False, tail: int | None = None,
             poll_s: float = 1.0, registry: Registry | None = None) -> Iterator[str]:
    """A run's log (``.out``, or ``.err`` with ``err``) as text chunks: all of it, its last
    ``tail`` lines, or with ``follow`` everything as it is written until the run ends."""
    reg = registry or Registry()
    run = get_run(job_id, reg)
    remote = backends.get_backend(run.backend).log_lines(run, err=err, follow=follow, tail=tail)
    if remote is not None:   # the log is a file on another machine: the backend streams it
        yield from remote
        return
    path = log_path(job_id, err, reg)
    if not path.exists() and not follow:
        raise NotFoundError(f"{path} does not exist yet", f"the run may still be pending: crackops status {job_id}")
    if tail is not None and not follow:
        yield artifacts.tail(path, tail) + "\n"
        return
    pos = 0
    while True:
        if path.exists():
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
            if chunk:
                yield chunk.decode(errors="replace")
        if not follow:
            return
        if status([job_id], registry=reg).runs[0].terminal:
            if path.exists():
                with open(path, "rb") as f:  # last words
                    f.seek(pos)
                    rest = f.read()
                if rest:
                    yield rest.decode(errors="replace")
            return
        time.sleep(poll_s)
