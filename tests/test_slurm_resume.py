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
    # far more epochs than one minute can hold, whatever the machine (200 took under a minute idle)
    run = api.submit(config(data, epochs=5000, max_images=200, max_attempts=1), Resources(cpus=2, mem="4G", time="1"),
                     backend="slurm")
    done, _ = wait_states(run.job_id, 300)
    assert done.state == "TIMEOUT"
    time.sleep(5)
    assert job_pids(run.job_id) == []
    assert not (Path(run.out_dir) / "manifest.json").exists()
    assert backup_epoch(run.out_dir) >= 1           # what `crackops rerun` continues from


@pytest.mark.xfail(strict=False, reason="known bug (issue 14): on an idle machine the job can reach its 2-minute "
                   "limit without stopping to requeue itself (seen: PENDING, RUNNING, TIMEOUT); cause not found yet")
def test_time_limit_is_met_by_requeue_and_the_run_completes(slurm_cluster):
    data = require_sample_data()
    # about 4 minutes of training on an idle machine (60 epochs of 800 photos fitted in one 2-minute
    # attempt there), so that one attempt cannot run them all
    epochs = 240
    run = api.submit(config(data, epochs=epochs, max_images=800, es_patience=epochs),   # never stops early
                     Resources(cpus=2, mem="4G", time="2"),
                     backend="slurm", name="requeue")
    done, seen = wait_states(run.job_id, 1200)
    assert done.state == "COMPLETED", (done.reason, seen)
    m = json.loads((Path(run.out_dir) / "manifest.json").read_text())
    assert m["attempts"] >= 2 and m["epochs_run"] == epochs and len(m["history"]["val_loss"]) == epochs
    assert 0 < m["resumes"][0] < epochs                   # the first attempt could not run them all
    assert "REQUEUED" in seen, seen
    assert done.attempt == m["attempts"]
    print(f"requeue: attempts {m['attempts']}, resumed after epochs {m['resumes']}, states seen {seen}, "
          f"test accuracy {m['metrics']['test']['accuracy']:.4f}, wall {m['wall_time_s']:.0f} s")


def test_preemption_by_scontrol_requeue_resumes_and_completes(slurm_cluster):
    data = require_sample_data()
    run = api.submit(config(data, epochs=12, max_images=200), Resources(cpus=2, mem="4G", time="10"), backend="slurm")
    wait_for(lambda: backup_epoch(run.out_dir) >= 2, 300, "epoch 2's backup")
    subprocess.run(["scontrol", "requeue", run.job_id], check=True, capture_output=True, timeout=30)
    done, seen = wait_states(run.job_id, 600)
    assert done.state == "COMPLETED", (done.reason, seen)
    m = json.loads((Path(run.out_dir) / "manifest.json").read_text())
    assert m["attempts"] == 2 and m["resumed_from_epoch"] >= 2 and m["epochs_run"] == 12
