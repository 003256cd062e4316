"""The seed's training, as a function of one TrainConfig. Writes out/<job_id>/:

confusion_train.png, confusion_test.png, history_loss.png, metrics.txt, best.h5 (the seed's files),
predictions_test.csv (every test image with its crack probability), and manifest.json, written last
and atomically: its presence means the run finished.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import socket
import sys
import time
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crackops import __version__
from crackops.config import TrainConfig
from crackops.contract import TENSORBOARD_DIR, write_json_atomic
from crackops.metrics import binary_metrics, format_metrics_txt

MANIFEST_SCHEMA = 1


def _say(msg: str) -> None:
    print(f"[crackops {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _warn(msg: str) -> None:
    print(f"[crackops {time.strftime('%H:%M:%S')}] WARNING: {msg}", file=sys.stderr, flush=True)


def _load(items, size: int, name: str):
    """Decode ``items`` once; on large sets say how far it got every tenth."""
    from crackops.ml.pipeline import load_images

    step = max(1, len(items) // 10)
    said = [0]

    def progress(i: int, total: int) -> None:
        if total >= 5000 and i // step > said[0]:
            said[0] = i // step
            _say(f"decoding {name}: {i}/{total}")

    return load_images([p for p, _ in items], size, progress=progress)




def _resume_key(config: TrainConfig) -> dict[str, Any]:
    """What must not change for a backup to be resumed (not the job id, out dir, attempts or the
    submission: a rerun is a new submission of the same training)."""
    d = config.to_dict()
    for k in ("out_root", "job_id", "max_attempts", "resume_from", "data_dir", "test_dir", "submission_id",
              "backup_minutes", "tensorboard_every"):
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
    events = Path(config.resume_from) / TENSORBOARD_DIR
    if events.is_dir():  # the curves go on in the new run (pruned to the backup when the training starts)
        shutil.copytree(events, out_dir / TENSORBOARD_DIR, dirs_exist_ok=True)
    _say(f"continuing {config.resume_from} (backup {backup.point(src)})")


def _split(config: TrainConfig):
    """The duplicate-aware split of the data folder, with what was skipped said."""
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
    return split


def _decode(split, size: int) -> tuple[dict[str, Any], dict[str, list[int]], float, float]:
    """Training and validation images decoded once into memory: (images, labels, seconds, CPU-s)."""
    t, c = time.perf_counter(), time.process_time()
    images = {name: _load(items, size, name) for name, items in
              (("train", split.train), ("val", split.val))}
    decode_s, decode_cpu_s = time.perf_counter() - t, time.process_time() - c
    _say(f"decoded {len(split.train) + len(split.val)} images at {size}px in {decode_s:.0f} s "
         f"({decode_cpu_s:.0f} CPU-s), held in memory")
    labels = {name: [y for _, y in items] for name, items in (("train", split.train), ("val", split.val))}
    return images, labels, decode_s, decode_cpu_s


@dataclass
class _ResumePoint:
    prior: dict[str, Any] | None    # the last backup's state, or None (a fresh start)
    key: dict[str, Any]             # the settings a backup must have been made with
    start_epoch: int                # epochs done
    start_step: int                 # batches of the next epoch done (a mid-epoch backup), else 0
    attempt: int
    resumes: list[int]              # epochs done before each resume
    started: float                  # the first attempt's start time
    attempt_started: float          # this attempt's start time
    alive_before: float | None      # seconds earlier attempts ran, up to their last backup (None: unknown)


def _resume_point(config: TrainConfig, out_dir: Path, started: float) -> _ResumePoint:
    """Where this attempt starts: after the last epoch-end backup in ``out_dir`` (or the run it
    continues), refused when that backup was made with other settings."""
    from crackops.contract import read_status
    from crackops.ml import backup

    _adopt_backup(config, out_dir)
    prior = backup.read_state(out_dir)
    key = _resume_key(config)
    if prior is not None and prior.get("config") != key:
        changed = sorted(k for k in set(key) | set(prior.get("config") or {})
                         if key.get(k) != (prior.get("config") or {}).get(k))
        raise RuntimeError(f"the backup in {out_dir} was made with other settings ({', '.join(changed)}): "
                           "it cannot be resumed with these")
    start_epoch = int(prior["epoch"]) if prior else 0
    return _ResumePoint(prior=prior, key=key, start_epoch=start_epoch, start_step=int((prior or {}).get("step") or 0),
                        attempt=int((read_status(out_dir) or {}).get("attempt") or 1),
                        resumes=list((prior or {}).get("resumes", [])) + ([start_epoch] if prior else []),
                        started=float(prior.get("started_at", started)) if prior else started,
                        attempt_started=started,
                        alive_before=(prior.get("alive_s") if prior else 0.0))


@dataclass
class _Fit:
    model: Any
    history: dict[str, list[float]]
    timer: Any
    steps: int
    bn_momentum: float
    fit_s: float
    cpu_before_fit: float
    saves: dict[str, int]           # backups this attempt made: at epoch ends, timed, before a stop
    optimizer_steps: int            # batches trained over the whole run (the optimizer's step count)
    fit_return_s: float | None      # from the last epoch's end to fit returning (the input pipeline's teardown)


def _fit(config: TrainConfig, out_dir: Path, images, labels, rp: _ResumePoint, finish_s=None) -> _Fit:
    """Build the model (restored from the backup when resuming) and train it, backing up every
    epoch end and every ``backup_minutes``; when the job must stop for a requeue the ``Backup``
    callback stops it from inside the training loop (``crackops.contract.stop_now``)."""
    from crackops.ml import backup
    from crackops.ml.batchnorm import stock_copy
    from crackops.ml.model import build_model
    from crackops.ml.pipeline import eval_dataset, train_dataset

    import keras

    from crackops.ml.callbacks import Backup, BestCheckpoint, EarlyStopping, EpochTimer
    size, bs = config.image_size, config.batch_size
    ds_val = eval_dataset(images["val"], labels["val"], bs)
    steps = -(-len(labels["train"]) // bs)
    bn_momentum = config.resolved_bn_momentum(steps)
    model = build_model(config, bn_momentum, steps_per_epoch=steps)
    es_best = backup.restore_model(rp.prior, model) if rp.prior else None
    timer = EpochTimer()
    checkpoint = BestCheckpoint(out_dir / "best.h5", stock_copy)
    es = EarlyStopping(monitor="val_loss", patience=config.es_patience, restore_best_weights=True, verbose=1)
    rlrop = None
    callbacks = [es]
    if config.lr_schedule == "plateau":
        rlrop = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.lr_factor,
                                                  patience=config.lr_patience, min_lr=config.min_lr, verbose=1)
        callbacks.append(rlrop)
    step = rp.start_step if rp.start_step < steps else 0
    from crackops.ml.tensorboard import for_run

    tb = for_run(out_dir, config.tensorboard_every, model, rp.start_epoch, resuming=rp.prior is not None)
    saver = Backup(out_dir, es, rlrop, checkpoint, timer, rp.prior, es_best, rp.key,
                   {"attempts": rp.attempt, "resumes": rp.resumes, "started_at": rp.started,
                    "alive_before_s": rp.alive_before, "attempt_started_at": rp.attempt_started},
                   epochs=config.epochs, steps=steps, backup_s=60.0 * config.backup_minutes,
                   start_step=step, metric_values=backup.metric_values(rp.prior) if step else None,
                   finish_s=finish_s, on_save=tb.flush if tb else None)
    # epoch times include validation and checkpointing, not the backup; TensorBoard writes before the backup
    callbacks += [checkpoint, timer] + ([tb] if tb else []) + [saver]
    if rp.prior:
        _say(f"resuming {backup.point(rp.prior)} from the backup in {rp.prior['_dir']} (attempt {rp.attempt})")
    schedule = (f"cosine to 0 after {config.warmup_epochs:g} warm-up epochs" if config.lr_schedule == "cosine"
                else "halved on plateau")
    _say(f"training up to {config.epochs} epochs, image {size}px, batch {bs}, lr {config.learning_rate} "
         f"({schedule}), augment {config.augment}, BatchNorm momentum {bn_momentum}"
         f"{' (auto)' if config.bn_momentum is None else ''}"
         + (f", backup every {config.backup_minutes:g} min and at epoch ends" if config.backup_minutes else ""))

    def fit(first: int, end: int, skip: int = 0) -> None:
        ds = train_dataset(images["train"], labels["train"], bs, seed=config.seed, augment=config.augment,
                           epochs=(first, end), first_step=skip)
        model.fit(ds, validation_data=ds_val, epochs=end, initial_epoch=first, steps_per_epoch=steps - skip,
                  callbacks=callbacks, verbose=2,
                  shuffle=False)  # each epoch's order comes from (seed, epoch): see pipeline.epoch_batches

    t_fit, cpu_before_fit = time.perf_counter(), time.process_time()
    first = rp.start_epoch
    finished = bool(rp.prior) and (first >= config.epochs or bool(rp.prior.get("stopped")))
    with _quiet_absl():  # "saving as HDF5 is legacy": best.h5 is the seed's format, on purpose
        if finished:  # killed after its last epoch: only the evaluation is left
            saver.on_train_begin()
            if es_best is not None:
                model.set_weights(es_best)
        else:
            if step:  # the rest of the epoch a mid-epoch backup was made in, as a fit of its own
                _build_metrics(model, images["val"], labels["val"])
                es.hold = True
                fit(first, first + 1, skip=step)
                es.hold = False
                first += 1
                if saver.stopped or first >= config.epochs:
                    es.on_train_end()  # what the end of one whole fit does: the best weights back
            if first < config.epochs and not saver.stopped:
                fit(first, config.epochs)
    fit_return_s = None if saver.epoch_ended is None else time.perf_counter() - saver.epoch_ended
    history = {k: list(v) for k, v in saver.history.items()}
    history["lr"] = timer.lrs
    return _Fit(model=model, history=history, timer=timer, steps=steps, bn_momentum=bn_momentum,
                fit_s=time.perf_counter() - t_fit, cpu_before_fit=cpu_before_fit, saves=dict(saver.saves),
                optimizer_steps=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                fit_return_s=fit_return_s)


def _build_metrics(model, images, labels) -> None:
    """Create the compiled metrics' variables now (Keras makes them at the first batch), so that a
    mid-epoch backup's running sums can be put back when that epoch starts; the values this leaves
    are reset by ``fit`` before the epoch."""
    import numpy as np

    x = np.asarray(images[:1], dtype=np.float32)
    model.compute_metrics(x, np.asarray(labels[:1], dtype=np.float32), model(x, training=False), sample_weight=None)


#: Seconds allowed, on top of the prediction and decoding, for what ends a run: plots, best.h5, the
#: manifest, the process's exit.
FINISH_EXTRA_S = 15.0


def _finish_estimate(split, decode_s: float):
    """What finishing the run after its last epoch takes (``_evaluate`` and ``_write_artifacts``),
    in seconds, from the validation's time at an epoch end: predicting train, val and test costs
    about that per image, and the test photos are still to be decoded."""
    n_val = max(1, len(split.val))
    n_all = len(split.train) + len(split.val) + len(split.test)
    decode_per_image = decode_s / max(1, len(split.train) + len(split.val))

    def finish_s(val_s: float) -> float:
        return val_s * n_all / n_val + decode_per_image * len(split.test) + FINISH_EXTRA_S
    return finish_s


@contextlib.contextmanager
def _quiet_absl():
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logger.setLevel(level)


def _evaluate(model, split, images, size: int, batch_size: int) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Metrics and crack probabilities of the best weights on train, val and test."""
    from crackops.ml.evaluate import predict_probs
    from crackops.ml.pipeline import eval_dataset

    _say("evaluating (best weights restored)")
    results: dict[str, dict[str, Any]] = {}
    probs_by_split = {}
    images["test"] = _load(split.test, size, "test")
    for name, items in (("train", split.train), ("val", split.val), ("test", split.test)):
        probs = predict_probs(model, eval_dataset(images[name], None, batch_size))
        probs_by_split[name] = probs
        results[name] = binary_metrics([y for _, y in items], probs)
        m = results[name]
        _say(f"{name}: accuracy {m['accuracy']:.4%} ({m['errors']} errors of {m['n']}), "
             f"precision {m['precision']:.4f}, recall {m['recall']:.4f}, F1 {m['f1']:.4f}")
    return results, probs_by_split


