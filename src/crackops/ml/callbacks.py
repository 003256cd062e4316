"""Keras callbacks of the training job: epoch timing, the best-model checkpoint, early stopping
that can hold its final restore, and the backup a resumed run continues from (at every epoch end
and every few minutes inside an epoch), which also stops the job for a requeue before its time
limit. Imported only inside the training (Keras here)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Callable

import keras

from crackops.contract import stop_now, stop_reason

class EpochTimer(keras.callbacks.Callback):
    """Wall and CPU seconds (whole process, all threads) of every epoch, and its learning rate.
    ``carry_s``/``carry_cpu_s``: what an epoch resumed from a mid-epoch backup had already taken."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_s: list[float] = []
        self.epoch_cpu_s: list[float] = []
        self.lrs: list[float] = []
        self.carry_s = self.carry_cpu_s = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t, self._c = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        """Wall and CPU seconds of the current epoch so far."""
        return (time.perf_counter() - self._t + self.carry_s, time.process_time() - self._c + self.carry_cpu_s)

    def on_epoch_end(self, epoch, logs=None):
        s, c = self.elapsed()
        self.epoch_s.append(s)
        self.epoch_cpu_s.append(c)
        self.carry_s = self.carry_cpu_s = 0.0
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

    def on_epoch_end(self, epoch, logs=None):
        v = (logs or {}).get("val_loss")
        if v is None or not v < self.best:
            return
        self.best = v
        if time.monotonic() - self.last_save >= self.min_interval_s:
            self.stock_copy(self.model).save(str(self.path))
            self.last_save = time.monotonic()

