"""Export to MLflow (issue 23), checked against a real ``mlflow server`` (SQLite backend store,
local artifact root, a free port) through ``MlflowClient``, as a user would see it: runs, params,
metric histories, tags, artifacts, a sweep's nesting, and a second export that updates instead of
duplicating. And the TensorBoard logdir spec of some runs.

Skipped where MLflow is not installed; failing instead under ``CRACKOPS_REQUIRE_MLFLOW=1`` (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlflow_server
from crackops import api
from crackops.registry import Registry, Sweep
from helpers import BASE_CONFIG, T0, assert_clean_error, collected, invoke, make_artifacts, make_run

HISTORY = {"loss": [0.61, 0.42, 0.30], "accuracy": [0.70, 0.85, 0.90], "val_loss": [0.55, 0.40, 0.41],
           "val_accuracy": [0.75, 0.86, 0.85], "lr": [1e-3, 5e-4, 0.0]}
ACCOUNTING = {"cpu_eff": 0.83, "mem_eff": 0.3, "time_eff": 0.1, "max_rss_mb": 1228.8, "req_mem_mb": 4096.0,
              "total_cpu_s": 500.0, "elapsed_s": 300.0, "alloc_cpus": 2}
PROVENANCE = {"crackops": {"version": "0.1.0", "source_sha256": "c0de" * 16},
              "git": {"commit": "abc123def456", "dirty": True, "root": "/src"},
              "dataset": {"data_dir": {"sha256": "da7a" * 16, "files": 800}}}


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    why = mlflow_server.problem()
    if why:
        if os.environ.get("CRACKOPS_REQUIRE_MLFLOW") == "1":
            pytest.fail(f"CRACKOPS_REQUIRE_MLFLOW=1 but {why}")
        pytest.skip(why)
    srv = mlflow_server.start(tmp_path_factory.mktemp("mlflow"))
    yield srv
    mlflow_server.stop(srv)


@pytest.fixture
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.uri)


def finished_run(root: Path, job_id: str, *, fn: int, history=HISTORY, **kw):
    """A COMPLETED registry run with real files: the seed's artifacts and a manifest with history."""
    out = make_artifacts(root / job_id, job_id=job_id)
    m = json.loads((out / "manifest.json").read_text())
    m.update(history=history, attempts=2, runtime={"epoch_s": [10.0] * len(history["loss"])})
    (out / "manifest.json").write_text(json.dumps(m))
    run = make_run(job_id, metrics={**collected(fn, 2), "ood_walls_accuracy": 0.8}, out_dir=str(out),
                   accounting=dict(ACCOUNTING), **kw)
    run.provenance, run.attempt = PROVENANCE, 2
    return run


def failed_run(root: Path, job_id: str, **kw):
    """A FAILED run that got through 2 epochs: its history is in its last backup."""
    out = root / job_id
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "state.json").write_text(json.dumps({
        "schema": 1, "epoch": 2, "step": 0, "history": {k: v[:2] for k, v in HISTORY.items() if k != "lr"},
        "timer": {"epoch_s": [10.0, 11.0], "lrs": [1e-3, 5e-4]}, "started_at": T0}))
    return make_run(job_id, state="FAILED", reason="exit code 1", out_dir=str(out), **kw)


def sweep_in_registry(root: Path, name: str, n_ok: int = 2):
    reg = Registry()
    sweep = Sweep(sweep_id=f"sw-{name}", name=name, backend="local", grid={"learning_rate": [1e-3, 3e-4]},
                  seeds=[1], base_config=dict(BASE_CONFIG), resources={"cpus": 2}, created_at=T0)
    runs = [finished_run(root, f"{name}-{i}", fn=i, name=f"{name}-lr{i}", learning_rate=[1e-3, 3e-4][i % 2],
                         submitted_at=T0 + i) for i in range(n_ok)]
    runs.append(failed_run(root, f"{name}-x", name=f"{name}-broken", submitted_at=T0 + 9))
    for r in runs:
        r.sweep_id = sweep.sweep_id
    reg.add_sweep(sweep, runs)
    return reg, runs


