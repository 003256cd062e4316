"""TensorBoard event files of the training, in ``out/<job_id>/tensorboard/`` (``train/``,
``validation/``), written by Keras' own callback: per-epoch loss, accuracy, validation loss and
accuracy and the learning rate (``epoch_*`` tags, step = the epoch index from 0), per-step training
loss and accuracy every ``tensorboard_every`` batches (``batch_*``, step = the optimizer's step
count). No histograms, no graph: the files stay small.

One continuous run across requeues and resumes:

- Keras' callback counts its batch steps from 0 at every ``fit`` (``on_train_begin``);
  ``ContinuousTensorBoard`` starts them at the optimizer's step count, which the backup restores,
  so a resumed run's steps go on where the backup left off. Epoch steps are the epoch index, which
  ``fit(initial_epoch=...)`` already continues.
- What an attempt wrote after its last backup (it died, or was killed, before the next one) is
  trained again by the next attempt: ``prune`` drops those points from the event files before the
  training starts, so no step appears twice. Every backup flushes the writers first
  (``flush``), so what a backup covers is on disk when the job stops.

Imported only inside the training (TensorFlow and Keras here).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import keras

from crackops.contract import TENSORBOARD_DIR

EPOCH_PREFIX = "epoch_"  # Keras' per-epoch tags (step: the epoch index); every other tag counts optimizer steps


class ContinuousTensorBoard(keras.callbacks.TensorBoard):
    """``keras.callbacks.TensorBoard`` whose batch steps continue the optimizer's step count (a
    resumed run, or the second ``fit`` of a run resumed inside an epoch) instead of restarting at 0."""

    def __init__(self, log_dir: Path | str, every: int) -> None:
        super().__init__(log_dir=str(log_dir), histogram_freq=0, write_graph=False, update_freq=int(every),
                         profile_batch=0)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_end(self, epoch, logs=None):
        # Keras writes the epoch scalars inside its per-step ``record_if`` (``step % N == 0`` for
        # the epoch's last batch), so with N not dividing the steps per epoch they would be lost.
        with self.summary.record_if(True):
            super().on_epoch_end(epoch, logs)

    def on_test_end(self, logs=None):
        # Keras also writes evaluation_*_vs_iterations here, but inside its per-step ``record_if``,
        # so only when the count of validation batches so far is a multiple of N: an irregular
        # copy of the validation's epoch_* scalars, left out.
        self._pop_writer()

    def flush(self) -> None:
        """Put what the writers hold on disk (called before every backup)."""
        for w in self._writers.values():
            w.flush()


def _keep(event, epochs_done: int, steps_done: int) -> bool:
    values = event.summary.value if event.HasField("summary") else ()
    for v in values:
        limit_ok = event.step < epochs_done if v.tag.startswith(EPOCH_PREFIX) else event.step <= steps_done
        if not limit_ok:
            return False
    return True


def prune(log_dir: Path | str, epochs_done: int, steps_done: int) -> int:
    """Drop from the event files under ``log_dir`` every point past a backup made after
    ``epochs_done`` epochs and ``steps_done`` optimizer steps (the next attempt trains them again),
    and a torn last record. Files are rewritten only when something goes, each atomically. Returns
    the number of events dropped."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    dropped = 0
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        kept, gone, torn = [], 0, False
        try:
            for rec in tf.data.TFRecordDataset(str(path)):
                raw = rec.numpy()
                if _keep(event_pb2.Event.FromString(raw), epochs_done, steps_done):
                    kept.append(raw)
                else:
                    gone += 1
        except tf.errors.DataLossError:
            torn = True
        dropped += gone
        if torn or gone:
            tmp = path.with_name(f".{path.name}.tmp")
            with tf.io.TFRecordWriter(str(tmp)) as w:
                for raw in kept:
                    w.write(raw)
            os.replace(tmp, path)
    return dropped


def for_run(out_dir: Path | str, every: int, model, epochs_done: int, resuming: bool) -> ContinuousTensorBoard | None:
    """The callback writing ``out_dir/tensorboard/`` (None when ``every`` is 0), after pruning what
    an earlier attempt wrote past the backup this one starts from (all of it on a fresh start)."""
    log_dir = Path(out_dir) / TENSORBOARD_DIR
    if not every:
        return None
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:   # TensorFlow >= 2.20 does not install it
        print("[crackops] no TensorBoard event files: the tensorboard package is not installed "
              "(pip install 'crackops[tensorboard]')", file=sys.stderr, flush=True)
        return None
    if not resuming:
        shutil.rmtree(log_dir, ignore_errors=True)
    elif log_dir.is_dir():
        prune(log_dir, epochs_done, int(keras.ops.convert_to_numpy(model.optimizer.iterations)))
    return ContinuousTensorBoard(log_dir, every)
