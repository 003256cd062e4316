"""Sweeps: a grid of runs submitted through the same pipeline as one run, as one batch of the
backend (Slurm job arrays, a local queue), recorded as one sweep; the sweep's handle."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from crackops import provenance as prov
from crackops import sweeps as sweep_domain
from crackops.api.checks import check_data_dir, check_retries
from crackops.api.results import check_plot_path, collect_finished, compare
from crackops.api.states import cancel, refresh
from crackops.api.submission import _default_fn, backend_for, check_run_data, note, provenance_config, run_roots
from crackops.backends.base import Submission
from crackops.compare import Comparison, compare_runs, final_attempts
from crackops.config import Resources, TrainConfig
from crackops.errors import BackendError, CrackopsError, NotFoundError, StateError, UsageError
from crackops.paths import default_logs_dir, state_dir
from crackops.registry import Registry, Run, Sweep


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["learning_rate=1e-3,3e-4", "batch_size=32,64"]`` -> ``{key: [typed values]}``, validated."""
    return sweep_domain.parse_grid(items)


def sweep(config: TrainConfig, grid: dict[str, Any], seeds: int | list[int] = 1,
          resources: Resources | None = None, *, backend: str = "local", name: str | None = None,
          max_parallel: int | None = None, logs_dir: str | Path | None = None,
          out_root: str | Path | None = None, fn: Callable[[TrainConfig], Any] | None = None,
          check_data: bool = True, retries: int | None = None, registry: Registry | None = None,
          argv: list[str] | None = None) -> "SweepHandle":
    """Submit a grid of ``config`` values (``{key: [values]}``) times ``seeds`` as one recorded
    sweep, through the same pipeline as :func:`crackops.api.submit`, as one batch of the backend:
    Slurm job arrays throttled to ``max_parallel`` (split at MaxArraySize), or a local queue
    running at most ``max_parallel`` at once. Returns a :class:`SweepHandle` (``.runs``,
    ``.status()``, ``.wait()``, ``.compare()``, ``.cancel()``). Everything is validated before
    anything is submitted. ``retries``: as for :func:`crackops.api.submit`, for every run (a rerun
    joins the sweep)."""
    retries = check_retries(retries)
    reg = registry or Registry()
    p = sweep_domain.plan(config, grid, seeds, resources, backend=backend, name=name, max_parallel=max_parallel)
    try:
        reg.get_sweep(p.name)
    except NotFoundError:
        pass
    else:
        raise UsageError(f"a sweep named {p.name!r} exists already",
                         f"pick another --name, or see it: crackops status --sweep {p.name}")
    if any((q["run"].get("sweep") or {}).get("name") == p.name for q in reg.pending()):
        raise UsageError(f"a sweep named {p.name!r} is being submitted, or waits to be adopted",
                         f"pick another --name, or see it soon: crackops status --sweep {p.name}")
    be = backend_for(backend, resources or Resources())
    out, logs = run_roots(out_root, logs_dir)
    checked: dict[str, str] = {}
    for r in p.runs:
        if check_data:
            check_run_data(r.config, be, full=False, seen=checked)
        r.config.out_root = str(out)
        r.config.job_id = None
    fn = fn or _default_fn()
    # provenance: collected once per dataset, shared by the runs (the package list lives in the sweep)
    base_prov: dict[tuple, dict[str, Any]] = {}
    for r in p.runs:
        k = (r.config.data_dir, r.config.test_dir)
        if k not in base_prov:
            base_prov[k] = prov.collect(provenance_config(r.config.to_dict(), be), argv=argv, cache_dir=state_dir())
    packages = next(iter(base_prov.values()))["packages"] if base_prov else {}
    sweep_id = sweep_domain.new_sweep_id()
    subs = [Submission(config=r.config, resources=r.resources, logs_dir=logs, fn=fn,
                       name=sweep_domain.run_name(p.name, r)) for r in p.runs]
    now = time.time()
    extra: dict[str, Any] = {"fn": f"{fn.__module__}.{fn.__qualname__}", "packages": packages,
                             "command": prov.command_line(argv), "logs_dir": str(logs), "out_root": str(out)}
    sw = Sweep(sweep_id=sweep_id, name=p.name, backend=backend, grid=p.grid, seeds=p.seeds,
               base_config={**config.to_dict(), "job_id": None, "out_root": str(out)},
               resources=(resources or Resources()).to_dict(), created_at=now, max_parallel=p.max_parallel,
               extra=extra)
    templates = []   # each member run but its job id, by plan index
    for r in p.runs:
        pr = {k: v for k, v in base_prov[(r.config.data_dir, r.config.test_dir)].items() if k != "packages"}
        pr = prov.for_run(pr, {**r.config.to_dict(), "job_id": None})
        pr["packages"] = f"sweep {p.name}"
        templates.append({"name": sweep_domain.run_name(p.name, r), "config": {**r.config.to_dict(), "job_id": None},
                          "resources": r.resources.to_dict(), "provenance": pr, "retries": retries or None,
                          "extra": {"fn": extra["fn"], "sweep": {"name": p.name, "index": r.index,
                                                                 "point": r.point_index, "values": r.point,
                                                                 "seed": r.seed}}})
    # noted before the first submission: if this process dies before recording the sweep, it is adopted
    sid = secrets.token_hex(8)
    noted = note(reg, be, sid, (resources or Resources()).job_name, {
        "sweep": sw.to_dict(), "runs": templates, "logs_dir": str(logs),
        "arrays": be.note_groups(p.batch, sid)})
    ids = [f"{sweep_id.replace('S', 'L', 1)}_{r.index}" for r in p.runs]
    batch = be.submit_batch(subs, p.batch, ids, sweep_id, sid if noted else None)
    extra.update(batch.extra)
    runs = [sweep_domain.member_run(templates[i], d.job_id, backend, sweep_id, now,
                              d.extra.get("out_dir") or str(out / d.job_id), d.log_out, d.log_err, d.extra)
            for i, d in batch.submitted]
    if noted and not runs and batch.error is not None:
        reg.drop_pending(sid)                            # the first submission was refused: nothing ran
    elif noted:                                          # forgets the note; adopted meanwhile: that sweep
        sw = reg.add_sweep(sw, runs, submission_id=sid) or sw
    elif runs or batch.error is None:
        reg.add_sweep(sw, runs)
    from crackops.importer import submit_record   # what `crackops import` needs beside the artifacts

    for run in runs:   # the full record (with packages) beside the run's artifacts
        try:
            prov.merge_file(run.out_dir, "submit", {**run.provenance, "packages": packages,
                                                    "run": submit_record(run)})
        except OSError:
            pass
    be.after_record(batch)
    if batch.error is not None:
        e = batch.error
        message, hint = (e.message, e.hint) if isinstance(e, CrackopsError) else (f"{type(e).__name__}: {e}", None)
        raise BackendError(f"{message}; {len(runs)} of {len(p.runs)} runs were submitted"
                           + (f" and recorded in sweep {p.name}" if runs else ""), hint)
    return SweepHandle(sw, reg)


