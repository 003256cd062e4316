"""Reruns by the cause of a run's end: the plan (``crackops.rerun``) turned into a new job linked to
the old one, claimed once in the registry; ``--retries`` submitted when a refresh sees the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from crackops import backends
from crackops.api.submission import TRAINING_FN, _default_fn, _submit, makes_artifacts
from crackops.config import Resources, TrainConfig
from crackops.contract import read_status
from crackops.errors import CrackopsError, UsageError
from crackops.registry import Registry, Run


#: Seconds a claim on rerunning a run holds while its rerun is submitted; a claim this old whose
#: rerun was never recorded (the process died while submitting) may be taken again.
RERUN_LEASE_S = 600.0


#: What ``--retries`` reruns by itself (never a Python exception, never a cancel).
AUTO_RETRY_STATES = ("OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED")


def _job_fn(run: Run) -> Callable[[TrainConfig], Any]:
    """The function a run ran (``extra["fn"]``; the training when none is recorded), imported."""
    import importlib

    name = (run.extra or {}).get("fn") or TRAINING_FN
    if name == TRAINING_FN:
        return _default_fn()
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise UsageError(f"run {run.shown_id} ran {name}, which cannot be imported here",
                     "rerun it where it was submitted from (the same PYTHONPATH)")


class _Limits:
    """Each backend's memory limit for a resource shape, asked once per shape."""

    def __init__(self) -> None:
        self._seen: dict[tuple, Any] = {}

    def __call__(self, run: Run) -> Any:
        res = Resources.from_dict(run.resources or {})
        key = (run.backend, res.partition, res.cpus)
        if key not in self._seen:
            try:
                self._seen[key] = backends.get_backend(run.backend).memory_limit(res)
            except CrackopsError:
                self._seen[key] = None
        return self._seen[key]


def _plan_one(run: Run, limits: _Limits, **policy_kw: Any) -> Any:
    from crackops import rerun as policy
    from crackops.ml.backup import read_state

    b = read_state(run.out_dir)
    return policy.plan(run.shown_id, run.state, run.resources, read_status(run.out_dir),
                       backup_epoch=b["epoch"] if b else None, cap=limits(run), **policy_kw)


def _submit_rerun(run: Run, p: Any, reg: Registry, *, retries: int | None) -> Run | None:
    """Submit the rerun ``p`` plans for ``run``, once for all crackops processes (the registry's
    claim); the new run is recorded already linked (``continues``, attempt, sweep, retries left).
    Returns None, with ``p`` refused and why, when another process has it."""
    fn = _job_fn(run)
    if not reg.claim_rerun(run, time.time(), RERUN_LEASE_S):
        other = reg.continued_by(run)
        p.action = "refused"
        p.why = (f"already rerun as {other.shown_id}" + (f": crackops rerun {other.shown_id}" if other.terminal else "")
                 if other else "another crackops process is rerunning it just now")
        return None
    try:
        config = TrainConfig.from_dict({**run.config, "job_id": None, "resume_from": run.out_dir})
        extra = {"sweep": run.extra["sweep"]} if (run.extra or {}).get("sweep") else {}
        res = Resources(**p.resources)
        # a sweep's chained arrays wait for the array before (afterany:ID): that wait is over
        res.extra = {k: v for k, v in (res.extra or {}).items() if k != "dependency"}
        new = _submit(config, res, backend=run.backend, name=run.name,
                      logs_dir=Path(run.log_out).parent if run.log_out else None,
                      out_root=Path(run.out_dir).parent, fn=fn, check_data=makes_artifacts(run), registry=reg,
                      link={"continues": run.job_id, "attempt": (run.attempt or 1) + 1,
                            "sweep_id": run.sweep_id, "retries": retries}, link_extra=extra)
    except BaseException:
        reg.release_rerun(run)
        raise
    run.rerun_claimed_at = time.time()
    p.new_job_id = new.job_id
    return new


def _auto_retry(report: Any, registry: Registry) -> None:
    """``--retries``: rerun, by the same policy as ``crackops rerun`` (never a Python exception),
    the runs in ``report`` that ended OUT_OF_MEMORY / TIMEOUT / NODE_FAIL / PREEMPTED and have
    retries left; each once, whichever crackops process sees it first (the registry's claim)."""
    now = time.time()
    ended = [r for r in report.runs if r.retries and r.retries > 0 and r.terminal and r.state != "COMPLETED"]
    for r in ended:
        if r.state not in AUTO_RETRY_STATES:
            _not_retried(r, registry, report, _why_not(r))
    due = [r for r in ended if r.state in AUTO_RETRY_STATES
           and (r.rerun_claimed_at is None or now - r.rerun_claimed_at > RERUN_LEASE_S)]
    limits = _Limits()
    for r in due:
        try:
            p = _plan_one(r, limits)
            if p.action != "rerun":
                _not_retried(r, registry, report, p.why)
                continue
            new = _submit_rerun(r, p, registry, retries=r.retries - 1)
        except Exception as e:  # noqa: BLE001 - a status must not die of a retry it could not submit
            why = e.message if isinstance(e, CrackopsError) else f"{type(e).__name__}: {e}"
            report.warnings.append(f"retry of {r.shown_id} ({r.state}) failed: {why}; "
                                   "crackops tries again at the next status")
            continue
        if new is not None:
            report.retried.append(p)


def _why_not(run: Run) -> str:
    """Why ``--retries`` leaves a run that ended this way alone, and what the user can do."""
    if run.state == "FAILED":
        err = (read_status(run.out_dir) or {}).get("error")
        if err:
            first = str(err).strip().splitlines()[0]
            return (f"it failed with {first}, and a Python exception is never retried "
                    f"(fix the cause, then: crackops rerun {run.shown_id} --force)")
        return f"it failed ({run.reason or 'no reason recorded'}); rerun it by hand: crackops rerun {run.shown_id}"
    if run.state == "CANCELLED":
        return f"it was cancelled, and a cancelled run is never retried (crackops rerun {run.shown_id} to run it again)"
    return f"{run.state} is not a state --retries reruns (crackops rerun {run.shown_id} does)"


def _not_retried(run: Run, registry: Registry, report: Any, why: str) -> None:
    """Say once, and keep in the run (``extra["not_retried"]``, shown by ``status JOB_ID``), why
    the run's retries were not used; its retries end."""
    extra = {**(run.extra or {}), "not_retried": why}
    registry.update(run, retries=0, extra=extra)
    run.retries, run.extra = 0, extra
    report.warnings.append(f"{run.shown_id} ({run.state}) is not retried: {why}")
