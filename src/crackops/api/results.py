"""Results: collecting a finished run's artifacts and metrics, comparing runs, the HTML report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from crackops import artifacts, backends
from crackops.api.checks import check_plot_path
from crackops.api.states import StatusReport, refresh, status, wait
from crackops.api.submission import makes_artifacts
from crackops.compare import Comparison, compare_runs, filter_runs, final_attempts
from crackops.errors import CrackopsError, StateError, UsageError
from crackops.registry import Registry, Run


@dataclass
class CollectReport:
    run: Run
    artifacts: artifacts.ArtifactReport
    err_tail: str = ""
    #: what the backend copied to this machine first (a remote run: ``{"bytes": N, ...}``)
    fetched: dict[str, Any] | None = None
    tracking: dict[str, Any] | None = None   # the export at collect (a profile's [tracking]), or None

    @property
    def ok(self) -> bool:
        return self.run.state == "COMPLETED" and self.artifacts.ok

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.run.job_id, "state": self.run.state, "ok": self.ok,
                "reason": self.run.reason, "artifacts": self.artifacts.to_dict(),
                "metrics": self.run.metrics if self.run.state == "COMPLETED" else None, "err_tail": self.err_tail,
                "fetched": self.fetched or None, "tracking": self.tracking}


def collect(job_id: str, registry: Registry | None = None) -> CollectReport:
    """Verify a finished run's artifacts and read its metrics into the registry."""
    reg = registry or Registry()
    run = reg.get(job_id)
    if not run.terminal:
        run = refresh([run], reg).runs[0]
    if not run.terminal:
        raise StateError(f"run {job_id} is still {run.state}",
                         f"wait for it: crackops wait {job_id}  (or follow it: crackops logs {job_id} --follow)")
    fetched = backends.get_backend(run.backend).fetch(run)   # a remote run's folder copied here
    rep = artifacts.verify(run.out_dir)
    err_tail = ""
    if run.state in ("COMPLETED", "INCOMPLETE") and makes_artifacts(run):
        # artifacts decide: every file present and sound, or INCOMPLETE (never ranked by compare;
        # metrics read earlier stay recorded, they are just not shown as a result)
        if not rep.ok:
            reason = f"artifacts {rep.summary()} in {run.out_dir}"
            if run.state != "INCOMPLETE" or run.reason != reason:
                reg.update(run, state="INCOMPLETE", reason=reason)
            run.state, run.reason = "INCOMPLETE", reason
        elif run.state == "INCOMPLETE":
            reg.update(run, state="COMPLETED", reason=None)
            run.state, run.reason = "COMPLETED", None
    if run.state != "COMPLETED" or not rep.ok:
        err_tail = artifacts.failure_tail(run.log_err, 25)
    if rep.ok and rep.manifest and run.state == "COMPLETED":
        m = rep.manifest
        metrics = {
            **{f"{split}_{k}": v for split in ("train", "val", "test") for k, v in m["metrics"].get(split, {}).items()},
            "epochs_run": m.get("epochs_run"), "best_epoch": m.get("best_epoch"),
            "wall_time_s": m.get("wall_time_s"),
            "split_fingerprint": m.get("dataset", {}).get("fingerprints", {}),
            "train_images_per_s": m.get("runtime", {}).get("train_images_per_s"),
        }
        reg.update(run, metrics=metrics, collected_at=time.time())
        run.metrics, run.collected_at = metrics, time.time()
        from crackops.tracking.publish import export_at_collect

        return CollectReport(run=run, artifacts=rep, err_tail=err_tail, fetched=fetched,
                             tracking=export_at_collect(run, reg))
    return CollectReport(run=run, artifacts=rep, err_tail=err_tail, fetched=fetched)


def collect_finished(runs: list[Run], registry: Registry | None = None) -> list[Run]:
    """``runs`` with the metrics of every COMPLETED run nobody collected yet read in (cheap: one
    manifest each). Runs that cannot be collected are returned as they are."""
    reg = registry or Registry()
    out = list(runs)
    for i, r in enumerate(out):
        if r.state == "COMPLETED" and r.metrics is None:
            try:
                out[i] = collect(r.shown_id, registry=reg).run
            except CrackopsError:
                pass
    return out


def wait_until_done(job_ids: Iterable[str], *, poll_s: float = 2.0, timeout_s: float | None = None,
                    on_report: Callable[[StatusReport], None] | None = None,
                    registry: Registry | None = None) -> list[Run]:
    """Wait until every run has ended (``on_report`` sees each poll's :class:`StatusReport`), then
    collect the completed ones. Returns the runs, in the order asked."""
    reg = registry or Registry()
    last: StatusReport | None = None
    for last in wait(job_ids, poll_s=poll_s, timeout_s=timeout_s, registry=reg):
        if on_report is not None:
            on_report(last)
    return collect_finished(last.runs if last else [], reg)