def sweep_dry_run(config: TrainConfig, grid: dict[str, Any], seeds: int | list[int] = 1,
                  resources: Resources | None = None, *, backend: str = "local", name: str | None = None,
                  max_parallel: int | None = None, logs_dir: str | Path | None = None,
                  check_data: bool = True) -> sweep_domain.SweepPlan:
    """What :func:`sweep` would submit (runs, arrays, the backend's script), submitting and
    recording nothing."""
    p = sweep_domain.plan(config, grid, seeds, resources, backend=backend, name=name, max_parallel=max_parallel)
    be = backend_for(backend, resources or Resources())
    if check_data and config.data_dir and be.paths_are_local:
        check_data_dir(config.data_dir)
    logs = Path(logs_dir).expanduser().resolve() if logs_dir else default_logs_dir()
    subs = [Submission(config=r.config, resources=r.resources, logs_dir=logs, fn=_default_fn(),
                       name=sweep_domain.run_name(p.name, r)) for r in p.runs]
    p.script = be.dry_run_batch(subs, p.batch)
    return p


class SweepHandle:
    """A recorded sweep: ``.runs``, ``.status()``, ``.wait()``, ``.compare()``, ``.cancel()``."""

    def __init__(self, sweep: Sweep, registry: Registry | None = None):
        self.sweep = sweep
        self.registry = registry or Registry()

    @property
    def name(self) -> str:
        return self.sweep.name

    @property
    def runs(self) -> list[Run]:
        """The member runs as the registry knows them (no refresh)."""
        return self.registry.sweep_runs(self.sweep.sweep_id)

    @property
    def job_ids(self) -> list[str]:
        return [r.job_id for r in self.runs]

    def status(self) -> sweep_domain.SweepStatus:
        """States refreshed (one sacct call for all Slurm members), counts, elapsed, hint."""
        rep = refresh(self.runs, self.registry)
        runs = self.runs if rep.retried else rep.runs   # --retries: the reruns just submitted are members
        st = sweep_domain.summarize(self.sweep, runs)
        st.sources, st.warnings, st.calls, st.retried = rep.sources, rep.warnings, rep.calls, rep.retried
        st.scheduler_down = rep.scheduler_down
        return st

    def wait(self, poll_s: float = 2.0, timeout_s: float | None = None,
             on_status: Callable[[sweep_domain.SweepStatus], None] | None = None) -> sweep_domain.SweepStatus:
        """Wait until every run has ended, then collect the completed ones."""
        start = time.monotonic()
        while True:
            st = self.status()
            if on_status is not None:
                on_status(st)
            if st.finished:
                collect_finished(st.runs, self.registry)
                done = sweep_domain.summarize(self.sweep, self.runs)
                done.sources, done.warnings, done.calls = st.sources, st.warnings, st.calls
                return done
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise StateError(f"sweep {self.name}: runs still unfinished after {timeout_s:.0f} s",
                                 f"check it: crackops status --sweep {self.name}")
            time.sleep(poll_s)

    def compare(self, sort: str | None = None, *, states: Iterable[str] | None = None, name: str | None = None,
                since: str | float | None = None, where: Iterable[str] | None = None,
                plot: str | Path | None = None, all_attempts: bool = False) -> sweep_domain.SweepComparison:
        """One group per grid point and which keys matter, over the runs that pass the filters
        (as :func:`crackops.api.compare`'s); ``plot``: also save the comparison figure there. The
        verdict never contradicts which keys matter (:func:`crackops.verdict.reconcile`)."""
        from crackops.compare import filter_runs
        from crackops.verdict import key_effects, reconcile

        if plot is not None:
            check_plot_path(plot)
        rep = refresh(self.runs, self.registry)
        runs = self.runs if rep.retried else rep.runs   # --retries: the reruns just submitted are members
        runs = collect_finished(runs, self.registry)
        runs, earlier = (runs, []) if all_attempts else final_attempts(runs)
        cmp = compare_runs(filter_runs(runs, states=states, name=name, since=since, where=where),
                           sort=sort, group=True)
        cmp.earlier_attempts = [r.shown_id for r in earlier]
        if plot is not None and cmp.rows:
            from crackops.report.plots import compare_figure

            cmp.plot_path = compare_figure(cmp, plot)
        effects = key_effects(self.sweep.grid, cmp.groups)
        cmp.verdict = reconcile(cmp.verdict, effects, cmp.groups)
        return sweep_domain.SweepComparison(sweep=self.sweep, comparison=cmp, effects=effects)

    def cancel(self) -> list[Run]:
        return cancel([r.job_id for r in self.runs if not r.terminal], registry=self.registry)

    def refresh(self) -> sweep_domain.SweepStatus:
        """The members' states now (:meth:`status`), as a run handle's ``refresh``."""
        return self.status()

    def result(self, *, poll_s: float = 2.0, timeout_s: float | None = None,
               sort: str | None = None) -> sweep_domain.SweepComparison:
        """Wait for every member, then the sweep's comparison (ranked grid points, which keys
        matter), as a run handle's ``result``."""
        self.wait(poll_s=poll_s, timeout_s=timeout_s)
        return self.compare(sort=sort)

    def logs(self, *, err: bool = False, tail: int = 20) -> dict[str, str]:
        """The last ``tail`` lines of each member's log (``.out``, or ``.err``), by job id."""
        from crackops import artifacts

        return {r.shown_id: artifacts.tail(r.log_err if err else r.log_out, tail) for r in self.runs}

    def __repr__(self) -> str:
        return f"<sweep {self.name} ({self.sweep.sweep_id}), {len(self.runs)} runs>"


