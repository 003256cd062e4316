"""Tracking: runs published where a lab already looks (``crackops.tracking``): MLflow, TensorBoard."""

from __future__ import annotations

from typing import Any, Iterable

from crackops.api.results import runs_with_metrics
from crackops.api.sweeping import get_sweep
from crackops.compare import filter_runs
from crackops.errors import NotFoundError, UsageError
from crackops.registry import Registry, Run


def _tracked_runs(job_ids: Iterable[str] | None, sweep: str | None, since: str | float | None,
                  reg: Registry) -> list[Run]:
    ids = list(job_ids or [])
    if ids and sweep:
        raise UsageError("give job ids or --sweep, not both", "e.g. crackops export mlflow --sweep lr-grid")
    if sweep:
        ids = [r.shown_id for r in get_sweep(sweep, reg).runs]
        if not ids:
            raise NotFoundError(f"the sweep {sweep} has no runs", "see it: crackops status --sweep NAME")
    runs = filter_runs(runs_with_metrics(ids or None, reg), since=since)
    if not runs:
        raise NotFoundError("no runs to export" + (f" since {since}" if since else ""), "see crackops status")
    return runs


def export_mlflow(job_ids: Iterable[str] | None = None, *, sweep: str | None = None, since: str | float | None = None,
                  tracking_uri: str | None = None, experiment: str | None = None,
                  registry: Registry | None = None) -> Any:
    """Export runs (all, some job ids, a sweep's; ``since`` filters by submit time) to MLflow: one
    MLflow run each (a sweep: a parent run with its members nested), updated in place by a second
    export. ``tracking_uri``/``experiment`` default to ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_EXPERIMENT_NAME`` (then "crackops"). Returns a ``crackops.tracking.mlflow_export.ExportReport``."""
    from crackops.tracking.mlflow_export import client_for, export
    from crackops.tracking.publish import records_for, resolve_target

    reg = registry or Registry()
    uri, exp = resolve_target(tracking_uri, experiment)
    client = client_for(uri)   # says what to install before any run is read
    return export(records_for(_tracked_runs(job_ids, sweep, since, reg), reg), tracking_uri=uri, experiment=exp,
                  client=client)


def tensorboard_logdirs(job_ids: Iterable[str] | None = None, *, sweep: str | None = None,
                        since: str | float | None = None, registry: Registry | None = None) -> Any:
    """The TensorBoard event folders of runs (all, some job ids, a sweep's), named ``JOB_ID-NAME``:
    a ``crackops.tracking.tensorboard.LogdirSpec`` (``.spec`` is ``--logdir_spec``'s value)."""
    from crackops.tracking.tensorboard import logdir_spec

    reg = registry or Registry()
    return logdir_spec(_tracked_runs(job_ids, sweep, since, reg))
