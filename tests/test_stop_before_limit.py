"""The stop before the time limit, as the ``Backup`` callback takes it (issue 14), on a tiny Keras
model: during training it counts the next step and a backup; after the last epoch it counts what
finishes the run (evaluation and artifacts), so a training that ends too close to its limit is
requeued and its next attempt only evaluates, instead of being killed at the limit (TIMEOUT)."""

from __future__ import annotations

import json
import time

import pytest

from crackops import contract

pytestmark = pytest.mark.tf
keras = pytest.importorskip("keras")


def _backup(tmp_path, finish_s, epochs=3, prior=None):
    import numpy as np

    from crackops.ml.callbacks import Backup, BestCheckpoint, EarlyStopping, EpochTimer

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0)  # the optimizer's variables exist
    es = EarlyStopping(monitor="val_loss", patience=10)
    timer, checkpoint = EpochTimer(), BestCheckpoint(tmp_path / "best.h5", lambda m: m)
    saver = Backup(tmp_path, es, None, checkpoint, timer, prior, None, {}, {}, epochs=epochs, steps=4,
                   finish_s=finish_s)
    for cb in (es, timer, checkpoint, saver):
        cb.set_model(model)
        cb.on_train_begin()
    return saver, timer


def _end_epoch(saver, timer, epoch):
    timer.on_epoch_begin(epoch)
    saver.on_epoch_begin(epoch)
    timer.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 1.0})
    saver.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 1.0})


def test_a_run_that_cannot_finish_before_its_limit_stops_after_its_last_epoch(tmp_path, control):
    asked = []
    saver, timer = _backup(tmp_path, lambda val_s: asked.append(val_s) or 60.0)
    control["deadline"] = time.time() + contract.REQUEUE_MARGIN_S + 30  # room for a step, not for 60 s of finishing
    _end_epoch(saver, timer, 0)
    _end_epoch(saver, timer, 1)
    assert asked == []                                   # not asked while epochs are left
    with pytest.raises(contract.Requeue, match="the evaluation and the artifacts need about 60 s"):
        _end_epoch(saver, timer, 2)
    assert len(asked) == 1 and asked[0] >= 0
    state = json.loads((tmp_path / "backup" / "state.json").read_text())
    assert state["epoch"] == 3 and state["step"] == 0    # the next attempt starts after the last epoch: it evaluates


def test_a_run_with_time_to_finish_or_no_limit_goes_on_to_evaluate(tmp_path, control):
    saver, timer = _backup(tmp_path, lambda val_s: 5.0, epochs=1)
    control["deadline"] = time.time() + contract.REQUEUE_MARGIN_S + 30
    _end_epoch(saver, timer, 0)                          # 5 s fit in 30: no stop
    saver, timer = _backup(tmp_path, lambda val_s: 1e6, epochs=1)
    control["deadline"] = None                           # the last attempt (or no Slurm): never stops for time
    _end_epoch(saver, timer, 0)


def test_a_resumed_attempt_knows_the_validation_and_backup_times_before_its_first_epoch_end(tmp_path, control):
    """The stop inside an epoch counts the validation and a backup: an attempt resumed from a
    backup takes them from it, not 0 until its own first epoch end."""
    from crackops.ml import backup

    saver, timer = _backup(tmp_path, None)
    timer.on_epoch_begin(0)
    saver.on_epoch_begin(0)
    saver._last -= 2.0                                   # this epoch's validation took 2 s
    timer.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    saver.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    _end_epoch(saver, timer, 1)                          # a backup holds the slowest backup before it
    assert saver.val_s >= 2.0 and saver.save_s is not None
    resumed, _ = _backup(tmp_path, None, prior=backup.read_state(tmp_path))
    assert resumed.val_s == saver.val_s and resumed.save_s is not None and resumed.save_s <= saver.save_s