def get_sweep(name: str, registry: Registry | None = None) -> SweepHandle:
    """The handle of a recorded sweep, by name or id."""
    reg = registry or Registry()
    return SweepHandle(reg.get_sweep(name), reg)


def compare_sweeps(names: Iterable[str], *, sort: str | None = None, registry: Registry | None = None,
                   **filters: Any) -> Comparison:
    """Compare the runs of several sweeps: the usual comparison, with the seed groups kept apart
    by sweep and ``across_sweeps`` lining up the grid points the sweeps share (each with whether
    the gap beats the seed noise), or ``across_sweeps_reason`` saying why none lines up. Sweep ids
    in it are replaced by the sweeps' names. ``filters``: :func:`compare`'s (states, name, since,
    where, plot, all_attempts)."""
    reg = registry or Registry()
    handles = [get_sweep(n, reg) for n in dict.fromkeys(names)]
    ids = [r.shown_id for h in handles for r in h.runs]
    if not ids:
        raise NotFoundError(f"the sweeps {', '.join(h.sweep.name for h in handles)} have no runs",
                            "see them: crackops status --sweep NAME")
    cmp = compare(ids, sort=sort, registry=reg, **filters)
    names_by_id = {h.sweep.sweep_id: h.sweep.name for h in handles}
    if cmp.across_sweeps_reason:
        from crackops.compare import no_shared_points_reason

        cmp.across_sweeps_reason = no_shared_points_reason(cmp.runs, cmp.rows, names_by_id)
    for g in cmp.groups:
        g.sweep_id = names_by_id.get(g.sweep_id, g.sweep_id) if g.sweep_id else None
    for p in cmp.across_sweeps:
        p["best_sweep"] = names_by_id.get(p["best_sweep"], p["best_sweep"])
        for g in p["groups"]:
            g["sweep"] = names_by_id.get(g.pop("sweep_id"), None)
    return cmp


