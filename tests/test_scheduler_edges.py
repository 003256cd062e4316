"""Scheduler edge cases shown as they are, never as a silent PENDING or a wait that hangs: a held
job (its reason in status and wait, and wait ends), an abbreviation of an sbatch option crackops
sets (refused, not an array of failing tasks), cancel of a run that already ended (said so, and its
state stays what it was)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cloudpickle
import pytest

import jobs
import slurm_jobs
from crackops import api
from crackops.backends import local
from crackops.config import Resources, TrainConfig
from crackops.errors import StateError
from crackops.registry import Registry
from helpers import assert_clean_error, invoke

cloudpickle.register_pickle_by_value(slurm_jobs)
TESTS = str(Path(__file__).parent)


def test_a_held_slurm_job_is_shown_held_and_wait_ends(slurm_cluster):
    res = Resources(cpus=1, mem="256M", time="5", extra={"hold": True})
    run = api.submit(TrainConfig(data_dir="unused"), res, backend="slurm", fn=slurm_jobs.hello, check_data=False)
    try:
        t0 = time.monotonic()
        with pytest.raises(StateError, match="held by the scheduler") as e:
            for rep in api.wait([run.job_id], poll_s=1.0, timeout_s=120):
                pass
        assert time.monotonic() - t0 < 60 and "JobHeldUser" in str(e.value.message)
        assert "scontrol release" in e.value.hint
        rep = api.status([run.job_id])
        assert rep.runs[0].state == "PENDING" and rep.runs[0].reason == "JobHeldUser"
        assert any(run.job_id in w and "will not start by itself" in w for w in rep.warnings), rep.warnings
    finally:
        api.cancel([run.job_id])


@pytest.mark.parametrize("option", ["arr=0-2", "array=0-2", "a=0-2", "outp=/tmp/x", "J=other"])
def test_an_sbatch_option_crackops_sets_is_refused_in_any_spelling(option, crackops_dirs, tmp_path):
    res = invoke("submit", "--backend", "slurm", "--data", str(tmp_path), "--sbatch", option, "--dry-run")
    assert_clean_error(res, 2, "is set by crackops")


def test_cancel_of_a_run_that_already_ended_says_so_and_changes_nothing(crackops_dirs, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="1G", time="5"), fn=jobs.succeed,
                     check_data=False)
    deadline = time.monotonic() + 60
    while (local.read_state(run.job_id) or {}).get("state") != "COMPLETED":   # ended; the registry not told yet
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert Registry().get(run.job_id).state == "PENDING"
    res = invoke("cancel", run.job_id)
    assert res.exit_code == 0, res.output
    assert "already ended, nothing to cancel" in res.output and "(COMPLETED)" in res.output
    assert "turns CANCELLED" not in res.output
    assert Registry().get(run.job_id).state == "COMPLETED"


def test_a_running_job_whose_heartbeat_stopped_is_said_to_be_silent(slurm_cluster, monkeypatch):
    import json
    import signal

    monkeypatch.setenv("CRACKOPS_HEARTBEAT_S", "1")          # the job's beat (sbatch passes the environment on)
    monkeypatch.setenv("CRACKOPS_HEARTBEAT_STALE_S", "6")    # this process's patience
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    monkeypatch.setenv("CRACKOPS_TEST_SLEEP", "120")
    res = Resources(cpus=1, mem="256M", time="5")
    run = api.submit(TrainConfig(data_dir="unused"), res, backend="slurm", fn=slurm_jobs.sleepy, check_data=False)
    status_file = Path(run.out_dir) / "status.json"
    try:
        deadline = time.monotonic() + 60
        while not (status_file.exists() and (rep := api.status([run.job_id])).runs[0].state == "RUNNING"):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.5)
        assert (Path(run.out_dir) / "heartbeat").exists() and not any("heartbeat" in w for w in rep.warnings)
        pid = json.loads(status_file.read_text())["pid"]
        os.kill(pid, signal.SIGSTOP)                          # a node that stopped answering, as seen from here
        try:
            time.sleep(2)
            api.status([run.job_id])                          # sees the last beat
            time.sleep(8)
            rep = api.status([run.job_id])
            (r,) = rep.runs
            assert r.state == "RUNNING" and "heartbeat stopped" in (r.reason or ""), r.reason
            assert any(run.job_id in w and "no sign of life" in w for w in rep.warnings), rep.warnings
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(3)
        (r,) = api.status([run.job_id]).runs
        assert r.state == "RUNNING" and "heartbeat" not in (r.reason or ""), r.reason   # alive again
    finally:
        api.cancel([run.job_id])
