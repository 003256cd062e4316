"""The local backend with real detached processes (trivial job functions from tests/jobs.py)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.registry import Registry

TESTS = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def importable_jobs(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def submit(fn, **kw):
    cfg = TrainConfig(data_dir="unused", **kw)
    return api.submit(cfg, Resources(cpus=1, mem="1G", time="5"), fn=fn, check_data=False, name=fn.__name__)


def wait_terminal(job_id, timeout=60):
    for rep in api.wait([job_id], poll_s=0.2, timeout_s=timeout):
        pass
    return rep.runs[0]


def test_completed_run_logs_and_status_file():
    run = submit(jobs.succeed)
    assert run.job_id.startswith("L") and run.state == "PENDING"
    done = wait_terminal(run.job_id)
    assert done.state == "COMPLETED" and done.exit_code == "0:0"
    assert Path(done.log_out).name == f"cnn_crack_{run.job_id}.out"
    assert f"hello from job {run.job_id}" in Path(done.log_out).read_text()
    status = json.loads((Path(done.out_dir) / "status.json").read_text())
    assert status["phase"] == "completed" and status["job_id"] == run.job_id
    assert done.started_at is not None and done.ended_at >= done.started_at


def test_failed_run_reason_and_traceback():
    run = submit(jobs.fail)
    done = wait_terminal(run.job_id)
    assert done.state == "FAILED"
    assert "ValueError: deliberate failure" in done.reason
    err = Path(done.log_err).read_text()
    assert "Traceback" in err and "deliberate failure for the test" in err
    rep = api.collect(run.job_id)
    assert not rep.ok and "deliberate failure" in rep.err_tail


def test_cancel_running_job():
    run = submit(jobs.sleep_long)
    for _ in range(100):
        if api.status([run.job_id]).runs[0].state == "RUNNING":
            break
        time.sleep(0.1)
    assert [r.job_id for r in api.cancel([run.job_id])] == [run.job_id]
    done = wait_terminal(run.job_id, timeout=30)
    assert done.state == "CANCELLED"
    # a finished run is not cancelled again
    assert api.cancel([run.job_id]) == []


def test_killed_process_is_reported_failed_not_running():
    run = submit(jobs.sleep_long)
    for _ in range(100):
        if api.status([run.job_id]).runs[0].state == "RUNNING":
            break
        time.sleep(0.1)
    os.killpg(run.extra["pid"], 9)
    done = wait_terminal(run.job_id, timeout=30)
    assert done.state == "FAILED" and "died" in done.reason


def test_job_survives_the_submitting_process_and_a_second_process_sees_it(crackops_dirs, tmp_path):
    """Submit from a child process that exits at once; the job finishes; another process sees it."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import jobs\n"
            "from crackops import api\n"
            "from crackops.config import Resources, TrainConfig\n"
            "r = api.submit(TrainConfig(data_dir='x'), Resources(cpus=1, mem='1G', time='5'), fn=jobs.succeed,"
            " check_data=False)\n"
            "print(r.job_id)\n") % TESTS
    job_id = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    out = None
    for _ in range(100):
        out = subprocess.run([sys.executable, "-m", "crackops", "status", "--json"], capture_output=True,
                             text=True, check=True).stdout
        runs = json.loads(out)
        if runs and runs[0]["state"] == "COMPLETED":
            break
        time.sleep(0.2)
    assert [(r["job_id"], r["state"]) for r in runs] == [(job_id, "COMPLETED")]


def test_out_dir_from_another_run_is_refused(crackops_dirs):
    (crackops_dirs["out"] / "myrun").mkdir(parents=True)
    (crackops_dirs["out"] / "myrun" / "manifest.json").write_text("{}")
    cfg = TrainConfig(data_dir="x", job_id="myrun")
    with pytest.raises(api.UsageError, match="already exists"):
        api.submit(cfg, Resources(cpus=1), fn=jobs.succeed, check_data=False)
    assert Registry().list() == []
    assert (crackops_dirs["out"] / "myrun" / "manifest.json").read_text() == "{}"
