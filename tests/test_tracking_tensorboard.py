"""TensorBoard event files from every run (issue 23), read back with TensorBoard's own reader
(``EventAccumulator``): the tags a user looks for, the learning rate, and a run stopped for a
requeue inside an epoch and resumed as one continuous run (every step once, none missing)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from helpers import require_sample_data

pytestmark = pytest.mark.tf
EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator").EventAccumulator


def read_events(log_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{"train"/"validation": {tag: [(step, value), ...]}} as TensorBoard reads them."""
    import tensorflow as tf

    out = {}
    for sub in ("train", "validation"):
        if not (log_dir / sub).is_dir():
            continue
        ea = EventAccumulator(str(log_dir / sub), size_guidance={"tensors": 0})
        ea.Reload()
        out[sub] = {t: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in ea.Tensors(t)]
                    for t in ea.Tags()["tensors"]}
    return out


def test_prune_drops_the_points_past_a_backup_and_a_torn_record(tmp_path):
    import tensorflow as tf

    from crackops.ml.tensorboard import prune

    d = tmp_path / "tb" / "train"
    w = tf.summary.create_file_writer(str(d))
    with w.as_default():
        for epoch in range(6):
            tf.summary.scalar("epoch_loss", 1.0 / (epoch + 1), step=epoch)
        for step in range(1, 31):
            tf.summary.scalar("batch_loss", float(step), step=step)
    w.close()
    (f,) = d.iterdir()
    data = f.read_bytes()
    f.write_bytes(data + data[-30:-5])                    # a record cut short by a kill
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(f)))
    dropped = prune(tmp_path / "tb", epochs_done=4, steps_done=20)
    assert dropped == 2 + 10
    ev = read_events(tmp_path / "tb")["train"]
    assert [s for s, _ in ev["epoch_loss"]] == [0, 1, 2, 3]
    assert [s for s, _ in ev["batch_loss"]] == list(range(1, 21))
    list(tf.data.TFRecordDataset(str(f)))                 # whole again
    assert prune(tmp_path / "tb", epochs_done=4, steps_done=20) == 0


def test_a_run_stopped_inside_an_epoch_and_resumed_is_one_continuous_tensorboard_run(tmp_path, control):
    """The job stops for a requeue in the middle of epoch >= 2 (as on Slurm near its time limit;
    here the stop raises ``Requeue`` in this process) and the next attempt resumes from that
    batch. TensorBoard then shows one run: the epoch scalars once per epoch 0..E-1, equal to the
    manifest's history, the learning rate per epoch, and the per-step points at every multiple of
    N up to the optimizer's final step count, each exactly once."""
    from crackops import contract
    from crackops.config import TrainConfig
    from crackops.ml.backup import read_state
    from crackops.ml.train import train

    data = require_sample_data()
    every, epochs = 4, 4  # 15 steps an epoch: N does not divide them (Keras alone then loses the epoch scalars)
    cfg = TrainConfig(data_dir=str(data), image_size=48, epochs=epochs, max_images=80, batch_size=8,
                      es_patience=20, seed=5, tensorboard_every=every, backup_minutes=1e-5)  # a backup every batch
    out = tmp_path / "run"
    out.mkdir()

    def stop_in_epoch_3():
        while True:
            st = read_state(out) or {}
            if st.get("epoch", 0) >= 2 and 2 <= st.get("step", 0) <= st["steps"] - 6:
                control["stop"] = "test: stop for a requeue"
                return
            time.sleep(0.01)

    t = threading.Thread(target=stop_in_epoch_3, daemon=True)
    t.start()
    with pytest.raises(contract.Requeue):
        train(cfg, out)
    t.join(5)
    stopped = read_state(out)
    assert stopped["epoch"] == 2 and 0 < stopped["step"] < stopped["steps"], stopped   # inside epoch 3
    first = read_events(out / "tensorboard")
    assert [s for s, _ in first["train"]["epoch_loss"]] == [0, 1]
    steps_at_stop = 2 * stopped["steps"] + stopped["step"]
    assert max(s for s, _ in first["train"]["batch_loss"]) == steps_at_stop // every * every  # flushed by the stop

    control["stop"] = None
    m = train(cfg, out)
    assert m["resumed_from_step"] == stopped["step"]
    ev = read_events(out / "tensorboard")
    total = m["optimizer_steps"]
    assert total == epochs * m["runtime"]["steps_per_epoch"]
    for tag in ("batch_loss", "batch_accuracy"):
        assert [s for s, _ in ev["train"][tag]] == list(range(every, total + 1, every)), tag
    for sub, prefix in (("train", ""), ("validation", "val_")):
        for name in ("loss", "accuracy"):
            pts = ev[sub][f"epoch_{name}"]
            assert [s for s, _ in pts] == list(range(epochs))
            assert [v for _, v in pts] == pytest.approx(m["history"][prefix + name], rel=1e-5)
    lr = ev["train"]["epoch_learning_rate"]
    assert [s for s, _ in lr] == list(range(epochs)) and [v for _, v in lr] == pytest.approx(m["history"]["lr"])
    assert set(ev["validation"]) == {"epoch_loss", "epoch_accuracy"}
    assert "tensorboard" in m["artifacts"]
    size = sum(f.stat().st_size for f in (out / "tensorboard").rglob("*") if f.is_file())
    print(f"event files: {size} bytes for {epochs} epochs, {total} steps (every {every})")
    assert size < 64_000
    json.dumps(ev)


def test_a_killed_run_continued_by_a_rerun_is_one_continuous_tensorboard_run(tmp_path):
    """SIGKILL (no handler runs, writers not closed) at an arbitrary batch after epoch 2's backup,
    then ``crackops rerun``: a new job that copies the backup and the event files and continues.
    Whatever the killed attempt had on disk past its backup (events flushed by the writer's own
    queue, a torn last record) is dropped; the new run's files hold every step exactly once."""
    import os
    import signal

    from crackops import api
    from crackops.config import Resources, TrainConfig
    from test_resume import backup_epoch, wait_for, wait_terminal

    data = require_sample_data()
    every, epochs = 1, 5   # a point every step: the writer's queue (10) flushes on its own, between backups
    cfg = TrainConfig(data_dir=str(data), image_size=48, epochs=epochs, max_images=80, batch_size=8,
                      es_patience=20, seed=7, tensorboard_every=every, backup_minutes=0)
    run = api.submit(cfg, Resources(cpus=2, mem="4G", time="30"), name="tb-kill")
    wait_for(lambda: backup_epoch(run.out_dir) >= 2, 180, "epoch 2's backup")
    time.sleep(0.3)                                        # somewhere inside epoch 3
    os.killpg(run.extra["pid"], signal.SIGKILL)
    assert wait_terminal(run.job_id, 30).state == "FAILED"
    killed_at = backup_epoch(run.out_dir)
    (p,) = api.rerun([run.job_id])
    new = api.get_run(p.new_job_id)
    done = wait_terminal(new.job_id, 300)
    assert done.state == "COMPLETED", done.reason
    m = json.loads((Path(new.out_dir) / "manifest.json").read_text())
    assert m["resumed_from_epoch"] == killed_at
    ev = read_events(Path(new.out_dir) / "tensorboard")
    total = m["optimizer_steps"]
    assert [s for s, _ in ev["train"]["batch_loss"]] == list(range(1, total + 1))
    for sub, prefix in (("train", ""), ("validation", "val_")):
        pts = ev[sub]["epoch_loss"]
        assert [s for s, _ in pts] == list(range(epochs))
        assert [v for _, v in pts] == pytest.approx(m["history"][prefix + "loss"], rel=1e-5)
