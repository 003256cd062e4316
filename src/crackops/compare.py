"""Comparing runs: metrics side by side, only the config values that differ, split warnings.

Pure functions over registry runs (and their manifests); no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crackops.registry import Run

# config keys that identify where things went, not how the model was trained
IGNORED_CONFIG = {"job_id", "out_root"}

METRIC_COLUMNS = [
    ("train_accuracy", "train acc"), ("test_accuracy", "test acc"), ("test_precision", "precision"),
    ("test_recall", "recall"), ("test_f1", "F1"), ("test_fn", "missed cracks"), ("test_fp", "false alarms"),
    ("test_errors", "test errors"), ("epochs_run", "epochs"), ("wall_time_s", "wall s"),
]


@dataclass
class Comparison:
    runs: list[Run]
    differing: list[str]                      # config keys whose values differ
    rows: list[dict[str, Any]]                # one per run: job_id, name, state, metrics, differing config
    warnings: list[str] = field(default_factory=list)
    best: str | None = None                   # job id with the best test accuracy (ties: F1, then fewer FN)

    def to_dict(self) -> dict[str, Any]:
        return {"differing_config": self.differing, "runs": self.rows, "warnings": self.warnings,
                "best": self.best}


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for c in configs for k in c} - IGNORED_CONFIG)
    return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]


def compare_runs(runs: list[Run]) -> Comparison:
    configs = [r.config for r in runs]
    diff = differing_keys(configs) if len(runs) > 1 else []
    warnings: list[str] = []
    rows = []
    for r in runs:
        m = r.metrics or {}
        row: dict[str, Any] = {"job_id": r.job_id, "name": r.name, "backend": r.backend, "state": r.state,
                               "collected": r.metrics is not None}
        row.update({k: m.get(k) for k, _ in METRIC_COLUMNS})
        row["config"] = {k: r.config.get(k) for k in diff}
        if r.state != "COMPLETED":
            row["reason"] = r.reason
        rows.append(row)
    fps = {r.job_id: (r.metrics or {}).get("split_fingerprint", {}).get("test") for r in runs if r.metrics}
    if len({v for v in fps.values() if v}) > 1:
        warnings.append("runs used different test splits (different data, seed or fractions): "
                        "their test metrics are not measured on the same images")
    uncollected = [r.job_id for r in runs if r.metrics is None]
    if uncollected:
        warnings.append(f"no metrics for {', '.join(uncollected)} (not collected, or not completed)")
    scored = [row for row in rows if row.get("test_accuracy") is not None]
    best = None
    if len(scored) > 1:
        best = max(scored, key=lambda row: (row["test_accuracy"], row["test_f1"] or 0, -(row["test_fn"] or 0)))["job_id"]
    return Comparison(runs=runs, differing=diff, rows=rows, warnings=warnings, best=best)
