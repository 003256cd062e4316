"""Classification metrics for the crack class (label 1) and the human-readable metrics.txt.

No TensorFlow here: ``collect`` and ``compare`` read and recompute metrics without it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def binary_metrics(y_true: Sequence[int], prob: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 for the crack class, ROC AUC, confusion counts, errors."""
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
