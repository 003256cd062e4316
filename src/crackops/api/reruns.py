"""``crackops resume`` (the same job started again) and ``crackops rerun`` (a new job continuing an
ended one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from crackops import backends
from crackops.api.checks import _one_line
from crackops.api.retry import _Limits, _plan_one, _submit_rerun
from crackops.api.states import refresh
from crackops.api.sweeping import get_sweep
from crackops.contract import read_status
from crackops.errors import StateError, UsageError
from crackops.paths import check_run_dirs, default_logs_dir, validate_job_id
from crackops.registry import Registry, Run


def resume(job_id: str, *, force: bool = False, registry: Registry | None = None) -> Run:
    """Start an ended (cancelled, killed, timed-out) run again under the same job id, where its
    backend can (``Backend.resumable``: local runs): it continues from its last backup. A run that
    failed with a Python exception is refused unless ``force``. Slurm runs are requeued by Slurm,
    or continued as a new job by :func:`rerun`."""
    from crackops.ml.backup import point as backup_point, read_state

    reg = registry or Registry()
    run = reg.get(validate_job_id(job_id))
    be = backends.get_backend(run.backend)
    if not be.resumable:
        be.resume(run)   # refuses, saying what to do instead
    if not run.terminal:
        run = refresh([run], reg).runs[0]
    if not run.terminal:
        raise StateError(f"run {job_id} is still {run.state}", f"cancel it first: crackops cancel {job_id}")
    if run.state == "COMPLETED":
        raise StateError(f"run {job_id} already COMPLETED", "nothing to resume")
    st = read_status(run.out_dir) or {}
    if st.get("phase") == "failed" and not force:
        raise StateError(f"run {job_id} failed with {_one_line(st.get('error'))}",
                         "fix the cause, or resume anyway with --force")
    check_run_dirs(Path(run.out_dir).parent, Path(run.log_out).parent if run.log_out else default_logs_dir())
    backup = read_state(run.out_dir)
    started = be.resume(run)
    reason = f"resumed {backup_point(backup)}" if backup else "no backup: starting at epoch 1"
    reg.update(run.job_id, state="PENDING", reason=reason, exit_code=None, ended_at=None,
               extra={**run.extra, **started})
    return reg.get(run.job_id)


def rerun(job_ids: Iterable[str] = (), *, failed: bool = False, sweep: str | None = None,
          mem_factor: float = 1.5, mem: str | None = None, time_limit: str | None = None,
          max_mem: str | None = None, force: bool = False, dry_run: bool = False,
          registry: Registry | None = None) -> list[Any]:
    """Rerun runs by the cause of their end (``crackops.rerun``): each accepted one becomes a new
    job on the same backend, running the same function, that continues from the old run's last
    backup and is linked to it (``Run.continues``; it joins the old run's sweep). ``failed``:
    every run that ended FAILED / TIMEOUT / OUT_OF_MEMORY / NODE_FAIL / PREEMPTED and was not rerun
    yet (``sweep``: of that sweep only). ``mem``: the new runs' memory (validated, never above the
    partition's limit); otherwise OUT_OF_MEMORY gets ``mem_factor`` times its memory, capped by
    the partition's (locally: the machine's) memory and ``max_mem``. A run is rerun once, even
    when several crackops processes try at the same time. Returns one ``rerun.Plan`` per run."""
    from crackops import rerun as policy
    from crackops.config import parse_mem_mb, parse_time_min

    if not (isinstance(mem_factor, (int, float)) and 1 < mem_factor <= 100):
        raise UsageError(f"--mem-factor {mem_factor} must be more than 1", "e.g. --mem-factor 1.5")
    for flag, value, check in (("--mem", mem, parse_mem_mb), ("--max-mem", max_mem, parse_mem_mb),
                               ("--time", time_limit, parse_time_min)):
        if value is not None:
            try:
                check(value)
            except UsageError as e:
                raise UsageError(f"{flag} {value}: {e.message}", e.hint) from None
    reg = registry or Registry()
    ids = list(job_ids)
    if sweep is not None and ids:
        raise UsageError("give job ids or --sweep, not both", f"crackops rerun --failed --sweep {sweep}")
    if sweep is not None:
        failed = True
    if not ids and not failed:
        raise UsageError("no runs given", "pass job ids, or --failed for every failed run")
    runs = reg.list(job_ids=ids) if ids else []
    if failed:
        pool = reg.sweep_runs(get_sweep(sweep, reg).sweep.sweep_id) if sweep is not None else reg.list()
        cands = refresh(pool, reg).runs
        continued = {r.continues for r in reg.list() if r.continues}
        runs += [r for r in cands if r.state in policy.RERUNNABLE and r.job_id not in continued
                 and r.shown_id not in ids and r.job_id not in ids]
    else:
        runs = refresh(runs, reg).runs
    limits = _Limits()
    plans = []
    for r in runs:
        p = _plan_one(r, limits, mem_factor=mem_factor, time=time_limit, force=force, max_mem=max_mem, mem=mem)
        if p.action == "rerun" and not dry_run:
            _submit_rerun(r, p, reg, retries=r.retries)
        plans.append(p)
    return plans
