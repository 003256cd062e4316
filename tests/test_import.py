"""A lost or damaged registry: ``crackops import`` records the runs again from their folders, and a
damaged registry file is one line naming it and the way back, on every command, never written."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.registry import Registry
from helpers import invoke, text

EXIT_STATE = 4


def _registry_files(home: Path) -> list[Path]:
    return [home / n for n in ("registry.db", "registry.db-wal", "registry.db-shm")]


def _lose_registry(home: Path) -> None:
    for p in _registry_files(home):
        p.unlink(missing_ok=True)


@pytest.fixture
def three_runs(crackops_dirs):
    """Two completed local runs (one named, other resources) and a failed one, all ended."""
    cfg = TrainConfig(data_dir="unused", epochs=2)
    runs = [api.submit(cfg, Resources(cpus=1, mem="1G", time="5"), fn=jobs.finished, check_data=False, name="a"),
            api.submit(cfg, Resources(cpus=2, mem="2G", time="7"), fn=jobs.finished, check_data=False),
            api.submit(cfg, Resources(cpus=1, mem="1G", time="5"), fn=jobs.fail, check_data=False)]
    done = api.wait_until_done([r.job_id for r in runs], poll_s=0.2, timeout_s=90)
    assert [r.state for r in done] == ["COMPLETED", "COMPLETED", "FAILED"]
    return done


def _row(r) -> dict:
    return {"job_id": r.job_id, "backend": r.backend, "name": r.name, "state": r.state,
            "resources": r.resources, "config": r.config, "out_dir": r.out_dir, "log_out": r.log_out,
            "submitted_at": r.submitted_at, "sweep_id": r.sweep_id,
            "test_accuracy": (r.metrics or {}).get("test_accuracy")}


def test_import_records_a_deleted_registry_again_and_twice_records_nothing(three_runs, crackops_dirs):
    before = {r.job_id: _row(r) for r in three_runs}
    _lose_registry(crackops_dirs["home"])

    res = invoke("status")
    assert res.exit_code == 0, text(res)
    said = " ".join(res.output.split())
    assert "no runs yet" in said and f"3 run folders in {crackops_dirs['out']}" in said, said
    assert f"crackops import {crackops_dirs['out']} records them again" in said, said

    res = invoke("import", str(crackops_dirs["out"]), "--json")
    assert res.exit_code == 0, text(res)
    got = json.loads(res.stdout)
    assert sorted(r["job_id"] for r in got["imported"]) == sorted(before) and got["skipped"] == []
    after = {r.job_id: _row(r) for r in Registry().list()}
    assert after == before           # every field status, collect and compare use, results included

    res = invoke("import", str(crackops_dirs["out"]))
    assert res.exit_code == 0, text(res)
    assert "0 runs imported, 3 skipped" in res.output and res.output.count("recorded already") == 3, res.output
    assert len(Registry().list()) == 3


def test_import_skips_what_did_not_end_and_says_why(crackops_dirs, tmp_path):
    out = crackops_dirs["out"]
    (out / "running1").mkdir(parents=True)
    (out / "running1" / "status.json").write_text(json.dumps({"job_id": "running1", "phase": "running"}))
    (out / "junk").mkdir()
    rep = api.import_runs([out])
    assert rep.imported == []
    why = dict(rep.skipped)
    assert why[str(out / "running1")] == "not finished: status.json says 'running'"
    assert why[str(out / "junk")].startswith("not a run folder")
    res = invoke("import", str(tmp_path / "nope"))
    assert res.exit_code == 2 and "is not a folder" in res.output


def _garbage(p: Path) -> None:
    p.write_bytes(os.urandom(3000))


def _truncated(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", [_garbage, _truncated], ids=["garbage", "truncated"])
def test_a_damaged_registry_is_one_line_on_every_command_and_never_written(three_runs, crackops_dirs, damage,
                                                                             tmp_path):
    home = crackops_dirs["home"]
    reg = Registry()
    reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    reg.close()
    for p in _registry_files(home)[1:]:
        p.unlink(missing_ok=True)
    db = home / "registry.db"
    damage(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    job = three_runs[0].job_id
    from crackops.data.synth import synthesize

    data = tmp_path / "data"
    synthesize(data, n_per_class=12, size=32, seed=1, workers=1)
    out_before = sorted(p.name for p in crackops_dirs["out"].iterdir())
    commands = [("status",), ("status", job), ("collect", job), ("compare",), ("cancel", job), ("wait", job),
                ("logs", job), ("rerun", job), ("import", str(crackops_dirs["out"])),
                ("submit", "--data", str(data), "--epochs", "1"),
                ("sweep", "--data", str(data), "--grid", "dropout=0.2,0.3", "--epochs", "1")]
    for args in commands:
        res = invoke(*args)
        lines = [l for l in res.output.splitlines() if l.strip()]
        assert res.exit_code == EXIT_STATE, (args, text(res))
        assert len(lines) == 2 and lines[0].startswith("error: the registry") and str(db) in lines[0], (args, res.output)
        assert "crackops import" in lines[1], res.output
        assert "Traceback" not in res.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in crackops_dirs["out"].iterdir()) == out_before   # nothing was submitted
    assert not (home / "registry.db-wal").exists() and not (home / "registry.db-shm").exists()

    # the way back: move it away, import
    db.rename(home / "registry.db.damaged")
    res = invoke("import", str(crackops_dirs["out"]))
    assert res.exit_code == 0 and "3 runs imported" in res.output, text(res)
