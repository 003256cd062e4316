"""Artifacts decide: a run the scheduler calls COMPLETED whose artifacts are missing or corrupt is
INCOMPLETE, has no metrics, and is never ranked by compare. No training here: crafted out dirs."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from helpers import FakeBackend, split_metrics
from crackops import api
from crackops.backends.base import RefreshResult, StateUpdate
from crackops.cli import app
from crackops.compare import compare_runs
from crackops.registry import TERMINAL_STATES, Registry, Run
from helpers import write_predictions

runner = CliRunner()


def fake_artifacts(out_dir, accuracy=0.9):
    """The files a finished run leaves, good enough for ``artifacts.verify`` (no TensorFlow)."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    for n in ("confusion_train.png", "confusion_test.png", "history_loss.png"):
        Image.new("RGB", (32, 32), (200, 10, 10)).save(out_dir / n)
    (out_dir / "metrics.txt").write_text(f"[test]\naccuracy {accuracy}\n")
    try:
        import h5py
    except ImportError:   # verify then only checks the HDF5 signature
        (out_dir / "best.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    else:
        with h5py.File(out_dir / "best.h5", "w") as h:
            h.attrs["model_config"] = "{}"
    errors = round((1 - accuracy) * 100)                    # 100 test images, 50 of each class
    assert abs(errors - (1 - accuracy) * 100) < 1e-9, "an accuracy 100 test images can have"
    fp, fn = errors // 2, errors - errors // 2
    tn, tp = 50 - fp, 50 - fn
    test = split_metrics(tn, fp, fn, tp)
    manifest = {"status": "completed", "metrics": {"test": test}, "epochs_run": 3, "best_epoch": 2,
                "wall_time_s": 10.0, "dataset": {"fingerprints": {"test": "same"}}, "runtime": {}}
    (out_dir / "manifest.json").write_text(json.dumps(manifest))
    write_predictions(out_dir, tn=tn, fp=fp, fn=fn, tp=tp)
    return out_dir


def add_run(job_id, out_dir, state="RUNNING", backend="fake", **kw):
    run = Run(job_id=job_id, backend=backend, state=state, config={"seed": 1, "lr": kw.pop("lr", 0.1)},
              resources={"job_name": "cnn_crack"}, submitted_at=time.time(), out_dir=str(out_dir), **kw)
    Registry().add(run)
    return run


class SaysCompleted(FakeBackend):
    """A backend whose scheduler says every job COMPLETED 0:0."""
    name = "fake"

    def refresh(self, runs):
        return RefreshResult(updates={r.job_id: StateUpdate("COMPLETED", exit_code="0:0", started_at=1.0,
                                                            ended_at=2.0) for r in runs}, source="fake")


def patch_backend(monkeypatch):
    from crackops.backends import get_backend as real
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: SaysCompleted() if name == "fake" else real(name))


def test_completed_without_manifest_is_incomplete(tmp_path, monkeypatch):
    patch_backend(monkeypatch)
    good = fake_artifacts(tmp_path / "out" / "1")
    empty = tmp_path / "out" / "2"
    empty.mkdir(parents=True)
    add_run("1", good)
    add_run("2", empty)
    runs = {r.job_id: r for r in api.status().runs}
    assert runs["1"].state == "COMPLETED"
    assert runs["2"].state == "INCOMPLETE" and "manifest.json" in runs["2"].reason
    assert "INCOMPLETE" in TERMINAL_STATES       # asked no more, and `wait` ends on it
    res = runner.invoke(app, ["status", "--json"])
    assert {r["job_id"]: r["state"] for r in json.loads(res.stdout)} == {"1": "COMPLETED", "2": "INCOMPLETE"}


