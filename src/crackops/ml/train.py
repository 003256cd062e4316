"""The seed's training, as a function of one TrainConfig. Writes out/<job_id>/:

confusion_train.png, confusion_test.png, history_loss.png, metrics.txt, best.h5 (the seed's files),
predictions_test.csv (every test image with its crack probability), and manifest.json, written last
and atomically: its presence means the run finished.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import socket
import sys
import time
import logging
from pathlib import Path
from typing import Any

from crackops import __version__
from crackops.config import TrainConfig
from crackops.contract import write_json_atomic
from crackops.metrics import binary_metrics, format_metrics_txt

MANIFEST_SCHEMA = 1


def _say(msg: str) -> None:
    print(f"[crackops {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _warn(msg: str) -> None:
    print(f"[crackops {time.strftime('%H:%M:%S')}] WARNING: {msg}", file=sys.stderr, flush=True)


def _load(load_images, items, size: int, name: str):
    n = len(items)
    step = max(1, n // 10)
    marks = iter(range(step, n + step, step))
    nxt = [next(marks, None)]

    def progress(i: int, total: int) -> None:
        while nxt[0] is not None and i >= nxt[0] and total >= 5000:
            _say(f"decoding {name}: {i}/{total}")
            nxt[0] = next(marks, None)

    return load_images([p for p, _ in items], size, progress=progress)


def _callbacks():
    """Keras callbacks, defined once Keras is imported."""
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

    return EpochTimer, BestCheckpoint, Backup


def _resume_key(config: TrainConfig) -> dict[str, Any]:
    """What must not change for a backup to be resumed (not the job id, out dir, attempts or the
    submission: a rerun is a new submission of the same training)."""
    d = config.to_dict()
    for k in ("out_root", "job_id", "max_attempts", "resume_from", "data_dir", "test_dir", "submission_id"):
        d.pop(k, None)
    return d


def _adopt_backup(config: TrainConfig, out_dir: Path) -> None:
    """``config.resume_from``: copy that run's last backup (and best.h5) here, once."""
    import shutil

    from crackops.ml import backup

    if not config.resume_from or backup.read_state(out_dir) is not None:
        return
    src = backup.read_state(config.resume_from)
    if src is None:
        _warn(f"{config.resume_from} holds no backup: starting at epoch 1")
        return
    shutil.copytree(src["_dir"], out_dir / f"{backup.BACKUP}.new", dirs_exist_ok=True)
    os.replace(out_dir / f"{backup.BACKUP}.new", out_dir / backup.BACKUP)
    best = Path(config.resume_from) / "best.h5"
    if best.exists():
        shutil.copy2(best, out_dir / "best.h5")
    _say(f"continuing {config.resume_from} (backup after epoch {src['epoch']})")


