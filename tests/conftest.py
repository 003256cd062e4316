"""Every test gets its own state dir, out dir and logs dir: nothing touches ~/.crackops."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture
def control():
    """``crackops.contract.CONTROL`` (the job's stop and requeue state) reset for the test and put
    back after it."""
    from crackops import contract

    saved = dict(contract.CONTROL)
    contract.CONTROL.update(stop=None, deadline=None, interrupted=None, on_stop=None, slurm_limit_signal=False)
    yield contract.CONTROL
    contract.CONTROL.clear()
    contract.CONTROL.update(saved)


@pytest.fixture(autouse=True)
def crackops_dirs(tmp_path, monkeypatch):
    home, out, logs = tmp_path / "home", tmp_path / "out", tmp_path / "logs"
    monkeypatch.setenv("CRACKOPS_HOME", str(home))
    monkeypatch.setenv("CRACKOPS_OUT", str(out))
    monkeypatch.setenv("CRACKOPS_LOGS", str(logs))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("COLUMNS", "200")
    # the local runner and other subprocesses import the tests' job modules (jobs, sweep_jobs) by name
    tests = os.path.dirname(os.path.abspath(__file__))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p))
    return {"home": home, "out": out, "logs": logs}


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _build_cli_once()


def _build_cli_once():
    """``typer.testing.CliRunner.invoke`` turns the typer app into a click command on every call:
    for crackops' commands about 0.1 s (their annotations evaluated again), most of what a test's
    CLI call costs. The command is the same every time (options read the environment when they
    parse, not when they are built), so it is built once per app, as the ``crackops`` program
    itself does once per process."""
    import typer.testing

    build = getattr(typer.testing, "_get_command", None)
    if build is None or getattr(build, "crackops_cached", False):
        return
    built: dict[int, tuple] = {}

    def once(app):
        hit = built.get(id(app))
        if hit is None or hit[0] is not app:
            hit = built[id(app)] = (app, build(app))
        return hit[1]

    once.crackops_cached = True
    typer.testing._get_command = once


TRAINING_FIXTURES = {"trained_run", "registered_trained_run"}


def _deselects_tf(config) -> bool:
    """Whether ``-m`` leaves out tests marked ``tf`` (e.g. ``-m "not slurm and not tf"``)."""
    expr = config.getoption("markexpr", "") or ""
    if "tf" not in expr:
        return False
    try:
        from _pytest.mark.expression import Expression

        return not Expression.compile(expr).evaluate(lambda name: name == "tf")
    except Exception:  # noqa: BLE001 - another pytest: collect as usual, -m still deselects
        return False


def pytest_ignore_collect(collection_path, config):
    """Modules that are all TensorFlow (``pytestmark = pytest.mark.tf``) import it at collection
    (seconds); when ``-m`` leaves tf tests out, they are not imported at all."""
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") and _deselects_tf(config):
        try:
            text = collection_path.read_text()
        except OSError:
            return None
        if "\npytestmark = pytest.mark.tf\n" in text:
            return True
    return None


def pytest_collection_modifyitems(config, items):
    """Tests on the shared real training need TensorFlow and minutes: mark them ``tf`` so
    ``-m "not tf"`` leaves them out (modules that are all TensorFlow set ``pytestmark`` too).
    Where TensorFlow is not installed, every ``tf`` test is skipped with that reason."""
    import importlib.util

    no_tf = importlib.util.find_spec("tensorflow") is None
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tf)
        if "slurm_cluster" in getattr(item, "fixturenames", ()):   # every real-Slurm test is in the slurm tier
            item.add_marker(pytest.mark.slurm)
        if no_tf and item.get_closest_marker("tf") is not None:
            item.add_marker(pytest.mark.skip(reason="TensorFlow is not installed (pip install -e '.[cpu]')"))


# ---------------------------------------------------------------- one real tiny training, shared

def _sample_or_synth(root):
    from helpers import sample_data_dir

    sample = sample_data_dir()
    if sample is not None:
        return sample
    from crackops.data.synth import synthesize

    d = root / "synth"
    synthesize(d, n_per_class=200, size=96, seed=0)
    return d


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real training run (real sample photos when present, 64 px, 6 epochs), trained once per
    test session in a subprocess. Returns {"out_dir", "manifest", "data_dir", "job_id"}."""
    import json
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("trained")
    data = _sample_or_synth(root)
    code = (
        "from crackops.config import TrainConfig\n"
        "from crackops.job import run_training\n"
        f"run_training(TrainConfig(data_dir={str(data)!r}, image_size=64, epochs=6, out_root={str(root / 'out')!r},"
        " job_id='trained1', seed=1))\n"
    )
    env = {**os.environ, "CRACKOPS_HOME": str(root / "home"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out_dir = root / "out" / "trained1"
    return {"out_dir": out_dir, "manifest": json.loads((out_dir / "manifest.json").read_text()),
            "data_dir": data, "job_id": "trained1"}


@pytest.fixture
def registered_trained_run(trained_run):
    """The shared trained run, recorded as COMPLETED in this test's own registry."""
    from crackops.registry import Registry, Run

    m = trained_run["manifest"]
    reg = Registry()
    run = Run(job_id="trained1", backend="local", state="COMPLETED", config=m["config"],
              resources={"cpus": 2, "mem": "4G", "time": "0:30:00", "job_name": "cnn_crack", "profile": "test"},
              submitted_at=m["started_at"] - 1, started_at=m["started_at"], ended_at=m["ended_at"],
              out_dir=str(trained_run["out_dir"]), name="trained")
    reg.add(run)
    return reg.get("trained1")


# ---------------------------------------------------------------- a real Slurm (scripts/local-slurm.sh)

def _cluster_problem() -> str | None:
    for tool in ("sbatch", "sacct", "squeue", "scancel", "srun"):
        if shutil.which(tool) is None:
            return f"{tool} not found (start a cluster with scripts/local-slurm.sh start)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        if "UP" not in ping.stdout:
            return f"slurmctld is not up: {ping.stdout.strip() or ping.stderr.strip()}"
        acct = subprocess.run(["sacct", "-n", "-X", "-j", "1", "--format=JobID"], capture_output=True,
                              text=True, timeout=15)
        if acct.returncode != 0:
            return f"sacct does not work: {acct.stderr.strip()}"
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
        if not any(s.strip().rstrip("*") in ("idle", "mixed", "allocated", "completing")
                   for s in nodes.stdout.split()):
            return f"no usable node: {nodes.stdout.strip()!r}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"Slurm does not answer: {e}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("CRACKOPS_REQUIRE_SLURM") == "1":
            pytest.fail(f"CRACKOPS_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    return True
