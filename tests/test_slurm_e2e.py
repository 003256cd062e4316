"""The user's path on a real Slurm, through the CLI: the seed's default profile, a real (tiny)
training, states from sacct, collect, a second process, and accounting going down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from typer.testing import CliRunner

import slurm_jobs
from crackops import api
from crackops.cli import app
from crackops.config import Resources, TrainConfig
from helpers import local_slurm, sample_data_dir

cloudpickle.register_pickle_by_value(slurm_jobs)
runner = CliRunner()
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local-slurm.sh"
pytestmark = [pytest.mark.slurm, pytest.mark.tf]   # a real Slurm, and a real training


def cli(*args):
    res = runner.invoke(app, list(args))
    assert "Traceback" not in res.output
    return res


def test_training_on_slurm_with_the_default_profile(slurm_cluster, tmp_path, crackops_dirs):
    data = sample_data_dir()
    if data is None:
        from crackops.data.synth import synthesize

        data = tmp_path / "synth"
        synthesize(data, n_per_class=150, size=96, seed=0)
    res = cli("submit", "--backend", "slurm", "--data", str(data), "--image-size", "64", "--epochs", "4",
              "--max-images", "120", "--name", "slurm-e2e", "--json")
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)
    job_id = run["job_id"]
    assert job_id.isdigit() and run["backend"] == "slurm"
    assert run["resources"]["cpus"] == 4 and run["resources"]["mem"] == "16G" and run["resources"]["time"] == "4:00:00"

    # a second process, started after this one recorded the run, sees it
    p = subprocess.run([sys.executable, "-m", "crackops", "status", "--json", "--no-refresh"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and [r["job_id"] for r in json.loads(p.stdout)] == [job_id]

    res = cli("wait", job_id, "--poll", "2", "--timeout", "600", "--json")
    assert res.exit_code == 0, res.output
    (final,) = json.loads(res.stdout)
    assert final["state"] == "COMPLETED" and final["state_source"] == "sacct"
    acct = final["accounting"]
    assert acct["alloc_cpus"] == 4 and acct["req_mem_mb"] == 16384 and acct["timelimit_s"] == 4 * 3600

    res = cli("collect", job_id, "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["ok"] and rep["artifacts"]["missing"] == [] and rep["artifacts"]["corrupt"] == {}
    assert Path(rep["artifacts"]["out_dir"]) == crackops_dirs["out"] / job_id
    assert rep["metrics"]["test_accuracy"] > 0.75          # it learned (chance is 0.5)
    out_log = crackops_dirs["logs"] / f"cnn_crack_{job_id}.out"
    assert "Epoch 1/4" in out_log.read_text() and (crackops_dirs["logs"] / f"cnn_crack_{job_id}.err").exists()
    manifest = json.loads((crackops_dirs["out"] / job_id / "manifest.json").read_text())
    assert manifest["runtime"]["cpus"] == 4                # thread pools sized to the allocation

    res = cli("status", job_id)
    assert res.exit_code == 0 and "efficiency" in res.output and "CPU" in res.output


def test_status_when_accounting_is_down(slurm_cluster, crackops_dirs):
    run = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="1G", time="10"), backend="slurm",
                     fn=slurm_jobs.sleepy, check_data=False)
    local_slurm("stop-dbd", timeout=60)
    try:
        res = cli("status")
        js = cli("status", "--json")
    finally:
        local_slurm("start-dbd", timeout=120)
        api.cancel([run.job_id])
    assert res.exit_code == 0, res.output
    assert "squeue+artifacts" in res.output and "sacct failed" in res.output
    (row,) = json.loads(js.stdout)
    assert row["job_id"] == run.job_id and row["state"] in ("PENDING", "RUNNING")
    assert row["state_source"] == "squeue+artifacts"
    # accounting back: the cancelled job ends CANCELLED, from sacct again
    for rep in api.wait([run.job_id], poll_s=1, timeout_s=60):
        pass
    assert rep.runs[0].state == "CANCELLED" and rep.sources == {"slurm": "sacct"}