def train(config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    started = time.time()
    config.validate()
    out_dir = Path(out_dir)
    from crackops.data.split import make_split

    _say(f"splitting {config.data_dir} (seed {config.seed}, test {config.test_fraction:.0%}, "
         f"val {config.val_fraction:.0%} of train)")
    split = make_split(config.data_dir, seed=config.seed, test_fraction=config.test_fraction,
                       val_fraction=config.val_fraction, test_dir=config.test_dir,
                       max_per_class=config.max_images, verify=True)
    for s in split.skipped[:20]:
        _warn(f"skipped {s['path']}: {s['reason']}")
    if len(split.skipped) > 20:
        _warn(f"... and {len(split.skipped) - 20} more skipped files (all listed in manifest.json)")
    _say(f"train {len(split.train)}, val {len(split.val)}, test {len(split.test)} images; "
         f"{split.duplicate_groups} duplicate groups kept on one side; {len(split.skipped)} skipped")

    from crackops.ml.tfsetup import configure_tensorflow

    tf_info = configure_tensorflow(config.mixed_precision)
    import keras
    import tensorflow as tf

    EpochTimer, BestCheckpoint, Backup = _callbacks()
    from crackops.contract import Requeue, read_status
    from crackops.ml import backup
    from crackops.ml.evaluate import plot_confusion, plot_history, predict_probs
    from crackops.ml.batchnorm import stock_copy
    from crackops.ml.model import build_model
    from crackops.ml.pipeline import eval_dataset, load_images, train_dataset

    _say(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {tf_info['cpus']} CPUs, "
         f"oneDNN={tf_info['onednn']}, precision {tf_info['precision_policy']}")
    keras.utils.set_random_seed(config.seed)
    size, bs = config.image_size, config.batch_size
    t_decode, c_decode = time.perf_counter(), time.process_time()
    images = {name: _load(load_images, items, size, name) for name, items in
              (("train", split.train), ("val", split.val))}
    decode_s, decode_cpu_s = time.perf_counter() - t_decode, time.process_time() - c_decode
    _say(f"decoded {len(split.train) + len(split.val)} images at {size}px in {decode_s:.0f} s "
         f"({decode_cpu_s:.0f} CPU-s), held in memory")
    labels = {name: [y for _, y in items] for name, items in (("train", split.train), ("val", split.val))}
    _adopt_backup(config, out_dir)
    prior = backup.read_state(out_dir)
    key = _resume_key(config)
    if prior is not None and prior.get("config") != key:
        changed = sorted(k for k in set(key) | set(prior.get("config") or {})
                         if key.get(k) != (prior.get("config") or {}).get(k))
        raise RuntimeError(f"the backup in {out_dir} was made with other settings ({', '.join(changed)}): "
                           "it cannot be resumed with these")
    start_epoch = int(prior["epoch"]) if prior else 0
    attempt = int((read_status(out_dir) or {}).get("attempt") or 1)
    resumes = list((prior or {}).get("resumes", [])) + ([start_epoch] if prior else [])
    if prior:
        started = float(prior.get("started_at", started))
    ds_train = train_dataset(images["train"], labels["train"], bs, seed=config.seed, augment=config.augment,
                             epochs=(start_epoch, config.epochs))
    ds_val = eval_dataset(images["val"], labels["val"], bs)

    steps = -(-len(split.train) // bs)
    bn_momentum = config.resolved_bn_momentum(steps)
    model = build_model(config, bn_momentum, steps_per_epoch=steps)
    es_best = backup.restore_model(prior, model) if prior else None
    best_path = out_dir / "best.h5"
    timer = EpochTimer()
    checkpoint = BestCheckpoint(best_path, stock_copy)
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.es_patience,
                                       restore_best_weights=True, verbose=1)
    rlrop = None
    callbacks = [es]
    if config.lr_schedule == "plateau":
        rlrop = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.lr_factor,
                                                  patience=config.lr_patience, min_lr=config.min_lr, verbose=1)
        callbacks.append(rlrop)
    saver = Backup(out_dir, es, rlrop, checkpoint, timer, prior, es_best, key,
                   {"attempts": attempt, "resumes": resumes, "started_at": started})
    callbacks += [checkpoint, timer, saver]  # epoch times include validation and checkpointing, not the backup
    if prior:
        _say(f"resuming after epoch {start_epoch} from the backup in {prior['_dir']} (attempt {attempt})")
    schedule = (f"cosine to 0 after {config.warmup_epochs:g} warm-up epochs" if config.lr_schedule == "cosine"
                else "halved on plateau")
    _say(f"training up to {config.epochs} epochs, image {size}px, batch {bs}, lr {config.learning_rate} "
         f"({schedule}), augment {config.augment}, BatchNorm momentum {bn_momentum}"
         f"{' (auto)' if config.bn_momentum is None else ''}")
    t_fit, cpu_before_fit = time.perf_counter(), time.process_time()
    absl_logger = logging.getLogger("absl")
    absl_level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # "saving as HDF5 is legacy": best.h5 is the seed's format, on purpose
    finished = bool(prior) and (start_epoch >= config.epochs or bool(prior.get("stopped")))
    try:
        if finished:  # killed after its last epoch: only the evaluation is left
            saver.on_train_begin()
            if es_best is not None:
                model.set_weights(es_best)
        else:
            model.fit(ds_train, validation_data=ds_val, epochs=config.epochs, initial_epoch=start_epoch,
                      steps_per_epoch=steps, callbacks=callbacks, verbose=2,
                      shuffle=False)  # each epoch's order comes from (seed, epoch): see pipeline.epoch_batches
    finally:
        absl_logger.setLevel(absl_level)
    if saver.stop_reason:
        raise Requeue(saver.stop_reason)
    fit_s = time.perf_counter() - t_fit
    history = {k: list(v) for k, v in saver.history.items()}
    history["lr"] = timer.lrs
    epochs_run = len(history.get("loss", []))
    best_epoch = int(min(range(epochs_run), key=lambda i: history["val_loss"][i])) + 1 if epochs_run else None
    images_per_s = (len(split.train) * len(timer.epoch_s) / sum(timer.epoch_s)
                    if timer.epoch_s and sum(timer.epoch_s) > 0 else None)

    _say("evaluating (best weights restored)")
    results: dict[str, dict[str, Any]] = {}
    probs_by_split = {}
    images["test"] = _load(load_images, split.test, size, "test")
    for name, items in (("train", split.train), ("val", split.val), ("test", split.test)):
        probs = predict_probs(model, eval_dataset(images[name], None, bs))
        probs_by_split[name] = probs
        results[name] = binary_metrics([y for _, y in items], probs)
        m = results[name]
        _say(f"{name}: accuracy {m['accuracy']:.4%} ({m['errors']} errors of {m['n']}), "
             f"precision {m['precision']:.4f}, recall {m['recall']:.4f}, F1 {m['f1']:.4f}")

    plot_confusion(results["train"], "train", out_dir / "confusion_train.png")
    plot_confusion(results["test"], "test", out_dir / "confusion_test.png")
    plot_history(history, best_epoch, out_dir / "history_loss.png")
    with open(out_dir / "predictions_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "prob_crack"])
        for (p, y), pr in zip(split.test, probs_by_split["test"]):
            w.writerow([p, y, f"{pr:.6f}"])
    absl_logger.setLevel(logging.ERROR)
    stock_copy(model).save(str(best_path))  # the best epoch's weights (restored by EarlyStopping)
    absl_logger.setLevel(absl_level)

    ended = time.time()
    (out_dir / "metrics.txt").write_text(format_metrics_txt(
        str(out_dir.name), results,
        {"data": config.data_dir, "epochs run": f"{epochs_run} (best {best_epoch})",
         "image size": size, "wall time": f"{ended - started:.0f} s",
         "split fingerprint (test)": split.fingerprints.get("test", "")[:16]},
    ))
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "job_id": out_dir.name,
        "status": "completed",
        "config": config.to_dict(),
        "metrics": results,
        "history": history,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "dataset": {"data_dir": str(config.data_dir), "test_dir": config.test_dir, **split.to_dict()},
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "crackops": __version__,
                     "numpy": __import__("numpy").__version__},
        "runtime": {**tf_info, "bn_momentum": bn_momentum, "steps_per_epoch": steps, "host": socket.gethostname(), "fit_s": fit_s,
                    "epoch_s": timer.epoch_s, "epoch_cpu_s": timer.epoch_cpu_s,
                    "decode_s": decode_s, "decode_cpu_s": decode_cpu_s,
                    "cpu_s": time.process_time(), "cpu_before_fit_s": cpu_before_fit, "train_images_per_s": images_per_s},
        "attempts": attempt,
        "resumed_from_epoch": resumes[-1] if resumes else None,  # epochs done before the last resume
        "resumes": resumes,
        "started_at": started,
        "ended_at": ended,
        "wall_time_s": ended - started,
        "artifacts": ["confusion_train.png", "confusion_test.png", "history_loss.png", "metrics.txt",
                      "best.h5", "predictions_test.csv"],
    }
    json.dumps(manifest)  # fail here, not half-way through the write, if something is not JSON-able
    write_json_atomic(out_dir / "manifest.json", manifest)
    _say(f"done in {ended - started:.0f} s: {out_dir}")
    return manifest
