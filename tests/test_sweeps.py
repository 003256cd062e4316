"""Sweeps (grid x seeds as one recorded thing) on the local backend, and provenance.

Trivial job functions from tests/sweep_jobs.py; the Slurm and real-training sweeps are in
tests/test_sweep_slurm.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sweep_jobs
from crackops import api, provenance
from crackops.cli import app
from crackops.config import Resources, TrainConfig
from crackops.errors import UsageError
from crackops.registry import Registry
from crackops.sweeps import key_effects, parse_grid
from helpers import assert_clean_error, source_images, copy_file

TESTS = str(Path(__file__).parent)
SRC = str(Path(__file__).resolve().parents[1] / "src")
SMALL = Resources(cpus=1, mem="1G", time="5")


@pytest.fixture(autouse=True)
def importable_jobs(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture
def data(tmp_path):
    """A tiny dataset: 10 + 10 real (or synthesized) photos (enough to split)."""
    pos, neg = source_images(tmp_path, 10)
    d = tmp_path / "data"
    for f in pos:
        copy_file(f, d / "positive" / f.name)
    for f in neg:
        copy_file(f, d / "negative" / f.name)
    return d


def overlap(runs) -> int:
    """The most runs that were running at the same moment."""
    events = sorted([(r.started_at, 1) for r in runs] + [(r.ended_at, -1) for r in runs])
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return peak


# ------------------------------------------------------------------ grid parsing

def test_grid_values_are_typed():
    g = parse_grid(["learning_rate=1e-3,3e-4", "batch_size=32,64", "augment=off,full",
                    "bn_momentum=none,0.9", "fused_batchnorm=true,false", "mem=2G,4G"])
    assert g == {"learning_rate": [1e-3, 3e-4], "batch_size": [32, 64], "augment": ["off", "full"],
                 "bn_momentum": [None, 0.9], "fused_batchnorm": [True, False], "mem": ["2G", "4G"]}


@pytest.mark.parametrize("item, fragment", [
    ("lerning_rate=1", "unknown config key 'lerning_rate'"),
    ("epochs=zero", "epochs takes a whole number"),
    ("epochs=2.5", "epochs takes a whole number"),
    ("learning_rate=fast", "learning_rate takes a number"),
    ("seed=1,2", "not a grid key"),
    ("epochs", "is not KEY=V1,V2"),
    ("epochs=1,,2", "an empty value"),
])
def test_bad_grid_item_is_refused(item, fragment):
    with pytest.raises(UsageError) as e:
        parse_grid([item])
    assert fragment in e.value.message


@pytest.mark.parametrize("grid, fragments", [
    (["lerning_rate=1"], ["unknown config key 'lerning_rate'", "did you mean learning_rate?"]),
    (["epochs=zero"], ["epochs takes a whole number"]),
    (["epochs=0,1"], ["grid point epochs=0", "must be at least 1"]),
    (["image_size=64", "augment=off,sideways"], ["augment=sideways", "not known"]),
])
def test_cli_bad_grid_exits_2_and_records_nothing(data, crackops_dirs, grid, fragments):
    args = ["sweep", "--data", str(data), "--seeds", "2"]
    for g in grid:
        args += ["--grid", g]
    res = CliRunner().invoke(app, args)
    assert_clean_error(res, 2, *fragments)
    assert len([l for l in res.output.splitlines() if l.startswith("error:")]) == 1
    home = crackops_dirs["home"]
    assert not (home / "jobs").exists() and not (home / "queues").exists()
    reg = Registry()
    assert reg.list() == [] and reg.list_sweeps() == []


def test_dry_run_lists_runs_and_submits_nothing(data, crackops_dirs):
    res = CliRunner().invoke(app, ["sweep", "--data", str(data), "--grid", "learning_rate=1e-3,3e-4",
                                   "--grid", "batch_size=16,32", "--seeds", "2", "--dry-run", "--json",
                                   "--backend", "slurm", "--max-parallel", "3"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert len(plan["runs"]) == 8 and plan["seeds"] == [42, 43]
    assert "#SBATCH --array=0-7%3" in plan["script"].splitlines()
    assert Registry().list_sweeps() == [] and not (crackops_dirs["home"] / "submitit").exists()


# ------------------------------------------------------------------ local sweeps

@pytest.mark.procs
def test_local_sweep_runs_at_most_max_parallel_and_outlives_the_submitter(data, crackops_dirs):
    """2 x 2 grid x 2 seeds = 8 runs, --max-parallel 2, submitted by a process that exits at once."""
    code = (
        "import sys, sweep_jobs\n"
        "from crackops import api\n"
        "from crackops.config import Resources, TrainConfig\n"
        f"h = api.sweep(TrainConfig(data_dir={str(data)!r}), {{'learning_rate': [1e-3, 3e-4], 'batch_size': [16, 32]}},"
        " seeds=2, resources=Resources(cpus=1, mem='1G', time='5'), name='lr-bs', max_parallel=2,"
        " fn=sweep_jobs.nap, argv=['crackops', 'sweep', '--name', 'lr-bs'])\n"
        "print(len(h.runs))\n"
    )
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "CRACKOPS_TEST_NAP": "1.5"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "8"
    assert time.time() - t0 < 30                       # it did not wait for the runs
    h = api.get_sweep("lr-bs")
    st = h.wait(poll_s=0.3, timeout_s=120)
    assert st.counts == {"pending": 0, "running": 0, "done": 8, "failed": 0, "cancelled": 0}
    runs = st.runs
    assert len(runs) == 8 and {r.sweep_id for r in runs} == {h.sweep.sweep_id}
    assert overlap(runs) == 2                          # never more than 2, and it did use 2
    assert st.elapsed["min"] >= 1.4 and st.elapsed["max"] >= st.elapsed["median"] >= st.elapsed["min"]
    assert sorted((r.config["learning_rate"], r.config["batch_size"], r.config["seed"]) for r in runs) == sorted(
        (lr, bs, s) for lr in (1e-3, 3e-4) for bs in (16, 32) for s in (42, 43))
    assert len(Registry().list_sweeps()) == 1
    # every run has its provenance, in the registry and beside its artifacts
    for r in runs:
        doc = json.loads((Path(r.out_dir) / "provenance.json").read_text())
        assert doc["submit"]["command"] == "crackops sweep --name lr-bs"
        assert doc["submit"]["packages"]["typer"] and doc["start"]["crackops"] == doc["submit"]["crackops"]
        assert doc["code_changed"] is False and r.provenance["code_changed"] is False
    # the CLI views
    res = CliRunner().invoke(app, ["status", "--sweep", "lr-bs", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["done"] == 8
    res = CliRunner().invoke(app, ["status", "--sweep", "lr-bs"])
    assert res.exit_code == 0 and "done 8" in res.stdout and "median" in res.stdout
    res = CliRunner().invoke(app, ["compare", "--sweep", "lr-bs", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["groups"]) == 4


@pytest.mark.procs
def test_cancel_sweep_cancels_running_and_queued_runs(data, crackops_dirs):
    h = api.sweep(TrainConfig(data_dir=str(data)), {"dropout": [0.1, 0.2, 0.3]}, seeds=1, resources=SMALL,
                  name="slow", max_parallel=1, fn=sweep_jobs.sleep_long)
    deadline = time.time() + 120
    while h.status().counts["running"] < 1:
        assert time.time() < deadline
        time.sleep(0.2)
    res = CliRunner().invoke(app, ["cancel", "--sweep", "slow"])
    assert res.exit_code == 0, res.output
    time.sleep(2.0)                                      # a queue runner that ignored it would start one now
    deadline = time.time() + 120
    while not (st := h.status()).finished:
        assert time.time() < deadline, st.counts
        time.sleep(0.3)
    assert st.counts["cancelled"] == 3
    assert sum(1 for r in st.runs if r.started_at) == 1   # the queued two never started


def test_sweep_name_must_be_unique(data):
    api.sweep(TrainConfig(data_dir=str(data)), {"dropout": [0.1]}, resources=SMALL, name="once",
              fn=sweep_jobs.nap)
    with pytest.raises(UsageError, match="exists already"):
        api.sweep(TrainConfig(data_dir=str(data)), {"dropout": [0.2]}, resources=SMALL, name="once",
                  fn=sweep_jobs.nap)


@pytest.mark.procs
def test_compare_sweep_one_row_per_point_and_which_keys_matter(data, crackops_dirs):
    h = api.sweep(TrainConfig(data_dir=str(data)), {"learning_rate": [1e-3, 1e-4], "dropout": [0.1, 0.5]},
                  seeds=3, resources=SMALL, name="effects", max_parallel=4, fn=sweep_jobs.nap)
    h.wait(poll_s=0.3, timeout_s=120)
    reg = Registry()
    for r in h.runs:   # made-up metrics: the learning rate matters, dropout is noise
        acc = (0.9 if r.config["learning_rate"] == 1e-3 else 0.7) + 0.01 * (r.config["seed"] - 43)
        acc += 0.002 if r.config["dropout"] == 0.5 else 0.0
        reg.update(r.job_id, metrics={"test_accuracy": acc, "test_f1": acc, "test_fn": 1, "test_n": 100})
    sc = h.compare()
    assert len(sc.comparison.groups) == 4 and all(g.n == 3 for g in sc.comparison.groups)
    eff = {e["key"]: e for e in sc.effects}
    assert eff["learning_rate"]["matters"] is True and eff["learning_rate"]["best"] == 1e-3
    assert eff["dropout"]["matters"] is False
    res = CliRunner().invoke(app, ["compare", "--sweep", "effects"])
    assert res.exit_code == 0, res.output
    assert "learning_rate matters" in res.stdout and "dropout does not clearly matter" in res.stdout
    assert "±" in res.stdout


# ------------------------------------------------------------------ provenance

def test_fingerprint_follows_file_contents(tmp_path, data):
    from PIL import Image

    same = tmp_path / "same"
    other = tmp_path / "other"
    for d in (same, other):
        for f in data.rglob("*.jpg"):
            copy_file(f, d / f.parent.name / f.name)
    victim = sorted((other / "positive").glob("*.jpg"))[0]
    with Image.open(victim) as im:
        im.convert("RGB").save(victim, "JPEG", quality=55)        # re-encoded: same name, other bytes
    a, b, c = (provenance.dataset_fingerprint(d) for d in (data, same, other))
    assert a["sha256"] == b["sha256"] and a["files"] == c["files"] == 20
    assert c["sha256"] != a["sha256"]
    # the cache notices a rewrite too
    cache = tmp_path / "cache"
    first = provenance.dataset_fingerprint(same, cache_dir=cache)["sha256"]
    victim2 = same / victim.relative_to(other)
    victim2.write_bytes(victim.read_bytes())
    assert provenance.dataset_fingerprint(same, cache_dir=cache)["sha256"] == c["sha256"] != first


def test_single_run_records_provenance(data, crackops_dirs, tmp_path):
    import jobs

    run = api.submit(TrainConfig(data_dir=str(data)), SMALL, fn=jobs.succeed)
    p = run.provenance
    assert p["crackops"]["version"] and len(p["crackops"]["source_sha256"]) == 64
    assert p["python"]["version"] and "submitit" in {k.lower() for k in p["packages"]}
    assert p["config"]["data_dir"] == str(data.resolve()) and p["dataset"]["data_dir"]["files"] == 20
    assert p["command"]
    assert p["git"] is None or set(p["git"]) >= {"commit", "dirty", "root"}
    for rep in api.wait([run.job_id], poll_s=0.2, timeout_s=60):
        pass
    doc = json.loads((Path(run.out_dir) / "provenance.json").read_text())
    assert doc["submit"]["dataset"]["data_dir"]["sha256"] == p["dataset"]["data_dir"]["sha256"]
    assert doc["start"]["crackops"]["source_sha256"] == p["crackops"]["source_sha256"]
    got = api.get_run(run.job_id)
    assert got.provenance["code_changed"] is False and got.provenance["start"]["pid"]


def test_git_info_of_a_dirty_work_tree(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, env=env)
    (repo / "f.txt").write_text("a")
    subprocess.run(["git", "add", "f.txt"], cwd=repo, check=True)
    g = provenance.git_info(repo)
    assert len(g["commit"]) == 40 and g["dirty"] is True
    assert provenance.git_info(tmp_path) is None                   # not a work tree


@pytest.mark.procs
def test_code_changed_while_queued_is_flagged(data, crackops_dirs, tmp_path):
    """A queued run starts with the crackops installed when it starts: status says so."""
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import sweep_jobs\n"
        "from crackops import api\n"
        "from crackops.config import Resources, TrainConfig\n"
        f"api.sweep(TrainConfig(data_dir={str(data)!r}), {{'dropout': [0.1, 0.2]}}, resources=Resources(cpus=1, mem='1G', time='5'),"
        " name='drift', max_parallel=1, fn=sweep_jobs.nap)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{TESTS}", "CRACKOPS_TEST_NAP": "4"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    h = api.get_sweep("drift")
    first, second = h.runs
    deadline = time.time() + 120
    while not (Path(first.out_dir) / "provenance.json").exists() or \
            "start" not in json.loads((Path(first.out_dir) / "provenance.json").read_text()):
        assert time.time() < deadline
        time.sleep(0.1)
    with open(copy / "crackops" / "fmt.py", "a") as f:        # "pip install" of other code meanwhile
        f.write("\n# changed while a run was queued\n")
    st = h.wait(poll_s=0.3, timeout_s=60)
    assert st.counts["done"] == 2
    flags = {r.job_id: r.provenance["code_changed"] for r in st.runs}
    assert flags == {first.job_id: False, second.job_id: True}
    assert st.code_changed == [second.job_id]
    res = CliRunner().invoke(app, ["status", "--sweep", "drift"])
    assert "(code changed)" in res.stdout and "other crackops code" in res.output


LIGHT = """
import sys
from crackops.cli import app
try:
    app({args!r}, standalone_mode=False)
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in ("tensorflow", "keras", "torch", "jax") if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["sweep", "--help"], ["status", "--sweep", "nope"], ["compare", "--sweep", "nope"],
                                  ["sweep", "--grid", "dropout=0.1,0.2", "--dry-run", "--data", "DATA"]])
def test_sweep_commands_load_no_tensorflow(args, data):
    args = [str(data) if a == "DATA" else a for a in args]
    p = subprocess.run([sys.executable, "-c", LIGHT.format(args=args)], capture_output=True, text=True)
    assert p.stdout.strip().splitlines()[-1] == "HEAVY:", (p.stdout, p.stderr)
