"""Sweeps on a real Slurm (scripts/local-slurm.sh start): arrays split at MaxArraySize, the
throttle, one sacct call per status; and a sweep of tiny real trainings (tf).

Skipped without a cluster; failing instead when ``CRACKOPS_REQUIRE_SLURM=1``."""

from __future__ import annotations

import json
from pathlib import Path

import cloudpickle
import pytest
from typer.testing import CliRunner

import slurm_jobs
from crackops import api
from crackops.backends.slurm import SlurmBackend
from crackops.cli import app
from crackops.config import Resources, TrainConfig
from helpers import require_sample_data

cloudpickle.register_pickle_by_value(slurm_jobs)

SMALL = Resources(cpus=1, mem="1G", time="10:00")


from test_sweeps import overlap  # noqa: E402


@pytest.mark.slurm
def test_seven_runs_with_max_array_size_3_are_three_arrays_and_one_sacct_call(slurm_cluster, crackops_dirs,
                                                                              monkeypatch, tmp_path):
    monkeypatch.setenv("CRACKOPS_MAX_ARRAY_SIZE", "3")
    calls: list[list[str]] = []
    real = SlurmBackend._run

    def counting(self, cmd):
        calls.append(list(cmd))
        return real(self, cmd)

    monkeypatch.setattr(SlurmBackend, "_run", counting)
    h = api.sweep(TrainConfig(data_dir=str(tmp_path)), {"dropout": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]},
                  resources=SMALL, backend="slurm", name="seven", max_parallel=2, fn=slurm_jobs.hello,
                  check_data=False)
    arrays = h.sweep.extra["arrays"]
    assert [a["n"] for a in arrays] == [3, 3, 1] and h.sweep.extra["max_array_size"] == 3
    assert arrays[0]["dependency"] is None
    assert arrays[1]["dependency"] == f"afterany:{arrays[0]['array_id']}"        # the throttle holds across arrays
    assert arrays[2]["dependency"] == f"afterany:{arrays[1]['array_id']}"
    runs = h.runs
    assert len(runs) == 7 and len({r.job_id.split("_")[0] for r in runs}) == 3
    script = Path(arrays[0]["sbatch_script"]).read_text()
    assert "#SBATCH --array=0-2%2" in script.splitlines()
    calls.clear()
    st = h.status()
    # one sacct call; with members still unfinished, one `scontrol ping` (is the controller up?)
    assert st.calls == 1 and sorted(Path(c[0]).name for c in calls) == ["sacct", "scontrol"]
    assert all(c[1:] == ["ping"] for c in calls if Path(c[0]).name == "scontrol")
    st = h.wait(poll_s=1.0, timeout_s=240)
    assert st.counts["done"] == 7, st.counts
    assert overlap(st.runs) <= 2
    calls.clear()
    res = CliRunner().invoke(app, ["status", "--sweep", "seven", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["done"] == 7
    for r in st.runs:                                   # provenance beside every run's artifacts
        doc = json.loads((Path(r.out_dir) / "provenance.json").read_text())
        assert doc["submit"]["crackops"]["source_sha256"] == doc["start"]["crackops"]["source_sha256"]


@pytest.mark.slurm
@pytest.mark.tf
def test_grid_2x2_seeds_2_tiny_trainings_on_slurm(slurm_cluster, crackops_dirs):
    """The issue's sweep: 8 real trainings on the sample photos, --max-parallel 2, from the CLI."""
    data = require_sample_data()
    res = CliRunner().invoke(app, [
        "sweep", "--backend", "slurm", "--data", str(data), "--grid", "learning_rate=1e-3,3e-3",
        "--grid", "batch_size=8,16", "--seeds", "2", "--max-parallel", "2", "--name", "tiny",
        "--image-size", "48", "--max-images", "20", "--epochs", "1", "--cpus", "1", "--mem", "2G",
        "--time", "15:00"])
    assert res.exit_code == 0, res.output
    h = api.get_sweep("tiny")
    st = h.wait(poll_s=3.0, timeout_s=1500)
    assert st.counts["done"] == 8, [(r.job_id, r.state, r.reason) for r in st.runs]
    assert overlap(st.runs) <= 2                        # from sacct Start/End
    res = CliRunner().invoke(app, ["compare", "--sweep", "tiny", "--json"])
    cmp = json.loads(res.stdout)
    assert len(cmp["groups"]) == 4 and all(g["n"] == 2 for g in cmp["groups"])
    assert all(g["stats"]["test_accuracy"]["std"] is not None for g in cmp["groups"])
    res = CliRunner().invoke(app, ["compare", "--sweep", "tiny"])
    assert res.exit_code == 0 and "±" in res.stdout and "which settings matter" in res.stdout
    for r in st.runs:
        doc = json.loads((Path(r.out_dir) / "provenance.json").read_text())
        assert doc["submit"]["dataset"]["data_dir"]["files"] == 800
        assert (Path(r.out_dir) / "manifest.json").is_file()