def test_corrupt_artifact_gives_no_metrics_and_no_rank(tmp_path, monkeypatch):
    patch_backend(monkeypatch)
    a = fake_artifacts(tmp_path / "out" / "a", accuracy=0.8)
    b = fake_artifacts(tmp_path / "out" / "b", accuracy=0.99)      # the "best" numbers...
    (b / "best.h5").write_bytes(b"not a model")                    # ...but its model is corrupt
    add_run("a", a, lr=0.1)
    add_run("b", b, lr=0.2)
    rep = api.collect("b")
    assert rep.run.state == "INCOMPLETE" and rep.run.metrics is None and "best.h5" in rep.run.reason
    assert Registry().get("b").metrics is None
    res = runner.invoke(app, ["collect", "b"])
    assert res.exit_code == 6 and "corrupt" in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["compare", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    rows = {r["job_id"]: r for r in d["runs"]}
    assert rows["b"]["state"] == "INCOMPLETE" and rows["b"]["test_accuracy"] is None
    assert d["best"] != "b" and d["verdict"] is None or d["verdict"]["best"] != "b"


def test_metrics_of_a_run_whose_artifacts_went_away_are_not_ranked(tmp_path, monkeypatch):
    patch_backend(monkeypatch)
    a = fake_artifacts(tmp_path / "out" / "a", accuracy=0.8)
    b = fake_artifacts(tmp_path / "out" / "b", accuracy=0.99)
    c = fake_artifacts(tmp_path / "out" / "c", accuracy=0.7)
    for j, d, lr in (("a", a, 0.1), ("b", b, 0.2), ("c", c, 0.3)):
        add_run(j, d, lr=lr)
        api.collect(j)
    assert compare_runs(Registry().list()).best == "b"
    (b / "best.h5").unlink()                             # deleted afterwards; collected again
    res = runner.invoke(app, ["collect", "b"])
    assert res.exit_code == 6 and "missing" in res.output, res.output
    assert Registry().get("b").metrics["test_accuracy"] == 0.99     # what was recorded stays recorded
    d = json.loads(runner.invoke(app, ["compare", "--json"]).stdout)
    rows = {r["job_id"]: r for r in d["runs"]}
    assert rows["b"]["state"] == "INCOMPLETE" and rows["b"]["test_accuracy"] is None
    assert d["best"] == "a"


def test_compare_never_ranks_a_run_that_is_not_completed():
    from test_compare import collected, make_run

    runs = [make_run("1", metrics=collected(3, 2), seed=1),
            make_run("2", metrics=collected(0, 0), state="INCOMPLETE", seed=2),
            make_run("3", metrics=collected(9, 9), state="FAILED", seed=3)]
    cmp = compare_runs(runs)
    assert cmp.best is None and cmp.verdict is None          # one ranked run: nothing to win against
    rows = {r["job_id"]: r for r in cmp.rows}
    assert rows["2"]["test_accuracy"] is None and rows["3"]["test_accuracy"] is None
    assert cmp.groups[0].stats["test_accuracy"]["n"] == 1


def test_artifacts_coming_back_make_it_completed_again(tmp_path, monkeypatch):
    patch_backend(monkeypatch)
    d = tmp_path / "out" / "x"
    d.mkdir(parents=True)
    add_run("x", d)
    assert api.status().runs[0].state == "INCOMPLETE"
    fake_artifacts(d)                                     # e.g. a slow shared filesystem caught up
    rep = api.collect("x")
    assert rep.run.state == "COMPLETED" and rep.run.metrics["test_accuracy"] == 0.9 and rep.ok


def test_status_says_incomplete_at_once_not_only_after_collect(tmp_path, monkeypatch):
    patch_backend(monkeypatch)
    b = fake_artifacts(tmp_path / "out" / "b", accuracy=0.99)
    (b / "confusion_test.png").write_bytes(b"\x89PNG")          # cut short, the manifest intact
    add_run("b", b)
    (run,) = api.status().runs
    assert run.state == "INCOMPLETE" and "confusion_test.png" in run.reason


def test_an_incomplete_run_shows_no_numbers_and_is_rerun_with_the_failed(tmp_path, monkeypatch):
    import shutil

    from crackops.metrics import BY_KEY

    patch_backend(monkeypatch)
    b = fake_artifacts(tmp_path / "out" / "b", accuracy=0.97)
    add_run("b", b)
    assert api.collect("b").run.state == "COMPLETED"
    shown = BY_KEY["test_accuracy"].format(0.97, detail=True)
    assert shown in runner.invoke(app, ["status"]).output
    shutil.rmtree(b)                                               # the out folder went away
    rep = api.collect("b")
    assert rep.run.state == "INCOMPLETE" and rep.to_dict()["metrics"] is None
    for cmd in (["status"], ["status", "b"], ["collect", "b"]):
        res = runner.invoke(app, cmd)
        assert shown not in res.output and "metrics (crack" not in res.output, (cmd, res.output)
    (plan,) = api.rerun(failed=True, dry_run=True)
    assert (plan.job_id, plan.action) == ("b", "rerun"), plan


def test_metrics_that_disagree_with_the_runs_own_counts_are_no_result(tmp_path, monkeypatch):
    patch_backend(monkeypatch)
    a = fake_artifacts(tmp_path / "out" / "a", accuracy=0.9)
    b = fake_artifacts(tmp_path / "out" / "b", accuracy=0.8)
    m = json.loads((b / "manifest.json").read_text())
    m["metrics"]["test"]["accuracy"] = 1.0                       # edited by hand: 20 errors stay in the counts
    (b / "manifest.json").write_text(json.dumps(m))
    add_run("a", a, lr=0.1)
    add_run("b", b, lr=0.2)
    rep = api.collect("b")
    assert rep.run.state == "INCOMPLETE" and "test accuracy 1 disagrees with its own confusion counts" in rep.run.reason
    res = runner.invoke(app, ["collect", "b"])
    assert res.exit_code == 6 and "100.00 %" not in res.output, res.output
    cmp = api.compare()
    assert cmp.best != "b" and {r["job_id"]: r["test_accuracy"] for r in cmp.rows}["b"] is None
