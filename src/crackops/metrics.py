"""The metrics: how each is computed, looked up, shown and ranked, in one table.

``binary_metrics`` computes a split's numbers in the training job (crack = label 1);
``collect`` stores them per run as ``{split}_{name}`` (``test_f1``). ``METRICS`` is the one
definition per metric that the compare table, the collect view, the HTML report and the plots
all read: add a metric there (and compute it in ``binary_metrics`` if it is new) and every view
shows it. No TensorFlow, no numpy at import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from crackops import fmt


def binary_metrics(y_true: Sequence[int], prob: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 for the crack class, ROC AUC, confusion counts, errors."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    p = np.asarray(prob, dtype=float)
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    n = tn + fp + fn + tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    try:
        auc = float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None
    except ValueError:
        auc = None
    return {
        "n": n, "accuracy": (tp + tn) / n if n else math.nan, "precision": precision, "recall": recall,
        "f1": f1, "roc_auc": auc, "tn": tn, "fp": fp, "fn": fn, "tp": tp, "errors": fp + fn,
        "threshold": threshold,
    }


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % (z = 1.96) Wilson score interval of a proportion ``p`` measured on ``n`` items: how
    far a test accuracy could be from the model's true accuracy on images like the test set's.
    Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero-width at 0 or 100 %."""
    if n <= 0:
        return (0.0, 1.0)
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def _test_accuracy_ci(metrics: dict[str, Any]) -> list[float] | None:
    acc, n = metrics.get("test_accuracy"), metrics.get("test_n")
    if acc is None or not n:
        return None
    return list(wilson_interval(float(acc), int(n)))


#: metrics computed from other metrics of the same run (``source="derived"``)
DERIVED = {"test_accuracy_ci95": _test_accuracy_ci}


@dataclass(frozen=True)
class Metric:
    """One metric: where its value comes from, how it reads, which way is better."""

    key: str                  # the name in compare rows, JSON and CSV: "test_f1", "cpu_eff"
    label: str                # its column in the compare tables
    kind: str                 # pct (0..1 shown as %), num (0..1 as a decimal), int (a count), dur (seconds),
                              # ci (a [low, high] pair of 0..1 shown as a % range)
    better: str | None        # "high", "low" or None (neither: a fact, not a score)
    source: str = "metrics"   # metrics: run.metrics (from the manifest, by collect); accounting: Slurm's;
                              # derived: computed from run.metrics by DERIVED[key]
    split: str | None = None  # the manifest's per-split name ("f1" for train_f1/val_f1/test_f1)
    long: str | None = None   # a label that stands alone (report cards, plot ticks)
    split_label: str | None = None  # its column in the per-split tables (default: label)
    aliases: tuple[str, ...] = ()   # what --sort also accepts
    digits: int | None = None # decimals in the compare tables (pct: 0 unless given; num: 3)
    drop: int = 0             # narrow terminal: columns with the lowest number go first; 0 = always shown
    column: bool = True       # a column of the runs table (False: JSON/CSV only, or shown inside another)
    in_groups: bool = True    # a column of the seed-groups table (mean ± std)
    with_best: bool = False   # shown as "value (best_epoch)" in the runs table
    of_limit: bool = False    # shown as "value of <time limit>" in the runs table
    plot: str | None = None   # "rate" or "count": a bar in the comparison figure
    card: bool = False        # a card at the top of a run's report

    @property
    def title(self) -> str:
        return self.long or self.label

    def value(self, run: Any) -> Any:
        """The value for a registry run. A run's results count only when it COMPLETED (an
        INCOMPLETE run keeps the metrics it had in the registry, but they are no result)."""
        if self.source in ("metrics", "derived") and getattr(run, "state", "COMPLETED") != "COMPLETED":
            return None
        if self.source == "derived":
            return DERIVED[self.key](run.metrics or {})
        return ((run.accounting if self.source == "accounting" else run.metrics) or {}).get(self.key)

    def split_value(self, split_metrics: dict[str, Any], split: str = "test") -> Any:
        """The value from one split's manifest numbers (``{"accuracy": ..., "n": ...}``), derived
        metrics computed as for a registry run (the report's cards and compare's column agree)."""
        if self.source == "derived":
            return DERIVED[self.key]({f"{split}_{k}": v for k, v in split_metrics.items()})
        return split_metrics.get(self.split) if self.split else None

    @property
    def split_title(self) -> str:
        return self.split_label or self.label

    def split_key(self, split: str) -> str:
        return f"{split}_{self.split}"

    def format(self, v: Any, detail: bool = False) -> str:
        """As a table cell; ``detail`` for one run's own view (more decimals)."""
        if v is None:
            return "-"
        if self.kind == "pct":
            return fmt.pct(v, 2 if detail else (self.digits or 0))
        if self.kind == "dur":
            return fmt.duration(v)
        if self.kind == "ci":
            d = 2 if detail else max(1, self.digits or 1)
            return f"{v[0] * 100:.{d}f}–{v[1] * 100:.{d}f}%"
        if self.kind == "int":
            return f"{v:.0f}" if isinstance(v, (int, float)) else str(v)
        return fmt.num(v, 4 if detail else (self.digits or 3))

    @property
    def row_header(self) -> str:
        """Its header in the runs table."""
        return f"{self.label} (best)" if self.with_best else self.label

    def row_cell(self, row: dict[str, Any]) -> str:
        """Its cell in the runs table for a compare row: '?' after a number sacct got wrong, the
        best epoch after the epochs, the time limit after the time used."""
        v = row.get(self.key)
        s = self.format(v)
        if v is None:
            return s
        if self.key in (row.get("implausible") or ()):
            s += "?"
        if self.with_best and row.get("best_epoch") is not None:
            s += f" ({row['best_epoch']})"
        if self.of_limit and row.get("timelimit_s"):
            s += f" of {fmt.duration(row['timelimit_s'], 'short')}"
        return s

    def format_stat(self, st: dict[str, Any]) -> str:
        """mean ± std over seeds (just the mean when there is one run)."""
        mean, std = st.get("mean"), st.get("std")
        if mean is None:
            return "-"
        if std is None:
            return self.format(mean) if self.kind != "int" else f"{mean:.0f}"
        if self.kind == "pct":
            d = self.digits or 0
            return f"{mean * 100:.{d}f} ± {std * 100:.{d}f}%"
        if self.kind == "dur":
            return f"{fmt.duration(mean)} ± {fmt.duration(std)}"
        if self.kind == "int":
            return f"{mean:.1f} ± {std:.1f}"
        return f"{mean:.3f} ± {std:.3f}"