def runs_with_metrics(job_ids: Iterable[str] | None = None, registry: Registry | None = None) -> list[Run]:
    """The runs (all when no ids), states refreshed, finished runs collected if nobody did yet."""
    reg = registry or Registry()
    return collect_finished(status(list(job_ids) if job_ids else None, registry=reg).runs, reg)


def compare(job_ids: Iterable[str] | None = None, *, states: Iterable[str] | None = None,
            name: str | None = None, since: str | float | None = None, where: Iterable[str] | None = None,
            sort: str | None = None, group: bool = True, plot: str | Path | None = None,
            all_attempts: bool = False, registry: Registry | None = None) -> Comparison:
    """Compare runs (all when no ids; refreshed and collected first), filtered by state, name glob,
    submit time and config values (see :func:`crackops.compare.filter_runs`), sorted by ``sort``,
    seed groups reduced unless ``group`` is False. A run that a rerun among them continues is left
    out (only the final attempt of each chain counts; ``cmp.earlier_attempts`` names the others)
    unless ``all_attempts``. With ``plot``, also save the comparison figure as that PNG
    (``cmp.plot_path``) when there are runs."""
    if plot is not None:
        check_plot_path(plot)
    runs = runs_with_metrics(job_ids, registry)
    earlier: list[Run] = []
    if not all_attempts:
        runs, earlier = final_attempts(runs)
    cmp = compare_runs(filter_runs(runs, states=states, name=name, since=since, where=where),
                       sort=sort, group=group)
    cmp.earlier_attempts = [r.shown_id for r in earlier]
    if plot is not None and cmp.rows:
        from crackops.report.plots import compare_figure

        cmp.plot_path = compare_figure(cmp, plot)
    return cmp


def default_report_name(job_ids: list[str]) -> str:
    if len(job_ids) == 1:
        return f"report-{job_ids[0]}.html"
    if len(job_ids) <= 3:
        return "report-" + "_".join(job_ids) + ".html"
    return f"report-{job_ids[0]}-and-{len(job_ids) - 1}-more.html"


@dataclass
class ReportResult:
    path: Path
    runs: list[Run]

    @property
    def unfinished(self) -> list[str]:
        return [r.job_id for r in self.runs if not r.terminal]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "job_ids": [r.job_id for r in self.runs], "unfinished": self.unfinished}


def report(job_ids: Iterable[str], path: str | Path | None = None, *, max_errors: int = 48,
           registry: Registry | None = None) -> ReportResult:
    """Write one self-contained HTML report about runs (refreshed and collected first), in the
    order given; ``path`` defaults to ``report-<job_id>.html`` in the current folder."""
    if max_errors < 0:
        raise UsageError(f"--max-errors {max_errors} must be 0 or more", "e.g. --max-errors 48")
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        raise UsageError("no runs given", "pass one or more job ids (see crackops status)")
    p = Path(path) if path is not None else Path(default_report_name(ids))
    try:
        parent = p.expanduser().resolve().parent
        p_is_dir = p.expanduser().is_dir()
    except (OSError, RuntimeError, ValueError) as e:   # a name too long (10,000-digit job id), "~nobody/", NUL
        raise UsageError(f"cannot write a report to {p}: {getattr(e, 'strerror', None) or e}",
                         "pass -o FILE with a shorter name") from None
    if not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist", "create it, or pass -o FILE in an existing folder")
    if p_is_dir:
        raise UsageError(f"{p} is a folder", f"pass a file name, e.g. -o {p / default_report_name(ids)}")
    runs = runs_with_metrics(ids, registry)
    order = {j: i for i, j in enumerate(ids)}
    runs.sort(key=lambda r: order.get(r.shown_id, order.get(r.job_id, 0)))
    from crackops.report.html import write_report

    return ReportResult(path=write_report(runs, p, max_errors=max_errors), runs=runs)


def import_runs(paths: Iterable[str | Path], registry: Registry | None = None) -> Any:
    """Record the ended runs found in out folders that the registry lacks (``crackops.importer``),
    then read the completed ones' results as ``collect`` does (artifacts checked)."""
    from crackops import importer

    reg = registry or Registry()
    rep = importer.import_runs(paths, reg)
    rep.imported = collect_finished(rep.imported, reg)
    return rep
