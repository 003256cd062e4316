"""End to end through the CLI, as a user would: submit a tiny real training, wait, collect, compare."""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from crackops.cli import app
from helpers import sample_data_dir

runner = CliRunner()
pytestmark = pytest.mark.tf


def data_dir(tmp_path):
    d = sample_data_dir()
    if d is None:
        from crackops.data.synth import synthesize

        d = tmp_path / "synth"
        synthesize(d, n_per_class=200, size=96, seed=0)
    return d


def test_submit_wait_collect_compare(tmp_path, crackops_dirs):
    data = data_dir(tmp_path)
    ids = []
    for lr in ("0.001", "0.0005"):
        res = runner.invoke(app, ["submit", "--data", str(data), "--image-size", "64", "--epochs", "5",
                                  "--learning-rate", lr, "--max-images", "150", "--json"])
        assert res.exit_code == 0, res.output
        ids.append(json.loads(res.stdout)["job_id"])
    res = runner.invoke(app, ["wait", *ids, "--poll", "1", "--timeout", "600", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["state"] for r in json.loads(res.stdout)] == ["COMPLETED", "COMPLETED"]

    for job_id in ids:
        res = runner.invoke(app, ["collect", job_id, "--json"])
        assert res.exit_code == 0, res.output
        rep = json.loads(res.stdout)
        assert rep["ok"] and rep["artifacts"]["missing"] == [] and rep["artifacts"]["corrupt"] == {}
        out = crackops_dirs["out"] / job_id
        for png in ("confusion_train.png", "confusion_test.png", "history_loss.png"):
            with Image.open(out / png) as im:
                im.verify()
        assert (out / "best.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
        assert (crackops_dirs["logs"] / f"cnn_crack_{job_id}.out").exists()
        m = rep["metrics"]
        # it learned: far above the 50 % of chance on held-out images
        assert m["test_accuracy"] >= 0.85, m
        assert m["test_n"] == 60 and m["train_n"] + m["val_n"] == 240
        assert m["epochs_run"] >= 1

    res = runner.invoke(app, ["compare", *ids, "--json"])
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert "learning_rate" in cmp["differing_config"] and "image_size" not in cmp["differing_config"]
    assert {r["job_id"] for r in cmp["runs"]} == set(ids)
    res = runner.invoke(app, ["compare", *ids])
    assert res.exit_code == 0 and "learning_rate" in res.output and "test acc" in res.output
