"""The run contract: one reading of the job id and CPU count, one set of file names, and the
import rules it exists for (no cycle between the job and ``ml/``; backends and ``ml/`` read the
contract, not each other). Pure: no TensorFlow, no training."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

from crackops import contract
from helpers import REPO

SRC = REPO / "src" / "crackops"


@pytest.mark.parametrize("env,expected", [
    ({"CRACKOPS_CPUS": "3", "SLURM_CPUS_PER_TASK": "8"}, 3),     # the explicit setting wins
    ({"SLURM_CPUS_PER_TASK": "8"}, 8),
    ({"CRACKOPS_CPUS": "0", "SLURM_CPUS_PER_TASK": "5"}, 5),     # not positive: ignored
    ({"CRACKOPS_CPUS": "x", "SLURM_CPUS_PER_TASK": " 6 "}, 6),
])
def test_allocated_cpus_order(env, expected):
    assert contract.allocated_cpus(env) == expected


def test_allocated_cpus_falls_back_to_affinity():
    assert contract.allocated_cpus({}) >= 1


@pytest.mark.parametrize("env", [
    {"CRACKOPS_CPUS": "3", "SLURM_CPUS_PER_TASK": "8"},
    {"SLURM_CPUS_PER_TASK": "7"},
    {"CRACKOPS_CPUS": "2"},
])
def test_tensorflow_setup_and_scanner_agree_on_cpus(monkeypatch, env):
    """TensorFlow's thread pools and the image scanner's workers use the same number (they used to
    disagree about CRACKOPS_CPUS)."""
    from crackops.data import scan
    from crackops.ml import tfsetup  # imports TensorFlow only inside configure_tensorflow

    monkeypatch.delenv("CRACKOPS_CPUS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    expected = contract.allocated_cpus(env)
    assert scan.default_workers() == tfsetup.allocated_cpus() == expected


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"SLURM_JOB_ID": "12"}, "12"),
    ({"SLURM_JOB_ID": "13", "SLURM_ARRAY_JOB_ID": "10", "SLURM_ARRAY_TASK_ID": "3"}, "10_3"),
    ({"SLURM_JOB_ID": "13", "SLURM_ARRAY_JOB_ID": "10"}, "13"),              # no task: not an array task
    ({"CRACKOPS_JOB_ID": "pbs.77", "SLURM_JOB_ID": "13"}, "pbs.77"),
])
def test_job_id_from_env(env, expected):
    assert contract.job_id_from_env(env) == expected


def test_job_uses_config_then_environment(monkeypatch):
    from crackops.config import TrainConfig
    from crackops.job import current_job_id

    for k in ("CRACKOPS_JOB_ID", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match="no job id"):
        current_job_id(TrainConfig(data_dir="d"))
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert current_job_id(TrainConfig(data_dir="d")) == "5_1"
    assert current_job_id(TrainConfig(data_dir="d", job_id="mine")) == "mine"


def test_json_files_round_trip(tmp_path):
    assert contract.read_status(tmp_path) is None and contract.read_state(tmp_path) is None
    contract.write_status(tmp_path, {"phase": "running", "pid": 1})
    contract.write_state(tmp_path, {"state": "RUNNING", "pid": 1})
    assert json.loads((tmp_path / "status.json").read_text())["phase"] == "running"
    assert contract.read_state(tmp_path)["state"] == "RUNNING"
    (tmp_path / contract.MANIFEST).write_text("{not json")
    assert contract.read_manifest(tmp_path) is None
    assert not list(tmp_path.glob(".*.tmp"))      # atomic writes leave no temp file


def test_names_are_the_ones_users_see():
    """File names are part of the interface (docs, scripts, other tools): they must not drift."""
    assert contract.STATUS_FILE == "status.json" and contract.STATE_FILE == "state.json"
    assert contract.MANIFEST == "manifest.json" and contract.PREDICTIONS == "predictions_test.csv"
    assert contract.EXPECTED == ("confusion_train.png", "confusion_test.png", "history_loss.png",
                                 "metrics.txt", "best.h5", "predictions_test.csv", "manifest.json")
    from crackops import artifacts

    assert artifacts.EXPECTED is contract.EXPECTED and artifacts.read_manifest is contract.read_manifest


def test_training_writes_the_contracts_manifest_schema():
    """ml/train.py keeps its own constant (the training module is not the contract's to edit):
    they must stay equal. Importing the module does not import TensorFlow."""
    text = (SRC / "ml" / "train.py").read_text()
    assert f"MANIFEST_SCHEMA = {contract.MANIFEST_SCHEMA}\n" in text
    for key in contract.MANIFEST_KEYS:
        assert f'"{key}":' in text, key


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _crackops_imports(path: Path) -> set[str]:
    return {n for n in _imports(path) if n.startswith("crackops")}


def test_contract_is_standard_library_only():
    assert _crackops_imports(SRC / "contract.py") == set()
    assert not {n.split(".")[0] for n in _imports(SRC / "contract.py")} & {"tensorflow", "keras", "numpy", "rich"}


@pytest.mark.parametrize("path", sorted((SRC / "ml").glob("*.py")), ids=lambda p: p.name)
def test_ml_imports_neither_the_job_nor_the_api_nor_the_registry(path):
    bad = {n for n in _crackops_imports(path)
           if n.startswith(("crackops.job", "crackops.api", "crackops.registry", "crackops.cli", "crackops.backends"))
           or n in ("crackops.job", "crackops.api", "crackops.registry")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((SRC / "backends").glob("*.py")), ids=lambda p: p.name)
def test_backends_read_the_contract_not_the_job(path):
    assert not {n for n in _crackops_imports(path) if n.startswith(("crackops.job", "crackops.ml", "crackops.api",
                                                                    "crackops.cli"))}


def test_backend_registry_drives_the_cli_help():
    from crackops import backends
    from crackops.cli.runs import BACKEND_HELP

    assert BACKEND_HELP == "Where to run: local (this machine, the default) or slurm."
    assert backends.BACKENDS == ("local", "slurm") and backends.DEFAULT_BACKEND == "local"
    for name in backends.BACKENDS:
        assert backends.get_backend(name).name == name
    from crackops.errors import UsageError

    with pytest.raises(UsageError, match="use one of: local, slurm"):
        backends.get_backend("pbs")


# ------------------------------------------------------------------ job control (requeue before the limit)

def test_stop_reason_counts_the_next_step_and_the_margin(control):
    assert contract.stop_reason(1e6) is None                       # no deadline: never
    control["deadline"] = time.time() + contract.REQUEUE_MARGIN_S + 30
    assert contract.stop_reason(10) is None                        # 10 s of work + margin fit in margin + 30
    why = contract.stop_reason(40)
    assert why and why.startswith("time limit in ")
    control["deadline"], control["stop"] = None, "asked"
    assert contract.stop_reason(0) == "asked"


def test_stop_now_runs_the_jobs_hook_before_anything_unwinds(control):
    seen = []
    control["on_stop"] = seen.append                               # a hook that returns: the requeue failed
    with pytest.raises(contract.Requeue, match="why"):
        contract.stop_now("why")
    assert seen == ["why"]
    control["on_stop"] = None
    with pytest.raises(contract.Requeue):
        contract.stop_now("local")


def test_slurms_limit_signal_only_gives_a_missing_deadline(control):
    from crackops import job

    control.update(slurm_limit_signal=True, on_stop=lambda why: None)
    job._on_usr1(10, None)
    assert control["stop"] is None and control["deadline"] == pytest.approx(time.time() + contract.LIMIT_SIGNAL_S, abs=5)
    control["deadline"] = d = time.time() + 3600                    # squeue's deadline stays: the signal can come early
    job._on_usr1(10, None)
    assert control["deadline"] == d and control["stop"] is None
    control.update(deadline=None, on_stop=None)                    # the last attempt cannot requeue: ignored
    job._on_usr1(10, None)
    assert control["deadline"] is None and control["stop"] is None
    control["slurm_limit_signal"] = False                          # not Slurm's: a requeue asked for by hand
    job._on_usr1(10, None)
    assert control["stop"]


def test_limit_signal_only_where_it_cannot_arrive_before_python_starts():
    from crackops.backends.slurm import limit_signal

    assert limit_signal(2, 3) is None and limit_signal(3, 3) is None   # Slurm sent it 3 s after a 2-min job started
    assert limit_signal(4, 3) == f"B:USR1@{contract.LIMIT_SIGNAL_S}" and limit_signal(240, 3)
    assert limit_signal(240, 1) is None                                  # --no-requeue