def runs_of(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    return {r.data.tags["crackops.run_key"]: r for r in client.search_runs([exp.experiment_id], max_results=1000)}


def test_a_sweep_becomes_a_parent_run_with_its_members_nested_and_everything_a_user_looks_for(
        tmp_path, server, client):
    reg, runs = sweep_in_registry(tmp_path / "out", "lr-grid")
    rep = api.export_mlflow(sweep="lr-grid", tracking_uri=server.uri, experiment="sweep-test", registry=reg)
    assert [r.action for r in rep.runs] == ["created"] * 4
    got = runs_of(client, "sweep-test")
    assert len(got) == 4
    parent = got["sweep:sw-lr-grid"]
    assert parent.data.tags["crackops.kind"] == "sweep" and parent.info.run_name == "lr-grid"
    assert json.loads(parent.data.params["grid.learning_rate"]) == [1e-3, 3e-4]
    assert parent.info.status == "FAILED"                       # one member failed
    assert parent.data.metrics["runs_completed"] == 2.0
    members = [r for k, r in got.items() if not k.startswith("sweep:")]
    assert {r.data.tags["mlflow.parentRunId"] for r in members} == {parent.info.run_id}

    ok = next(r for r in members if r.data.tags["crackops.job_id"] == "lr-grid-1")
    assert ok.info.status == "FINISHED" and ok.info.run_name == "lr-grid-lr1"
    assert ok.data.params["learning_rate"] == "0.0003" and ok.data.params["image_size"] == "64"
    assert ok.data.params["resources.mem"] == "16G" and "out_root" not in ok.data.params
    m = collected(1, 2)
    assert ok.data.metrics["test_accuracy"] == pytest.approx(m["test_accuracy"])
    assert ok.data.metrics["test_fn"] == 1 and ok.data.metrics["val_f1"] == pytest.approx(m["val_f1"])
    assert ok.data.metrics["cpu_eff"] == pytest.approx(0.83)
    assert ok.data.metrics["ood_walls_accuracy"] == 0.8 and ok.data.tags["crackops.ood_sets"] == "ood_walls_accuracy"
    hist = client.get_metric_history(ok.info.run_id, "epoch_val_loss")
    assert [(h.step, h.value) for h in hist] == list(enumerate(HISTORY["val_loss"]))
    lr = client.get_metric_history(ok.info.run_id, "epoch_learning_rate")
    assert [h.value for h in lr] == pytest.approx(HISTORY["lr"])
    tags = ok.data.tags
    assert tags["crackops.backend"] == "local" and tags["crackops.state"] == "COMPLETED"
    assert tags["crackops.attempts"] == "2" and tags["crackops.sweep"] == "lr-grid"
    assert tags["crackops.cpu_eff"] == "83%" and tags["crackops.mem_eff"] == "30% (1.2G of 4.0G)"
    assert tags["mlflow.source.git.commit"] == "abc123def456" and tags["crackops.git_dirty"] == "true"
    assert tags["crackops.code_digest"] == "c0de" * 16 and tags["crackops.dataset_fingerprint"] == "da7a" * 16
    names = {a.path for a in client.list_artifacts(ok.info.run_id)}
    assert {"best.h5", "confusion_test.png", "confusion_train.png", "history_loss.png", "metrics.txt",
            "predictions_test.csv", "manifest.json"} <= names
    local = client.download_artifacts(ok.info.run_id, "predictions_test.csv", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == (Path(runs[1].out_dir) / "predictions_test.csv").read_bytes()

    broken = next(r for r in members if r.data.tags["crackops.job_id"] == "lr-grid-x")
    assert broken.info.status == "FAILED" and broken.data.tags["crackops.reason"] == "exit code 1"
    assert [h.value for h in client.get_metric_history(broken.info.run_id, "epoch_loss")] == HISTORY["loss"][:2]
    assert "test_accuracy" not in broken.data.metrics


def test_a_second_export_updates_and_never_duplicates(tmp_path, server, client):
    reg, runs = sweep_in_registry(tmp_path / "out", "again")
    first = api.export_mlflow(sweep="again", tracking_uri=server.uri, experiment="again-test", registry=reg)
    ids = {r.key: r.run_id for r in first.runs}
    second = api.export_mlflow(sweep="again", tracking_uri=server.uri, experiment="again-test", registry=reg)
    assert [r.action for r in second.runs] == ["unchanged"] * 4
    assert {r.key: r.run_id for r in second.runs} == ids
    assert second.total_calls == 2          # the experiment and one search: nothing sent again
    assert first.total_calls > 4 * 3

    # the failed run is rerun by hand and finishes: its row changes, the same MLflow run follows
    reg.update(runs[2], state="COMPLETED", reason=None, metrics=collected(0, 0), accounting=dict(ACCOUNTING))
    third = api.export_mlflow(sweep="again", tracking_uri=server.uri, experiment="again-test", registry=reg)
    actions = {r.key: r.action for r in third.runs}
    assert sorted(actions.values()) == ["unchanged", "unchanged", "updated", "updated"]  # the run and its parent
    got = runs_of(client, "again-test")
    assert len(got) == 4 and {k: r.info.run_id for k, r in got.items()} == ids
    fixed = next(r for r in got.values() if r.data.tags.get("crackops.job_id") == "again-x")
    assert fixed.info.status == "FINISHED" and fixed.data.tags["crackops.state"] == "COMPLETED"
    assert fixed.data.metrics["test_accuracy"] == pytest.approx(1.0)
    hist = client.get_metric_history(fixed.info.run_id, "epoch_loss")
    assert [h.step for h in hist] == [0, 1]  # the points sent twice are there once


def test_cli_export_json_and_the_since_filter(tmp_path, server, client):
    reg, runs = sweep_in_registry(tmp_path / "out", "cli")
    reg.add(finished_run(tmp_path / "out", "solo", fn=3, name="solo", submitted_at=time.time()))
    res = invoke("export", "mlflow", "--since", "1h", "--tracking-uri", server.uri, "--experiment", "cli-test", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["job_id"] for r in doc["runs"]] == ["solo"] and doc["created"] == 1
    assert doc["url"] == f"{server.uri}/#/experiments/{doc['experiment_id']}"
    assert "mlflow.parentRunId" not in runs_of(client, "cli-test")[doc["runs"][0]["key"]].data.tags
    res = invoke("export", "mlflow", "--sweep", "cli", "--tracking-uri", server.uri, "--experiment", "cli-test")
    assert res.exit_code == 0, res.output
    assert "4 runs: 4 created, 0 updated, 0 unchanged" in res.output and "cli-lr0" in res.stdout


def test_export_at_collect_from_a_profile_tracking_table(tmp_path, server, client, crackops_dirs):
    profiles = crackops_dirs["home"] / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "tracked.toml").write_text(
        f'[resources]\ncpus = 2\nmem = "4G"\ntime = "0:30:00"\n\n[tracking]\nmlflow_uri = "{server.uri}"\n'
        'mlflow_experiment = "at-collect"\n')
    run = finished_run(tmp_path / "out", "col1", fn=1, name="collected-here")
    run.metrics, run.resources = None, {**run.resources, "profile": "tracked"}
    reg = Registry()
    reg.add(run)
    rep = api.collect("col1", registry=reg)
    assert rep.ok and rep.tracking["action"] == "created", rep.tracking
    got = runs_of(client, "at-collect")
    assert [r.info.run_id for r in got.values()] == [rep.tracking["run_id"]]
    assert next(iter(got.values())).data.metrics["test_accuracy"] == pytest.approx(reg.get("col1").metrics["test_accuracy"])
    # the server is down: the collect still succeeds, and says the export failed
    (profiles / "tracked.toml").write_text(
        f'[resources]\ncpus = 2\n\n[tracking]\nmlflow_uri = "http://127.0.0.1:{mlflow_server.free_port()}"\n')
    reg.update(reg.get("col1"), metrics=None)
    res = invoke("collect", "col1")
    assert res.exit_code == 0, res.output
    assert "not exported to MLflow" in res.output and "is the tracking server running" not in res.stdout


def test_export_errors_are_one_line(tmp_path):
    reg, _ = sweep_in_registry(tmp_path / "out", "err")
    port = mlflow_server.free_port()
    t = time.monotonic()
    res = invoke("export", "mlflow", "--sweep", "err", "--tracking-uri", f"http://127.0.0.1:{port}")
    assert_clean_error(res, 5, f"MLflow at http://127.0.0.1:{port}", "is the tracking server running")
    assert time.monotonic() - t < 60
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    res = invoke("export", "mlflow", "--sweep", "err") if "MLFLOW_TRACKING_URI" not in os.environ else None
    if res is not None:
        assert_clean_error(res, 2, "no MLflow tracking URI", "--tracking-uri")
    assert_clean_error(invoke("export", "mlflow", "a", "--sweep", "err", "--tracking-uri", "http://x"), 2,
                       "not both")
    # MLflow not installed: one line saying what to install (an import hook hides it, in a process of its own)
    code = ("import sys\nclass Hide:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'mlflow' or name.startswith('mlflow.'):\n            raise ImportError('hidden')\n"
            "sys.meta_path.insert(0, Hide())\nfrom crackops.cli import main\n"
            "sys.argv = ['crackops', 'export', 'mlflow', '--tracking-uri', 'http://127.0.0.1:1']\nmain()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "MLflow is not installed" in p.stderr and "pip install 'crackops[mlflow]'" in p.stderr


def test_tensorboard_logdir_spec_names_runs_by_job_id_and_name(tmp_path):
    reg, runs = sweep_in_registry(tmp_path / "out", "tb")
    for r in runs[:2]:
        (Path(r.out_dir) / "tensorboard" / "train").mkdir(parents=True)
    spec = api.tensorboard_logdirs(sweep="tb", registry=reg)
    want = [(f"tb-{i}-tb-lr{i}", str((Path(runs[i].out_dir) / "tensorboard").resolve())) for i in range(2)]
    assert spec.logdirs == want and spec.missing == ["tb-x"]
    res = invoke("tensorboard", "--sweep", "tb", "--print")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == ",".join(f"{n}:{p}" for n, p in want)
    assert "no event files in tb-x" in res.output
    res = invoke("tensorboard", "tb-0", "--json")
    assert json.loads(res.stdout)["runs"] == [{"name": want[0][0], "path": want[0][1]}]
    assert_clean_error(invoke("tensorboard", "tb-x"), 3, "no TensorBoard event files in tb-x")
    assert_clean_error(invoke("tensorboard", "tb-0", "--print", "--port", "7000"), 2, "--print and --json start none")
    assert_clean_error(invoke("tensorboard", "tb-0", "--print", "--json"), 2, "not both")


def test_the_readme_mapping_table_is_the_code_s():
    from crackops.tracking.record import MAPPING
    from helpers import REPO

    readme = (REPO / "README.md").read_text()
    for a, b, c in MAPPING:
        assert f"| {a} | {b} | {c or '-'} |" in readme, a