def sweeps(registry: Registry | None = None) -> list[Any]:
    """Every recorded sweep (oldest first)."""
    return (registry or Registry()).list_sweeps()


def sweep_overview(*, refresh_states: bool = True, registry: Registry | None = None) -> list[sweep_domain.SweepStatus]:
    """Every recorded sweep with its counts (of last attempts), elapsed and hint: the members'
    states refreshed together first (one scheduler call for all of them, not one per sweep)."""
    reg = registry or Registry()
    sws = reg.list_sweeps()
    members = {sw.sweep_id: reg.sweep_runs(sw.sweep_id) for sw in sws}
    rep = None
    if refresh_states:
        rep = refresh([r for rs in members.values() for r in rs], reg)
        if rep.retried:   # --retries: the reruns just submitted are members too
            members = {sw.sweep_id: reg.sweep_runs(sw.sweep_id) for sw in sws}
        else:
            fresh = {r.run_key: r for r in rep.runs}
            members = {k: [fresh.get(r.run_key, r) for r in rs] for k, rs in members.items()}
    out = []
    for sw in sws:
        st = sweep_domain.summarize(sw, members[sw.sweep_id])
        if rep is not None:
            st.sources, st.warnings, st.scheduler_down = rep.sources, rep.warnings, rep.scheduler_down
        out.append(st)
    return out


def sweep_job_ids(name: str, registry: Registry | None = None) -> list[str]:
    """The job ids of a sweep's last attempts (a run a rerun continued is left out), in grid order."""
    runs, _earlier = final_attempts(get_sweep(name, registry).runs)
    return [r.shown_id for r in runs]
