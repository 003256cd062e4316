"""Records (``crackops.tracking.record``) sent to an MLflow tracking server or store.

Idempotent: every exported run carries its crackops run key as a tag (``crackops.run_key``); one
``search_runs`` per 1,000 runs of the experiment finds those already there, and a run is updated in
place, never created twice. A run whose content did not change since the last export (its
``crackops.digest`` and ``crackops.artifacts_digest`` tags) is not sent again: a repeated export of
a finished sweep costs one search. Metric points carry timestamps from the run's own epoch times,
so a point sent twice is the same point (the server keeps one).

MLflow (the ``mlflow`` extra) is imported here only, inside the functions: ``status``, ``compare``
and ``--help`` never load it. Every client call is counted (``ExportReport.calls``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from crackops.errors import BackendError, UsageError
from crackops.tracking.record import (ARTIFACTS_TAG, DIGEST_TAG, PARENT_TAG, RUN_KEY_TAG, Record)

INSTALL_HINT = "pip install 'crackops[mlflow]'  (or: pip install mlflow)"
DEFAULT_EXPERIMENT = "crackops"
#: MLflow's limits per ``log_batch`` call.
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100


@dataclass
class Exported:
    key: str
    job_id: str | None
    name: str
    kind: str
    run_id: str
    action: str            # created | updated | unchanged
    parent_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ExportReport:
    tracking_uri: str
    experiment: str
    experiment_id: str
    runs: list[Exported] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def count(self, action: str) -> int:
        return sum(r.action == action for r in self.runs)

    def url(self, run_id: str | None = None) -> str | None:
        """The MLflow UI's page of the experiment (or a run), when the store is a server."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        base = f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}"
        return f"{base}/runs/{run_id}" if run_id else base

    def to_dict(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "experiment": self.experiment,
                "experiment_id": self.experiment_id, "url": self.url(),
                "created": self.count("created"), "updated": self.count("updated"),
                "unchanged": self.count("unchanged"), "calls": self.total_calls, "calls_by_method": self.calls,
                "seconds": round(self.seconds, 3), "runs": [r.to_dict() for r in self.runs]}


class CountingClient:
    """An ``MlflowClient`` whose every method call is counted (one call: one request to a server,
    ``log_artifact`` one upload)."""

    def __init__(self, client: Any) -> None:
        self._client, self.calls = client, Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)
        return call


def import_mlflow() -> Any:
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError("MLflow is not installed", INSTALL_HINT) from None
    return MlflowClient


def client_for(tracking_uri: str) -> CountingClient:
    """A counting client; a server that does not answer fails in seconds, not after MLflow's
    default minutes of retries, and nothing is printed on stdout (the ``MLFLOW_*`` variables
    still win when set)."""
    MlflowClient = import_mlflow()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # set_terminated otherwise prints "View run ..." on stdout (which is --json's) after a get_run of its own
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    return CountingClient(MlflowClient(tracking_uri=tracking_uri))


