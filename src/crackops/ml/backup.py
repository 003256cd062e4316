"""The training job's resumable state, in ``out/<job_id>/backup/``, written at every epoch end and
every ``backup_minutes`` inside an epoch (``crackops.ml.callbacks.Backup``).

What is saved (enough for a resumed run to continue as if never stopped):

- ``variables.npz``: every model variable (weights, BatchNorm moving statistics, the Dropout
  seed-generator states), in ``model.variables`` order;
- ``optimizer.npz``: every optimizer variable (step count, learning rate, Adam moments);
- ``es_best.npz``: EarlyStopping's best weights (restored at the end of training);
- ``metrics.npz`` (mid-epoch backups only): the epoch's running metric sums (loss, accuracy), so
  the resumed epoch's history entry covers all its batches;
- ``state.json``: the epochs done (``epoch``) and, in a mid-epoch backup, the batches done in the
  next one (``step``, else 0) with that epoch's time so far (``partial``); the history so far,
  EarlyStopping wait/best/best epoch, ReduceLROnPlateau wait/best/cooldown, the best-model
  checkpoint's score, epoch timings, and how many attempts ran.

The data order needs no saved RNG: each epoch's permutation and augmentation are drawn from
(seed, epoch) alone, and batch ``step`` of epoch ``epoch`` is found again by skipping the first
``step`` batches of that epoch's permutation (``crackops.ml.pipeline.epoch_batches``).

Atomic: everything is written into ``backup.new/`` and swapped in with two renames; a crash
between them leaves ``backup.old/``, which ``read_state`` falls back to. A backup is never half
written. Paths are relative to the out dir, so a run resumes on another node that sees it.

``read_state`` needs neither TensorFlow nor numpy (status, rerun and resume call it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

BACKUP = "backup"
STATE = "state.json"
SCHEMA = 1


def _dirs(out_dir: Path | str) -> list[Path]:
    out = Path(out_dir)
    return [out / BACKUP, out / f"{BACKUP}.old"]


def read_state(out_dir: Path | str) -> dict[str, Any] | None:
    """The last complete backup's ``state.json`` (plus ``_dir``, where it is), or None."""
    for d in _dirs(out_dir):
        try:
            st = json.loads((d / STATE).read_text())
        except (OSError, ValueError):
            continue
        if st.get("schema") == SCHEMA:
            st["_dir"] = str(d)
            return st
    return None


def point(state: dict[str, Any]) -> str:
    """Where a backup was made: "after epoch 3", or "after batch 5 of epoch 4" (mid-epoch)."""
    step = int(state.get("step") or 0)
    return f"after batch {step} of epoch {int(state['epoch']) + 1}" if step else f"after epoch {state['epoch']}"


def save(out_dir: Path | str, model: Any, state: dict[str, Any], es_best: list | None,
         metrics: list | None = None) -> None:
    import numpy as np

    out = Path(out_dir)
    new, cur, old = out / f"{BACKUP}.new", out / BACKUP, out / f"{BACKUP}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    np.savez(new / "variables.npz", *[np.asarray(v.numpy()) for v in model.variables])
    np.savez(new / "optimizer.npz", *[np.asarray(v.numpy()) for v in model.optimizer.variables])
    if es_best is not None:
        np.savez(new / "es_best.npz", *[np.asarray(w) for w in es_best])
    if metrics is not None:
        np.savez(new / "metrics.npz", *[np.asarray(m) for m in metrics])
    (new / STATE).write_text(json.dumps({**state, "schema": SCHEMA}, default=float))
    for f in new.iterdir():  # on disk before the swap
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(old, ignore_errors=True)
    if cur.exists():
        os.replace(cur, old)
    os.replace(new, cur)
    shutil.rmtree(old, ignore_errors=True)


def _arrays(path: Path) -> list:
    import numpy as np

    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def restore_model(state: dict[str, Any], model: Any) -> list | None:
    """Put the backed-up variables into ``model`` (built and compiled the same way) and its
    optimizer; returns EarlyStopping's best weights (or None)."""
    d = Path(state["_dir"])
    values = _arrays(d / "variables.npz")
    if len(values) != len(model.variables):
        raise RuntimeError(f"backup in {d} holds {len(values)} variables, the model has {len(model.variables)}: "
                           "was it made with another configuration?")
    for v, a in zip(model.variables, values):
        v.assign(a)
    opt = model.optimizer
    opt.build(model.trainable_variables)
    ovalues = _arrays(d / "optimizer.npz")
    if len(ovalues) != len(opt.variables):
        raise RuntimeError(f"backup in {d}: optimizer state does not match the model")
    for v, a in zip(opt.variables, ovalues):
        v.assign(a)
    es = d / "es_best.npz"
    return _arrays(es) if es.exists() else None


def metric_values(state: dict[str, Any]) -> list | None:
    """A mid-epoch backup's running metric sums (``model.metrics_variables`` order), or None."""
    p = Path(state["_dir"]) / "metrics.npz"
    return _arrays(p) if p.exists() else None