METRICS: list[Metric] = [
    Metric("test_accuracy", "test acc", "pct", "high", split="accuracy", long="test accuracy", split_label="accuracy",
           aliases=("acc", "accuracy", "test_acc"), digits=1, plot="rate", card=True),
    Metric("test_accuracy_ci95", "95% CI", "ci", None, source="derived", long="test accuracy, 95 % interval",
           digits=2, drop=4, in_groups=False, card=True),
    Metric("test_precision", "precision", "num", "high", split="precision", long="precision (crack)",
           aliases=("precision",), drop=2, plot="rate", card=True),
    Metric("test_recall", "recall", "num", "high", split="recall", long="recall (crack)",
           aliases=("recall",), drop=5, plot="rate", card=True),
    Metric("test_f1", "F1", "num", "high", split="f1", long="F1 (crack)", aliases=("f1",), drop=10,
           plot="rate", card=True),
    Metric("test_fn", "missed cracks", "int", "low", split="fn", long="missed cracks (FN)",
           aliases=("missed", "fn", "missed_cracks"), plot="count", card=True),
    Metric("test_fp", "false alarms", "int", "low", split="fp", long="false alarms (FP)",
           aliases=("fp", "false_alarms"), plot="count", card=True),
    Metric("test_roc_auc", "ROC AUC", "num", "high", split="roc_auc", aliases=("auc", "roc_auc"), drop=1,
           plot="rate", card=True),
    Metric("epochs_run", "epochs", "int", None, aliases=("epochs",), drop=4, with_best=True),
    Metric("best_epoch", "best epoch", "int", None, column=False, in_groups=False),
    Metric("wall_time_s", "wall time", "dur", "low", aliases=("wall", "wall_time", "time"), drop=3),
    Metric("cpu_eff", "CPU eff", "pct", "high", source="accounting", aliases=("cpu",), drop=8),
    Metric("mem_eff", "mem eff", "pct", "high", source="accounting", aliases=("mem",), drop=7),
    Metric("time_eff", "time used", "pct", None, source="accounting", aliases=("time_used",), drop=6,
           in_groups=False, of_limit=True),
]
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
#: The per-split views (collect, the report's metrics table) show these, in this order.
SPLIT_VIEW = ("accuracy", "precision", "recall", "f1", "roc_auc", "fn", "fp")
SPLIT_METRICS: list[Metric] = sorted((m for m in METRICS if m.split), key=lambda m: SPLIT_VIEW.index(m.split))


def format_metrics_txt(job_id: str, metrics: dict[str, dict[str, Any]], extra: dict[str, Any]) -> str:
    """The seed's metrics.txt, human-readable: one block per split."""
    lines = [f"crackops run {job_id}", ""]
    for key, value in extra.items():
        lines.append(f"{key}: {value}")
    for split in ("train", "val", "test"):
        m = metrics.get(split)
        if not m:
            continue
        lines += [
            "",
            f"[{split}] {m['n']} images",
            f"accuracy:  {m['accuracy']:.4%}  ({m['errors']} misclassified of {m['n']})",
            f"precision: {m['precision']:.4f}  (crack class)",
            f"recall:    {m['recall']:.4f}",
            f"f1:        {m['f1']:.4f}",
            f"roc_auc:   {m['roc_auc']:.4f}" if m.get("roc_auc") is not None else "roc_auc:   n/a",
            "confusion (rows = true, cols = predicted; 0 = negative, 1 = positive/crack):",
            "            pred 0   pred 1",
            f"  true 0  {m['tn']:>8} {m['fp']:>8}",
            f"  true 1  {m['fn']:>8} {m['tp']:>8}",
        ]
    return "\n".join(lines) + "\n"