def _experiment_id(client: CountingClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise UsageError(f"the MLflow experiment {name!r} is deleted",
                             "restore it in MLflow, or pass another --experiment")
        return exp.experiment_id
    return client.create_experiment(name)


def _existing(client: CountingClient, experiment_id: str) -> dict[str, Any]:
    """The experiment's crackops runs, by run key (one call per 1,000 runs)."""
    found: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` LIKE '%'",
                                  max_results=1000, page_token=token)
        for r in page:
            found.setdefault(r.data.tags.get(RUN_KEY_TAG), r)
        token = page.token
        if not token:
            return found


def _batches(metrics: list, params: list, tags: list) -> Iterable[tuple[list, list, list]]:
    """MLflow's limits: 1,000 metrics, 100 params, 100 tags per call."""
    while metrics or params or tags:
        yield metrics[:BATCH_METRICS], params[:BATCH_PARAMS], tags[:BATCH_TAGS]
        metrics, params, tags = metrics[BATCH_METRICS:], params[BATCH_PARAMS:], tags[BATCH_TAGS:]


def _send(client: CountingClient, experiment_id: str, rec: Record, old: Any, parent_id: str | None) -> tuple[str, str]:
    """Create or update one run; (run id, action)."""
    from mlflow.entities import Metric, Param, RunTag

    digest, art_digest = rec.digest(), rec.artifacts_digest()
    tags = dict(rec.tags)
    if parent_id:
        tags[PARENT_TAG] = parent_id
    if old is not None and old.data.tags.get(DIGEST_TAG) == digest and old.data.tags.get(ARTIFACTS_TAG) == art_digest \
            and old.data.tags.get(PARENT_TAG) == parent_id:
        return old.info.run_id, "unchanged"
    if old is None:
        run_id = client.create_run(experiment_id, start_time=rec.start_ms, run_name=rec.name).info.run_id
        have_params: dict[str, str] = {}
        have_tags: dict[str, str] = {}
    else:
        run_id, have_params, have_tags = old.info.run_id, dict(old.data.params), dict(old.data.tags)
    # a param's value cannot change in MLflow; a run's config does not either: only missing ones
    params = [Param(k, v) for k, v in rec.params.items() if k not in have_params]
    tag_list = [RunTag(k, v) for k, v in tags.items() if have_tags.get(k) != v]
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, ts, step) for k, pts in rec.steps.items() for step, v, ts in pts]
    last = max((ts for pts in rec.steps.values() for _, _, ts in pts), default=None)
    final_ts = rec.end_ms or last or now
    metrics += [Metric(k, v, final_ts, 0) for k, v in rec.final.items()]
    for m, p, t in _batches(metrics, params, tag_list):
        client.log_batch(run_id, metrics=m, params=p, tags=t)
    if old is None or old.data.tags.get(ARTIFACTS_TAG) != art_digest:
        for path in rec.artifacts:
            client.log_artifact(run_id, str(path))
    if rec.status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=rec.status, end_time=rec.end_ms)
    client.log_batch(run_id, tags=[RunTag(DIGEST_TAG, digest), RunTag(ARTIFACTS_TAG, art_digest)])
    return run_id, "created" if old is None else "updated"


def export(records: list[Record], tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT, *,
           client: CountingClient | None = None) -> ExportReport:
    """Send ``records`` (parents, i.e. sweeps, before their members) to MLflow."""
    t0 = time.perf_counter()
    client = client or client_for(tracking_uri)
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover - import_mlflow said so already
        raise UsageError("MLflow is not installed", INSTALL_HINT) from None
    try:
        exp_id = _experiment_id(client, experiment)
        existing = _existing(client, exp_id)
        report = ExportReport(tracking_uri=tracking_uri, experiment=experiment, experiment_id=exp_id)
        ids: dict[str, str] = {}
        for rec in sorted(records, key=lambda r: r.kind != "sweep"):
            parent_id = ids.get(rec.parent_key) if rec.parent_key else None
            run_id, action = _send(client, exp_id, rec, existing.get(rec.key), parent_id)
            ids[rec.key] = run_id
            report.runs.append(Exported(key=rec.key, job_id=rec.job_id, name=rec.name, kind=rec.kind, run_id=run_id,
                                        action=action, parent_run_id=parent_id))
    except MlflowException as e:
        raise BackendError(f"MLflow at {tracking_uri}: {_first_line(e)}",
                           "is the tracking server running and the URI right? (mlflow server --port 5000)") from None
    except OSError as e:  # connection refused, DNS, a local store's disk
        raise BackendError(f"MLflow at {tracking_uri}: {_first_line(e)}",
                           "is the tracking server running and the URI right? (mlflow server --port 5000)") from None
    report.calls = dict(client.calls)
    report.seconds = time.perf_counter() - t0
    return report


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
