"""From registry runs to what is published: the records of some runs with their sweeps as parents,
the tracking URI and experiment a user meant, and the export ``collect`` makes when the run's
profile has a ``[tracking]`` table."""

from __future__ import annotations

import os
from typing import Any, Iterable

from crackops.errors import CrackopsError, UsageError
from crackops.registry import Registry, Run
from crackops.tracking.record import Record, run_record, sweep_record

URI_ENV, EXPERIMENT_ENV = "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"  # MLflow's own variables


def records_for(runs: Iterable[Run], registry: Registry) -> list[Record]:
    """One record per run, and one parent record per sweep any of them belongs to (over all the
    sweep's runs), parents first."""
    runs = list(runs)
    parents: dict[str, Record] = {}
    names: dict[str, str] = {}
    for sid in dict.fromkeys(r.sweep_id for r in runs if r.sweep_id):
        try:
            sweep = registry.get_sweep(sid)
        except CrackopsError:
            continue
        names[sid] = sweep.name
        parents[sid] = sweep_record(sweep, registry.sweep_runs(sid))
    members = [run_record(r, sweep_name=names.get(r.sweep_id or ""),
                          parent_key=parents[r.sweep_id].key if r.sweep_id in parents else None) for r in runs]
    return list(parents.values()) + members


def resolve_target(tracking_uri: str | None, experiment: str | None) -> tuple[str, str]:
    """``--tracking-uri`` / ``--experiment``, else MLflow's own environment variables."""
    from crackops.tracking.mlflow_export import DEFAULT_EXPERIMENT

    uri = tracking_uri or os.environ.get(URI_ENV)
    if not uri:
        raise UsageError("no MLflow tracking URI",
                         f"pass --tracking-uri URI or set {URI_ENV} (a server: http://HOST:5000; "
                         "a local store: sqlite:///mlflow.db)")
    return uri, experiment or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT


def export_at_collect(run: Run, registry: Registry) -> dict[str, Any] | None:
    """When the run's profile has ``[tracking] mlflow_uri``: export it (and its sweep's parent).
    Never raises: ``collect`` reports a failed export and goes on (None: nothing to do)."""
    from crackops.config import load_tracking

    profile = (run.resources or {}).get("profile")
    if not profile:
        return None
    try:
        settings = load_tracking(str(profile))
    except CrackopsError:
        return None  # the profile is gone or unreadable: nothing asks for an export
    uri = settings.get("mlflow_uri")
    if not uri:
        return None
    from crackops.tracking.mlflow_export import export

    try:
        rep = export(records_for([run], registry), *resolve_target(uri, settings.get("mlflow_experiment")))
    except CrackopsError as e:
        return {"tracking_uri": uri, "error": e.message, "hint": e.hint}
    mine = next(r for r in rep.runs if r.kind == "run")
    return {"tracking_uri": uri, "experiment": rep.experiment, "run_id": mine.run_id, "action": mine.action,
            "url": rep.url(mine.run_id), "calls": rep.total_calls}