class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, whose restore of the best weights at the end of ``fit`` can be held
    back (``hold``): a run resumed from a mid-epoch backup finishes that epoch in a fit of its own,
    and the training goes on after it."""

    hold = False

    def on_train_end(self, logs=None):
        if not self.hold:
            super().on_train_end(logs)

class Backup(keras.callbacks.Callback):
    """The resumable state (``crackops.ml.backup``) and the stop before the time limit.

    - Backs up at every epoch end and, inside an epoch, at the first batch end after
      ``backup_s`` seconds without a backup (0: epoch ends only). A mid-epoch backup also holds
      the batches done in the epoch (``step``), the epoch's running metric sums and its time so
      far, so a resume continues at the next batch, with the same data order (``epoch_batches``).
    - Puts the callbacks' state back at train begin (after they reset themselves): from the
      backup a resumed run starts from, then from the latest backup (a second ``fit``).
    - After every batch and at every epoch end asks ``crackops.contract.stop_reason`` whether the
      job must stop for a requeue, given what the next stopping point costs (the slowest of the
      last batches, the validation, a backup); if so it backs up (unless it just did) and calls
      ``crackops.contract.stop_now``, which on Slurm requeues the job and exits from right here.
    - After the last epoch (or early stopping) asks the same for the evaluation and artifacts that
      finish the run (``finish_s``: their estimated seconds, given the validation's): a training
      that ends too close to its limit is requeued, and the next attempt only evaluates.
    """

    def __init__(self, out_dir: Path, es, rlrop, checkpoint, timer, prior: dict | None,
                 es_best, key: dict, meta: dict, *, epochs: int, steps: int, backup_s: float = 0.0,
                 start_step: int = 0, metric_values: list | None = None,
                 finish_s: Callable[[float], float] | None = None, on_save: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.out_dir, self.es, self.rlrop, self.checkpoint, self.timer = out_dir, es, rlrop, checkpoint, timer
        self.latest, self.es_best, self.key, self.meta = prior or {}, es_best, key, meta
        self.history: dict[str, list[float]] = {k: list(v) for k, v in self.latest.get("history", {}).items()}
        self.stopped = bool(self.latest.get("stopped"))
        self.epoch = int(self.latest.get("epoch", 0))
        self.epochs, self.steps, self.backup_s = epochs, steps, float(backup_s or 0.0)
        self.finish_s = finish_s
        self.on_save = on_save                                 # before every backup (TensorBoard's flush)
        self.offset = int(start_step)                          # batches of this epoch done before this fit
        self.pending = (metric_values, self.latest.get("partial")) if self.offset else None
        self.batch_s: deque[float] = deque(maxlen=20)
        timing = self.latest.get("stop_timing") or {}   # an earlier attempt's: known before this one's first epoch end
        self.val_s = float(timing.get("val_s") or 0.0)
        self.save_s: float | None = timing.get("save_s")  # the slowest backup so far (seconds)
        self.saves = {"epoch_end": 0, "timed": 0, "stop": 0}
        self.last_backup = time.monotonic()
        self._last = time.perf_counter()
        self.offset_now = self.offset                          # the step the last backup was made at
        self.epoch_ended: float | None = None                  # perf_counter() at the last epoch end

    def on_train_begin(self, logs=None):
        p = self.latest
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

    def on_epoch_begin(self, epoch, logs=None):
        self._last = time.perf_counter()
        if self.pending is not None:  # the epoch a mid-epoch backup was made in: its sums so far
            values, partial = self.pending
            self.pending = None
            if values is not None:
                variables = self.model.metrics_variables
                if len(variables) != len(values):
                    raise RuntimeError(f"backup holds {len(values)} metric values, the model has {len(variables)}")
                for v, a in zip(variables, values):
                    v.assign(a)
            self.timer.carry_s = float((partial or {}).get("elapsed_s", 0.0))
            self.timer.carry_cpu_s = float((partial or {}).get("cpu_s", 0.0))

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.batch_s.append(now - self._last)
        self._last = now
        step = self.offset + batch + 1
        if step >= self.steps:
            return  # the epoch end comes next, with its own backup and check
        why = self._stop_reason()
        if why or (self.backup_s > 0 and time.monotonic() - self.last_backup >= self.backup_s):
            self._save(step, "stop" if why else "timed")
        if why:
            self._stop(why)
        self._last = time.perf_counter()  # a backup's time is not the next batch's

    def on_epoch_end(self, epoch, logs=None):
        self.val_s = max(self.val_s, time.perf_counter() - self._last)  # validation and the callbacks before this one
        for k, v in (logs or {}).items():
            if k != "learning_rate":
                self.history.setdefault(k, []).append(float(v))
        self.epoch, self.offset = epoch + 1, 0
        self.stopped = self.es.stopped_epoch == epoch and self.es.stopped_epoch > 0
        self._save(0, "epoch_end")
        self.epoch_ended = time.perf_counter()
        if not self.stopped and self.epoch < self.epochs:
            why = self._stop_reason()
        elif self.finish_s is not None:  # trained: does what finishes the run fit before the limit?
            why = stop_reason(self.finish_s(self.val_s), needs="the evaluation and the artifacts need")
        else:
            why = None
        if why:
            self._stop(why)

    def _stop_reason(self) -> str | None:
        needed = max(self.batch_s, default=0.0) + self.val_s + (5.0 if self.save_s is None else self.save_s)
        return stop_reason(needed)

    def _stop(self, why: str) -> None:
        print(f"[crackops {time.strftime('%H:%M:%S')}] stopping for a requeue after "
              f"{self._where()}: {why}", flush=True)
        stop_now(why)  # on Slurm: requeues the job and exits; else raises contract.Requeue

    def _where(self) -> str:
        return (f"epoch {self.epoch}" if not self.offset_now else
                f"batch {self.offset_now}/{self.steps} of epoch {self.epoch + 1}")

    def _save(self, step: int, why: str) -> None:
        from crackops.ml import backup

        t = time.perf_counter()
        es = self.es
        state = {
            "epoch": self.epoch, "step": step, "steps": self.steps, "stopped": self.stopped, "config": self.key, "history": self.history,
            "early_stopping": {"wait": es.wait, "best": None if es.best is None else float(es.best),
                               "best_epoch": es.best_epoch},
            "reduce_lr": None if self.rlrop is None else {
                "wait": self.rlrop.wait, "best": float(self.rlrop.best), "cooldown": self.rlrop.cooldown_counter},
            "checkpoint_best": float(self.checkpoint.best),
            "timer": {"epoch_s": self.timer.epoch_s, "epoch_cpu_s": self.timer.epoch_cpu_s, "lrs": self.timer.lrs},
            "stop_timing": {"val_s": self.val_s, "save_s": self.save_s},
            **self.meta,
        }
        if self.meta.get("alive_before_s") is not None:   # the run's time alive so far, over its attempts
            state["alive_s"] = self.meta["alive_before_s"] + time.time() - self.meta["attempt_started_at"]
        metrics = None
        if step:
            elapsed_s, cpu_s = self.timer.elapsed()
            state["partial"] = {"elapsed_s": elapsed_s, "cpu_s": cpu_s}
            metrics = [v.numpy() for v in self.model.metrics_variables]
        if self.on_save is not None:
            self.on_save()
        backup.save(self.out_dir, self.model, state, es.best_weights, metrics=metrics)
        self.latest, self.es_best, self.offset_now = state, es.best_weights, step
        self.save_s = max(self.save_s or 0.0, time.perf_counter() - t)
        self.saves[why] += 1
        self.last_backup = time.monotonic()
