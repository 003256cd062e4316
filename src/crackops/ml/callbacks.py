"""Keras callbacks of the training job: epoch timing, the best-model checkpoint, and the
epoch-end backup a resumed run continues from. Imported only inside the training (Keras here)."""

from __future__ import annotations

import time
from pathlib import Path

import keras

class EpochTimer(keras.callbacks.Callback):
    """Wall and CPU seconds (whole process, all threads) of every epoch, and its learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_s: list[float] = []
        self.epoch_cpu_s: list[float] = []
        self.lrs: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t, self._c = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_s.append(time.perf_counter() - self._t)
        self.epoch_cpu_s.append(time.process_time() - self._c)
        self.lrs.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

class BestCheckpoint(keras.callbacks.Callback):
    """ModelCheckpoint(save_best_only) that writes at most once per ``min_interval_s``.

    Saving the 4.8 M-parameter model as HDF5 takes seconds: on small data (epochs of a few
    seconds) saving every improvement would double the epoch time. On real data (epochs of
    minutes) every improvement is still saved, so a killed job keeps its best model. The final
    best model is always written after training (EarlyStopping restores its weights).
    """

    def __init__(self, path: Path, stock_copy, min_interval_s: float = 60.0) -> None:
        super().__init__()
        self.path, self.stock_copy, self.min_interval_s = path, stock_copy, min_interval_s
        self.best = float("inf")
        self.last_save = time.monotonic()
        self.saved_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        v = (logs or {}).get("val_loss")
        if v is None or not v < self.best:
            return
        self.best = v
        if time.monotonic() - self.last_save >= self.min_interval_s:
            self.stock_copy(self.model).save(str(self.path))
            self.last_save, self.saved_epoch = time.monotonic(), epoch + 1

class Backup(keras.callbacks.Callback):
    """Backs up the whole training state at every epoch end (``crackops.ml.backup``), puts a
    resumed run's callback state back at train begin (after the callbacks reset themselves),
    and stops at an epoch end when the job must be requeued (``crackops.contract.stop_reason``)."""

    def __init__(self, out_dir: Path, es, rlrop, checkpoint, timer, prior: dict | None,
                 es_best, key: dict, meta: dict) -> None:
        super().__init__()
        self.out_dir, self.es, self.rlrop, self.checkpoint, self.timer = out_dir, es, rlrop, checkpoint, timer
        self.prior, self.es_best, self.key, self.meta = prior or {}, es_best, key, meta
        self.history: dict[str, list[float]] = {k: list(v) for k, v in self.prior.get("history", {}).items()}
        self.stop_reason: str | None = None
        self.stopped = bool(self.prior.get("stopped"))
        self.epoch = int(self.prior.get("epoch", 0))

    def on_train_begin(self, logs=None):
        p = self.prior
        if not p:
            return
        es = p.get("early_stopping", {})
        self.es.wait, self.es.best = es.get("wait", 0), es.get("best")
        self.es.best_epoch = es.get("best_epoch", 0)
        self.es.best_weights = self.es_best
        if self.rlrop is not None and p.get("reduce_lr"):
            r = p["reduce_lr"]
            self.rlrop.wait, self.rlrop.best, self.rlrop.cooldown_counter = r["wait"], r["best"], r["cooldown"]
        self.checkpoint.best = p.get("checkpoint_best", float("inf"))
        t = p.get("timer", {})
        self.timer.epoch_s, self.timer.epoch_cpu_s, self.timer.lrs = (
            list(t.get("epoch_s", [])), list(t.get("epoch_cpu_s", [])), list(t.get("lrs", [])))

    def on_epoch_end(self, epoch, logs=None):
        from crackops.contract import stop_reason
        from crackops.ml import backup

        for k, v in (logs or {}).items():
            if k != "learning_rate":
                self.history.setdefault(k, []).append(float(v))
        self.epoch = epoch + 1
        self.stopped = self.es.stopped_epoch == epoch and self.es.stopped_epoch > 0
        es = self.es
        state = {
            "epoch": self.epoch, "stopped": self.stopped, "config": self.key, "history": self.history,
            "early_stopping": {"wait": es.wait, "best": None if es.best is None else float(es.best),
                               "best_epoch": es.best_epoch},
            "reduce_lr": None if self.rlrop is None else {
                "wait": self.rlrop.wait, "best": float(self.rlrop.best), "cooldown": self.rlrop.cooldown_counter},
            "checkpoint_best": float(self.checkpoint.best),
            "timer": {"epoch_s": self.timer.epoch_s, "epoch_cpu_s": self.timer.epoch_cpu_s, "lrs": self.timer.lrs},
            **self.meta,
        }
        backup.save(self.out_dir, self.model, state, es.best_weights)
        if not self.stopped and self.epoch < self.params.get("epochs", self.epoch + 1):
            why = stop_reason(max(self.timer.epoch_s or [0.0]))
            if why:
                self.stop_reason = why
                self.model.stop_training = True

