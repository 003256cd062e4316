"""A Slurm job id used again (controller reset): both runs are kept, each with its own out dir;
``<id>`` is the newest, ``<id>~1`` the one before (``~2`` before that)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from typer.testing import CliRunner

from helpers import FakeBackend
from crackops import api
from crackops.backends.base import RefreshResult, StateUpdate, Submitted
from crackops.cli import app
from crackops.config import Resources, TrainConfig
from crackops.errors import NotFoundError, UsageError
from crackops.registry import MIGRATIONS, Registry, Run

runner = CliRunner()


def make_run(job_id, submitted_at, **kw):
    return Run(job_id=job_id, backend="local", state=kw.pop("state", "COMPLETED"), config={}, resources={},
               submitted_at=submitted_at, out_dir=f"/x/{job_id}-{submitted_at}", **kw)


def test_registry_keeps_both_runs_newest_wins():
    reg = Registry()
    reg.add(make_run("1234", 1.0, name="old"))
    reg.add(make_run("1234", 2.0, name="new"))       # was sqlite3.IntegrityError
    reg.add(make_run("99", 1.5))
    assert reg.get("1234").name == "new" and reg.get("1234~0").name == "new"
    assert reg.get("1234~1").name == "old"
    with pytest.raises(NotFoundError, match="1234~2"):
        reg.get("1234~2")
    assert [(r.ref, r.name) for r in reg.list()] == [("1234~1", "old"), ("99", None), ("1234", "new")]
    assert [r.name for r in reg.list(job_ids=["1234"])] == ["new"]
    assert [r.name for r in reg.list(job_ids=["1234~1", "1234"])] == ["old", "new"]
    reg.update("1234~1", state="FAILED")
    assert reg.get("1234~1").state == "FAILED" and reg.get("1234").state == "COMPLETED"
    for bad in ("1234~", "1234~x", "~1", "1234~1~1", "../1234~1"):
        with pytest.raises(UsageError):
            reg.get(bad)


def test_old_registry_is_migrated_without_losing_a_row(tmp_path, monkeypatch):
    import crackops.registry as registry

    path = tmp_path / "old.db"
    monkeypatch.setattr(registry, "MIGRATIONS", MIGRATIONS[:2])       # a registry from before
    Registry(path).close()                                             # schema 001 + 002 only
    con = sqlite3.connect(path)
    with con:   # rows as the crackops of that schema wrote them
        for jid, t, metrics, extra in (("5", 1.0, '{"test_accuracy": 0.9}', '{"pid": 1}'), ("6", 2.0, None, None)):
            con.execute("INSERT INTO runs (job_id, backend, state, config, resources, submitted_at, out_dir, "
                        "metrics, extra) VALUES (?, 'local', 'COMPLETED', '{}', '{}', ?, ?, ?, ?)",
                        (jid, t, f"/x/{jid}", metrics, extra))
    con.close()
    monkeypatch.setattr(registry, "MIGRATIONS", MIGRATIONS)
    reg = Registry(path)
    assert reg.applied_migrations()[-1] == MIGRATIONS[-1][0] and len(MIGRATIONS) > 2
    assert [(r.job_id, r.metrics, r.extra) for r in reg.list()] == [("5", {"test_accuracy": 0.9}, {"pid": 1}),
                                                                    ("6", None, {})]
    reg.add(make_run("5", 3.0))
    assert reg.get("5").submitted_at == 3.0 and reg.get("5~1").metrics == {"test_accuracy": 0.9}


class SameIdBackend(FakeBackend):
    """A scheduler that hands out job id 77 every time, as one does after a reset."""
    name = "fake"

    def submit(self, sub):
        return Submitted(job_id="77", log_out=sub.logs_dir / "cnn_crack_77.out",
                         log_err=sub.logs_dir / "cnn_crack_77.err", extra={})

    def refresh(self, runs):
        return RefreshResult(updates={r.job_id: StateUpdate("RUNNING") for r in runs}, source="fake")


def fake_job(config):  # never called: the fake backend runs nothing
    raise AssertionError


def test_submit_with_a_reused_id_records_both_and_never_shares_the_out_dir(tmp_path, monkeypatch, crackops_dirs):
    import crackops.api as api_mod
    from crackops.job import _run

    from crackops.backends import get_backend as real
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: SameIdBackend() if name == "fake" else real(name))
    cfg = TrainConfig(data_dir="unused")
    first = api.submit(cfg, Resources(), backend="fake", fn=fake_job, check_data=False, name="first")
    # the first job runs (it takes its id from Slurm) and leaves its artifacts
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    job_cfg = TrainConfig.from_dict({**first.config, "job_id": None})
    _run(job_cfg, lambda c, out: (out / "best.h5").write_text("first run's model"))
    assert (tmp_path / "out" / "77" / "best.h5").read_text() == "first run's model"
    assert first.out_dir == str(crackops_dirs["out"] / "77")

    second = api.submit(TrainConfig(data_dir="unused"), Resources(), backend="fake", fn=fake_job,
                        check_data=False, name="second")                    # was sqlite3.IntegrityError
    assert second.job_id == "77" and second.out_dir != first.out_dir
    job_cfg2 = TrainConfig.from_dict({**second.config, "job_id": None})
    _run(job_cfg2, lambda c, out: (out / "best.h5").write_text("second run's model"))
    assert (tmp_path / "out" / "77" / "best.h5").read_text() == "first run's model"       # untouched
    from pathlib import Path

    assert (Path(second.out_dir) / "best.h5").read_text() == "second run's model"
    # a requeued second job (same submission) goes back to its own folder
    _run(job_cfg2, lambda c, out: (out / "again.txt").write_text("requeued"))
    assert (Path(second.out_dir) / "again.txt").exists()

    runs = Registry().list()
    assert [(r.ref, r.name) for r in runs] == [("77~1", "first"), ("77", "second")]
    res = runner.invoke(app, ["status", "--json", "77~1"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["job_id"] == "77" and row["name"] == "first" and row["out_dir"] == first.out_dir
    res = runner.invoke(app, ["status"])
    assert "77~1" in res.stdout and "second" in res.stdout, res.output


def test_a_registry_failure_after_sbatch_says_the_job_runs(monkeypatch, crackops_dirs):
    import crackops.api as api_mod

    from crackops.backends import get_backend as real
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: SameIdBackend() if name == "fake" else real(name))

    class Broken(Registry):
        def add(self, run):
            raise sqlite3.OperationalError("disk I/O error")

    from crackops.errors import BackendError

    with pytest.raises(BackendError) as e:
        api.submit(TrainConfig(data_dir="unused"), Resources(), backend="fake", fn=fake_job, check_data=False,
                   registry=Broken())
    assert "77" in e.value.message and "submitted" in e.value.message and "disk I/O error" in e.value.message


class CountingSameId(SameIdBackend):
    calls: list[list[str]] = []

    def refresh(self, runs):
        ids = [r.job_id for r in runs]
        assert len(ids) == len(set(ids)), ids        # backends answer by job id: never two alike
        CountingSameId.calls.append(ids)
        return super().refresh(runs)


def test_two_live_runs_with_one_id_are_both_refreshed(tmp_path, monkeypatch, crackops_dirs):
    import crackops.api as api_mod

    from crackops.backends import get_backend as real
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: CountingSameId() if name == "fake" else real(name))
    reg = Registry()
    for t in (1.0, 2.0):
        reg.add(Run(job_id="77", backend="fake", state="PENDING", config={}, resources={}, submitted_at=t,
                    out_dir=str(tmp_path / f"o{t}")))
    CountingSameId.calls.clear()
    rep = api.status()
    assert [r.state for r in rep.runs] == ["RUNNING", "RUNNING"] and CountingSameId.calls == [["77"], ["77"]]
    assert {r.state for r in Registry().list()} == {"RUNNING"}


def test_status_follows_the_out_dir_the_job_claimed(tmp_path, monkeypatch, crackops_dirs):
    """Recorded out/<id> at submit, but the job found it taken and claimed out/<id>-<hex>."""
    import crackops.api as api_mod
    from crackops.paths import claim_out_dir, out_dir_candidates

    from crackops.backends import get_backend as real
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: SameIdBackend() if name == "fake" else real(name))
    out = crackops_dirs["out"]
    sid = "0123456789abcdef"
    reg = Registry()
    reg.add(Run(job_id="77", backend="fake", state="PENDING", config={"out_root": str(out), "submission_id": sid},
                resources={}, submitted_at=1.0, out_dir=str(out / "77")))
    (out / "77").mkdir(parents=True)                      # an earlier run's, appearing after submit
    (out / "77" / "best.h5").write_text("earlier")
    claimed = claim_out_dir(out, "77", sid)
    assert claimed == out_dir_candidates(out, "77", sid)[1]
    assert api.status().runs[0].out_dir == str(claimed) == Registry().get("77").out_dir
    assert (out / "77" / "best.h5").read_text() == "earlier"
