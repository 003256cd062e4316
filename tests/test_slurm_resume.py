"""Requeue, resume and no orphans on the real local Slurm (scripts/local-slurm.sh start).

Real trainings on the sample photos. Each epoch's data order, augmentation and dropout come from
(seed, epoch) and every other piece of state is in the epoch-end backup, so an attempt that
resumes continues exactly where the last backup left off.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from crackops import api
from crackops.config import Resources, TrainConfig
from helpers import require_sample_data

pytestmark = [pytest.mark.slurm, pytest.mark.tf]


def config(data, **kw):
    base = dict(data_dir=str(data), image_size=64, seed=5, es_patience=50)
    return TrainConfig(**{**base, **kw})


def job_pids(job_id: str) -> list[int]:
    """Processes on this machine that belong to Slurm job ``job_id`` (by their environment)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in env:
            found.append(int(d.name))
    return found


def backup_epoch(out_dir) -> int:
    try:
        return json.loads((Path(out_dir) / "backup" / "state.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def wait_states(job_id, timeout):
    seen = []
    for rep in api.wait([job_id], poll_s=2, timeout_s=timeout):
        r = rep.runs[0]
        if not seen or seen[-1] != r.state:
            seen.append(r.state)
    return rep.runs[0], seen


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_cancel_on_slurm_ends_every_process_and_writes_nothing_after(slurm_cluster):
    data = require_sample_data()
    run = api.submit(config(data, epochs=40, max_images=200), Resources(cpus=2, mem="4G", time="10"), backend="slurm")
    wait_for(lambda: backup_epoch(run.out_dir) >= 1, 300, "the first backup")
    api.cancel([run.job_id])
    done, _ = wait_states(run.job_id, 120)
    assert done.state == "CANCELLED"
    time.sleep(5)
    assert job_pids(run.job_id) == []
    assert not (Path(run.out_dir) / "manifest.json").exists()
    assert json.loads((Path(run.out_dir) / "status.json").read_text())["phase"] == "interrupted"


def test_timeout_without_requeue_leaves_no_process(slurm_cluster):
    data = require_sample_data()
    # far more epochs than one minute can hold, whatever the machine (200 took under a minute idle),
    # and no early stopping: with patience 50 it once stopped at epoch 107 and finished in 79 s, which
    # Slurm (checking limits every 30 s or so) let run past the 1-minute limit and then called TIMEOUT
    run = api.submit(config(data, epochs=5000, es_patience=5000, max_images=200, max_attempts=1),
                     Resources(cpus=2, mem="4G", time="1"), backend="slurm")
    done, _ = wait_states(run.job_id, 300)
    assert done.state == "TIMEOUT"
    time.sleep(5)
    assert job_pids(run.job_id) == []
    assert not (Path(run.out_dir) / "manifest.json").exists()
    assert backup_epoch(run.out_dir) >= 1           # what `crackops rerun` continues from


def best_h5_check(out_dir: Path, m: dict) -> tuple[bool, float]:
    """``best.h5`` as saved (plain Keras): whether its weights are exactly EarlyStopping's best
    weights in the final backup, and its validation loss on the run's own validation split,
    computed as the training computed it (Keras' evaluate, same batches)."""
    import keras
    import numpy as np

    from crackops.data.split import make_split
    from crackops.ml.pipeline import eval_dataset, load_images

    model = keras.models.load_model(out_dir / "best.h5", compile=False)
    with np.load(out_dir / "backup" / "es_best.npz") as z:
        best = [z[f"arr_{i}"] for i in range(len(z.files))]
    weights = model.get_weights()
    same = len(weights) == len(best) and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(weights, best))
    c = m["config"]
    split = make_split(c["data_dir"], seed=c["seed"], test_fraction=c["test_fraction"], val_fraction=c["val_fraction"],
                       test_dir=c["test_dir"], max_per_class=c["max_images"], verify=True)
    model.compile(loss="binary_crossentropy")
    images = load_images([p for p, _ in split.val], c["image_size"])
    loss = model.evaluate(eval_dataset(images, [label for _, label in split.val], c["batch_size"]), verbose=0)
    return same, float(loss)


def test_time_limit_is_met_by_requeue_and_the_run_completes(slurm_cluster):
    """A 2-minute limit, more epochs than one attempt can run: each attempt stops itself before
    its limit, is requeued with the same id and continues; the run COMPLETES.

    The epoch count: one attempt trains at most about 85 s (2 minutes less start-up and the
    margin kept before the limit; measured: each attempt ended 99 s after its start). An epoch of
    these 576 photos took 1.6 s to 9 s on 2 cores (median 2.8 s), but on an idle machine a
    whole 80-epoch run once fit in one attempt (about 1 s per epoch): 150 epochs need at least two
    attempts at that speed, and a loaded machine (9 s per epoch) still finishes within the 20
    attempts allowed.
    """
    data = require_sample_data()
    epochs = 150
    run = api.submit(config(data, epochs=epochs, max_images=800, es_patience=epochs, max_attempts=20),  # never stops early
                     Resources(cpus=2, mem="4G", time="2"),
                     backend="slurm", name="requeue")
    done, seen = wait_states(run.job_id, 2400)
    assert done.state == "COMPLETED", (done.reason, seen)
    out = Path(run.out_dir)
    m = json.loads((out / "manifest.json").read_text())
    assert m["attempts"] >= 2 and m["epochs_run"] == epochs and len(m["history"]["val_loss"]) == epochs
    assert 0 < m["resumes"][0] < epochs                   # the first attempt could not run them all
    assert len(m["resumes"]) == m["attempts"] - 1 and m["resumes"] == sorted(m["resumes"])
    assert m["optimizer_steps"] == epochs * m["runtime"]["steps_per_epoch"]   # no batch trained twice or skipped
    # fit returned at once after the last epoch: tf.data's autotuning, now off, made the teardown of
    # its iterator wait up to 60 s (crackops.ml.pipeline), which held a finished attempt past its limit
    assert m["runtime"]["fit_return_s"] is None or m["runtime"]["fit_return_s"] < 10, m["runtime"]
    assert "REQUEUED" in seen, seen
    assert done.attempt == m["attempts"]
    err = Path(done.log_err).read_text()
    assert err.count("requeueing job") == m["attempts"] - 1 and "DUE TO TIME LIMIT" not in err, err[-3000:]
    # best.h5 holds the best epoch's weights: EarlyStopping's best (kept across attempts), whose
    # validation loss is the lowest of the whole history
    val = m["history"]["val_loss"]
    same, loss = best_h5_check(out, m)
    assert same, "best.h5 is not EarlyStopping's best weights"
    assert m["best_epoch"] == val.index(min(val)) + 1
    assert abs(loss - min(val)) <= 1e-4 * min(val), (loss, min(val), sorted(val)[:3])
    print(f"requeue: attempts {m['attempts']}, resumed after epochs {m['resumes']}, states seen {seen}, "
          f"test accuracy {m['metrics']['test']['accuracy']:.4f}, wall {m['wall_time_s']:.0f} s, "
          f"best epoch {m['best_epoch']} val_loss {min(val):.6g}, best.h5 {loss:.6g}")


def test_preemption_by_scontrol_requeue_resumes_and_completes(slurm_cluster):
    data = require_sample_data()
    run = api.submit(config(data, epochs=12, max_images=200), Resources(cpus=2, mem="4G", time="10"), backend="slurm")
    wait_for(lambda: backup_epoch(run.out_dir) >= 2, 300, "epoch 2's backup")
    subprocess.run(["scontrol", "requeue", run.job_id], check=True, capture_output=True, timeout=30)
    done, seen = wait_states(run.job_id, 600)
    assert done.state == "COMPLETED", (done.reason, seen)
    m = json.loads((Path(run.out_dir) / "manifest.json").read_text())
    assert m["attempts"] == 2 and m["resumed_from_epoch"] >= 2 and m["epochs_run"] == 12
