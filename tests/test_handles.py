"""Runs and sweeps as first-class handles: ``api.submit`` and ``api.run`` give a run handle with
``wait``, ``result``, ``refresh``, ``logs``, ``cancel``, as submitit's ``Job``; a sweep's handle has
the same calls; ``wait --sweep``, ``report --sweep`` and ``crackops sweeps`` (with ``--json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import jobs
import sweep_jobs
from crackops import api
from crackops.cli import app
from crackops.config import Resources, TrainConfig
from crackops.errors import StateError
from crackops.registry import Registry, Run

SMALL = Resources(cpus=1, mem="1G", time="5")
TESTS = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def importable_jobs(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_submit_returns_a_run_handle_whose_result_waits(crackops_dirs):
    run = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.succeed, check_data=False)
    assert isinstance(run, Run) and run.state == "PENDING"          # still the record every call takes
    run.wait(poll_s=0.2, timeout_s=60)
    assert run.state == "COMPLETED" and run.done()
    assert "hello from job" in "".join(run.logs())
    same = api.run(run.job_id)
    assert same.job_id == run.job_id and same.state == "COMPLETED" and not same.cancel()


def test_result_raises_with_the_reason_when_the_run_failed(crackops_dirs):
    run = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.fail, check_data=False)
    with pytest.raises(StateError, match="ended FAILED") as e:
        run.result(poll_s=0.2, timeout_s=60)
    assert "deliberate failure" in e.value.message and run.state == "FAILED"


def test_a_run_handle_cancels(crackops_dirs):
    run = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.sleep_long, check_data=False)
    assert run.cancel() and run.state == "CANCELLED"
    assert Registry().get(run.job_id).state == "CANCELLED"


@pytest.mark.procs
def test_sweeps_listed_waited_and_reported(crackops_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("CRACKOPS_TEST_NAP", "0.2")
    h = api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.1, 0.2]}, seeds=1, resources=SMALL, name="grid",
                  fn=sweep_jobs.nap, check_data=False)
    runner = CliRunner()
    res = runner.invoke(app, ["wait", "--sweep", "grid", "--json", "--poll", "0.3", "--timeout", "120"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["done"] == 2
    assert "sweep grid: " in res.stderr
    res = runner.invoke(app, ["sweeps", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert (row["name"], row["runs"], row["counts"]["done"]) == ("grid", 2, 2)
    res = runner.invoke(app, ["sweeps"])
    assert res.exit_code == 0 and "grid" in res.stdout and h.sweep.sweep_id in res.stdout
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", "--sweep", "grid"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report-grid.html").read_text()
    assert all(f"run {j}" in html for j in h.job_ids)
    assert h.refresh().finished and set(h.logs()) == set(h.job_ids)
    res = runner.invoke(app, ["wait", "--sweep", "grid", "1234"])
    assert res.exit_code == 2 and "not both" in res.output