def _write_artifacts(out_dir: Path, split, results, probs_by_split, history, best_epoch, model) -> None:
    """The seed's files (confusion matrices, loss history, best.h5) and predictions_test.csv."""
    from crackops.ml.batchnorm import stock_copy
    from crackops.ml.evaluate import plot_confusion, plot_history

    plot_confusion(results["train"], "train", out_dir / "confusion_train.png")
    plot_confusion(results["test"], "test", out_dir / "confusion_test.png")
    plot_history(history, best_epoch, out_dir / "history_loss.png")
    with open(out_dir / "predictions_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "prob_crack"])
        for (p, y), pr in zip(split.test, probs_by_split["test"]):
            w.writerow([p, y, f"{pr:.6f}"])
    with _quiet_absl():
        stock_copy(model).save(str(out_dir / "best.h5"))  # the best epoch's weights (restored by EarlyStopping)


def train(config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Split, decode, train (resuming from a backup when there is one), evaluate, write the
    artifacts and, last, the manifest."""
    started = time.time()
    config.validate()
    out_dir = Path(out_dir)
    split = _split(config)

    from crackops.ml.tfsetup import configure_tensorflow

    tf_info = configure_tensorflow(config.mixed_precision)
    import keras
    import tensorflow as tf

    _say(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {tf_info['cpus']} CPUs, "
         f"oneDNN={tf_info['onednn']}, precision {tf_info['precision_policy']}")
    keras.utils.set_random_seed(config.seed)
    images, labels, decode_s, decode_cpu_s = _decode(split, config.image_size)
    rp = _resume_point(config, out_dir, started)
    started = rp.started
    fit = _fit(config, out_dir, images, labels, rp, _finish_estimate(split, decode_s))
    history, timer = fit.history, fit.timer
    epochs_run = len(history.get("loss", []))
    best_epoch = int(min(range(epochs_run), key=lambda i: history["val_loss"][i])) + 1 if epochs_run else None
    images_per_s = (len(split.train) * len(timer.epoch_s) / sum(timer.epoch_s)
                    if timer.epoch_s and sum(timer.epoch_s) > 0 else None)
    results, probs_by_split = _evaluate(fit.model, split, images, config.image_size, config.batch_size)
    _write_artifacts(out_dir, split, results, probs_by_split, history, best_epoch, fit.model)

    ended = time.time()
    # the time the run was alive, not the time between its attempts (None from an older backup: all of it)
    wall = ended - started if rp.alive_before is None else rp.alive_before + (ended - rp.attempt_started)
    (out_dir / "metrics.txt").write_text(format_metrics_txt(
        str(out_dir.name), results,
        {"data": config.data_dir, "epochs run": f"{epochs_run} (best {best_epoch})",
         "image size": config.image_size, "wall time": f"{wall:.0f} s",
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
        "runtime": {**tf_info, "bn_momentum": fit.bn_momentum, "steps_per_epoch": fit.steps,
                    "host": socket.gethostname(), "fit_s": fit.fit_s,
                    "epoch_s": timer.epoch_s, "epoch_cpu_s": timer.epoch_cpu_s,
                    "decode_s": decode_s, "decode_cpu_s": decode_cpu_s,
                    "cpu_s": time.process_time(), "cpu_before_fit_s": fit.cpu_before_fit,
                    "train_images_per_s": images_per_s, "fit_return_s": fit.fit_return_s},
        "attempts": rp.attempt,
        "resumed_from_epoch": rp.resumes[-1] if rp.resumes else None,  # epochs done before the last resume
        "resumed_from_step": rp.start_step if rp.resumes else None,    # and batches of the next epoch (mid-epoch)
        "optimizer_steps": fit.optimizer_steps,
        "backups": fit.saves,
        "resumes": rp.resumes,
        "started_at": started,
        "ended_at": ended,
        "wall_time_s": wall,                     # without the time between attempts
        "span_s": ended - started,               # from the first attempt's start to the end
        "artifacts": ["confusion_train.png", "confusion_test.png", "history_loss.png", "metrics.txt",
                      "best.h5", "predictions_test.csv"] + ([TENSORBOARD_DIR] if (out_dir / TENSORBOARD_DIR).is_dir() else []),
    }
    json.dumps(manifest)  # fail here, not half-way through the write, if something is not JSON-able
    write_json_atomic(out_dir / "manifest.json", manifest)
    _say(f"done in {ended - started:.0f} s: {out_dir}")
    return manifest
