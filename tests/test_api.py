"""The Python API does what the CLI does: profiles merged, configs left alone, compare/report/predict
callable without the CLI. No TensorFlow: the jobs are tests/jobs.py's trivial functions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.errors import NotFoundError, StateError, UsageError
from crackops.registry import Registry
from helpers import invoke, make_run, FakeBackend

TESTS = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def importable_jobs(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def write_profile(home: Path, name: str, text: str) -> None:
    (home / "profiles").mkdir(parents=True, exist_ok=True)
    (home / "profiles" / f"{name}.toml").write_text(text)


PROFILE = """
[resources]
cpus = 2
mem = "6G"
time = "0:20:00"

[train]
image_size = 96
epochs = 3
"""


def test_config_from_profile_merges_the_train_section(crackops_dirs):
    write_profile(crackops_dirs["home"], "small", PROFILE)
    cfg = api.config_from_profile("small", data_dir="d")
    assert (cfg.image_size, cfg.epochs, cfg.data_dir) == (96, 3, "d")
    cfg = api.config_from_profile("small", data_dir="d", epochs=7, learning_rate=None)  # None: not given
    assert (cfg.image_size, cfg.epochs, cfg.learning_rate) == (96, 7, TrainConfig().learning_rate)
    res, train = api.resolve_resources("small", mem="8G", cpus=None)
    assert (res.cpus, res.mem, res.time) == (2, "8G", "0:20:00") and train == {"image_size": 96, "epochs": 3}


def test_cli_submit_uses_the_same_merge(crackops_dirs, tmp_path):
    write_profile(crackops_dirs["home"], "small", PROFILE)
    from helpers import source_images

    data = tmp_path / "data"
    pos, neg = source_images(tmp_path, 10)  # enough distinct images to split
    for c, files in (("positive", pos), ("negative", neg)):
        (data / c).mkdir(parents=True)
        for f in files:
            (data / c / f.name).write_bytes(f.read_bytes())
    res = invoke("submit", "--data", data, "--profile", "small", "--epochs", "5", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    import json

    cfg = json.loads(res.stdout)["config"]
    assert cfg["image_size"] == 96 and cfg["epochs"] == 5
    assert cfg == {**api.config_from_profile("small", data_dir=str(data), epochs=5).to_dict(),
                   "out_root": cfg["out_root"]}


def test_submit_leaves_the_config_alone_and_can_submit_it_twice(crackops_dirs):
    cfg = TrainConfig(data_dir="unused", epochs=2)
    res = Resources(cpus=1, mem="1G", time="5")
    before, res_before = cfg.to_dict(), res.to_dict()
    runs = [api.submit(cfg, res, fn=jobs.succeed, check_data=False) for _ in range(2)]
    assert cfg.to_dict() == before and res.to_dict() == res_before
    assert runs[0].job_id != runs[1].job_id
    done = api.wait_until_done([r.job_id for r in runs], poll_s=0.2, timeout_s=60)
    assert [r.state for r in done] == ["COMPLETED", "COMPLETED"]
    assert all(Path(r.out_dir, "touched.txt").is_file() for r in done)


def test_dry_run_changes_nothing(crackops_dirs):
    cfg = TrainConfig(data_dir="unused")
    plan = api.dry_run(cfg, fn=jobs.succeed)
    assert cfg.out_root == "out" and plan.config.out_root == str(crackops_dirs["out"].resolve())
    assert "crackops.backends.local_runner" in str(plan) and Registry().list() == []


def test_model_path_resolves_job_ids_in_the_api(crackops_dirs, tmp_path):
    reg = Registry()
    done, failed = tmp_path / "done", tmp_path / "failed"
    done.mkdir()
    (done / "best.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    reg.add(make_run("m1", state="COMPLETED", out_dir=done))
    reg.add(make_run("m2", state="FAILED", out_dir=failed))
    reg.add(make_run("m3", state="COMPLETED", out_dir=failed))
    assert api.model_path("m1") == ((done / "best.h5"), "m1")
    assert api.model_path(done) == ((done / "best.h5").resolve(), None)
    with pytest.raises(StateError, match="ended FAILED"):
        api.model_path("m2")
    with pytest.raises(NotFoundError, match="best.h5 is missing"):
        api.model_path("m3")
    with pytest.raises(NotFoundError, match="unknown job id"):
        api.model_path("nope")


def test_ml_predict_needs_no_registry(tmp_path):
    """Without a lookup, the ml layer takes files and folders only: job ids are the API's business."""
    from crackops.ml.predict import resolve_model_path

    with pytest.raises(NotFoundError, match="does not exist"):
        resolve_model_path("m1")
    assert resolve_model_path("m1", find_run=lambda j: tmp_path / f"{j}.h5") == (tmp_path / "m1.h5", "m1")


def imported_modules(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_ml_does_not_import_the_api_or_the_registry():
    src = Path(api.__file__).parent.parent
    for f in list((src / "ml").glob("*.py")) + [src / "job.py"]:
        bad = {m for m in imported_modules(f)
               if m.startswith(("crackops.api", "crackops.registry", "crackops.cli"))}
        assert not bad, f"{f.name} imports {bad}"


def test_predict_refuses_before_loading_a_model(crackops_dirs, tmp_path):
    with pytest.raises(UsageError, match="--batch-size"):
        api.predict(tmp_path, ["x.jpg"], batch_size=0)
    with pytest.raises(UsageError, match="--threshold"):
        api.predict(tmp_path, ["x.jpg"], threshold=2)
    with pytest.raises(NotFoundError, match="unknown job id"):
        api.predict("nope", [tmp_path])


def test_report_and_compare_from_python(crackops_dirs, tmp_path):
    reg = Registry()
    for j in ("r1", "r2"):
        reg.add(make_run(j, state="FAILED", out_dir=tmp_path / j))
    cmp = api.compare(["r1", "r2"])
    assert [r["job_id"] for r in cmp.rows] == ["r1", "r2"] and cmp.plot_path is None
    assert api.compare(states=["COMPLETED"]).rows == []
    rep = api.report(["r2", "r1", "r2"], tmp_path / "r.html")
    assert rep.path == (tmp_path / "r.html").resolve() and [r.job_id for r in rep.runs] == ["r2", "r1"]
    assert "run r1" in rep.path.read_text()
    with pytest.raises(UsageError, match="--max-errors"):
        api.report(["r1"], max_errors=-1)
    with pytest.raises(UsageError, match="the plot is a PNG"):
        api.compare(plot=tmp_path / "x.jpg")


def test_a_requeued_runs_waiting_reason_ends_when_it_runs_again(crackops_dirs, monkeypatch):
    from crackops.backends.base import RefreshResult, StateUpdate

    reg = Registry()
    run = make_run("77", state="REQUEUED", backend="slurm",
                   reason="attempt 2 waiting (BeginTime); attempt 1 stopped: time limit in 37 s")
    reg.add(run)

    class Stub(FakeBackend):
        def refresh(self, runs):
            return RefreshResult(updates={r.job_id: StateUpdate(state="RUNNING") for r in runs}, source="stub")

    monkeypatch.setattr("crackops.backends.get_backend", lambda name: Stub())
    got = api.status(["77"], registry=reg).runs[0]
    assert got.state == "RUNNING" and got.reason is None
    assert reg.list(job_ids=["77"])[0].reason is None
