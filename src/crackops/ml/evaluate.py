"""Predictions over a dataset and the seed's plots (confusion matrices, loss history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def predict_probs(model, ds) -> np.ndarray:
    """Crack probabilities for a (non-shuffled) dataset, in order."""
    probs = model.predict(ds, verbose=0)
    return np.asarray(probs, dtype=float).reshape(-1)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(m: dict[str, Any], title: str, path: Path) -> None:
    plt = _plt()
    cm = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=110)
    ax.imshow(cm, cmap="Blues")
    labels = ["negative", "positive"]
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    vmax = cm.max() if cm.max() else 1
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black", fontsize=13)
    ax.set_title(f"{title}\naccuracy {m['accuracy']:.4%} ({m['errors']} errors of {m['n']:,})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_history(history: dict[str, Sequence[float]], best_epoch: int | None, path: Path) -> None:
    plt = _plt()
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    a1.plot(epochs, history.get("loss", []), "o-", label="train loss")
    if history.get("val_loss"):
        a1.plot(epochs, history["val_loss"], "o-", label="validation loss")
    a1.set_xlabel("epoch")
    a1.set_ylabel("binary cross-entropy")
    a1.set_yscale("log")
    a2.plot(epochs, history.get("accuracy", []), "o-", label="train accuracy")
    if history.get("val_accuracy"):
        a2.plot(epochs, history["val_accuracy"], "o-", label="validation accuracy")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    for a in (a1, a2):
        if best_epoch:
            a.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle("training history", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
