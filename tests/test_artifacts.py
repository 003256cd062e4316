"""What a run leaves in out/<job_id>/, verified: the shared real training (tf) for the real files,
crafted files (``helpers.make_artifacts``) for everything that goes wrong."""

import pytest
from PIL import Image

from crackops import artifacts
from helpers import make_artifacts


@pytest.mark.tf
def test_real_run_artifacts_verify(trained_run):
    rep = artifacts.verify(trained_run["out_dir"])
    assert rep.ok, rep.to_dict()
    assert set(rep.present) == set(artifacts.EXPECTED)
    m = rep.manifest
    assert m["status"] == "completed" and m["job_id"] == "trained1"
    for name in ("confusion_train.png", "confusion_test.png", "history_loss.png"):
        with Image.open(trained_run["out_dir"] / name) as im:
            assert im.format == "PNG" and im.size[0] > 200
    import h5py

    with h5py.File(trained_run["out_dir"] / "best.h5") as h:
        assert "model_weights" in h
    text = (trained_run["out_dir"] / "metrics.txt").read_text()
    for word in ("[train]", "[test]", "accuracy", "precision", "recall", "f1", "true 1"):
        assert word in text


def test_crafted_artifacts_verify(tmp_path):
    rep = artifacts.verify(make_artifacts(tmp_path / "ok", job_id="ok1"))
    assert rep.ok, rep.to_dict()
    assert set(rep.present) == set(artifacts.EXPECTED) and rep.manifest["job_id"] == "ok1"


def test_missing_and_corrupt_artifacts_are_named(tmp_path):
    d = make_artifacts(tmp_path / "copy")
    png = d / "confusion_test.png"
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])          # truncated
    (d / "best.h5").write_text("not a model")         # wrong format
    (d / "metrics.txt").unlink()                      # missing
    (d / "history_loss.png").write_bytes(b"")         # empty
    rep = artifacts.verify(d)
    assert not rep.ok
    assert rep.missing == ["metrics.txt"]
    assert set(rep.corrupt) == {"confusion_test.png", "best.h5", "history_loss.png"}
    assert rep.corrupt["best.h5"] == "not an HDF5 file" and rep.corrupt["history_loss.png"] == "empty file"
    assert "confusion_train.png" in rep.present and "manifest.json" in rep.present


def test_unfinished_manifest_is_not_ok(tmp_path):
    (tmp_path / "manifest.json").write_text('{"status": "running"}')
    rep = artifacts.verify(tmp_path)
    assert "manifest.json" in rep.corrupt and len(rep.missing) == 6


def test_tail(tmp_path):
    p = tmp_path / "x.err"
    p.write_text("\n".join(f"line {i}" for i in range(100)))
    assert artifacts.tail(p, 3) == "line 97\nline 98\nline 99"
    assert artifacts.tail(tmp_path / "none", 3) == "" and artifacts.tail(None) == ""
