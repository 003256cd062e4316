import multiprocessing as mp
import sqlite3

import pytest

from crackops.errors import NotFoundError, UsageError
from crackops.registry import MIGRATIONS, Registry
from helpers import make_run


def test_migrations_applied_in_order_and_once(tmp_path):
    path = tmp_path / "r.db"
    Registry(path).close()
    reg = Registry(path)  # second open applies nothing new
    assert reg.applied_migrations() == [name for name, _ in MIGRATIONS]
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(runs)")}
    assert {"job_id", "state", "metrics", "accounting", "extra"} <= cols


def test_migrations_run_in_list_order_not_name_order(tmp_path, monkeypatch):
    """A migration appended later runs last even if its name sorts first, and is read back in the
    order it ran; an older registry gets only what it lacks."""
    import crackops.registry as registry

    path = tmp_path / "r.db"
    Registry(path).close()
    extra = [("000_added_later", "CREATE TABLE later (x INTEGER)"),
             ("0000_needs_later", "INSERT INTO later VALUES (1)")]   # fails unless run after the one above
    monkeypatch.setattr(registry, "MIGRATIONS", MIGRATIONS + extra)
    reg = Registry(path)
    assert reg.applied_migrations() == [name for name, _ in MIGRATIONS + extra]
    assert [tuple(r) for r in reg._conn.execute("SELECT x FROM later")] == [(1,)]


def test_state_dir_moves_with_env(crackops_dirs):
    reg = Registry()
    assert reg.path == crackops_dirs["home"] / "registry.db"


def test_add_get_update_list():
    reg = Registry()
    reg.add(make_run("a1", name="first", submitted_at=1.0, state="PENDING"))
    reg.add(make_run("b2", submitted_at=2.0, state="PENDING"))
    reg.update("a1", state="COMPLETED", metrics={"test_accuracy": 0.99}, ended_at=5.0)
    a = reg.get("a1")
    assert a.state == "COMPLETED" and a.metrics == {"test_accuracy": 0.99} and a.terminal
    assert [r.job_id for r in reg.list()] == ["a1", "b2"]
    assert [r.job_id for r in reg.list(states=["PENDING"])] == ["b2"]
    assert [r.job_id for r in reg.list(limit=1)] == ["b2"]
    with pytest.raises(NotFoundError, match="zz9"):
        reg.list(job_ids=["a1", "zz9"])
    with pytest.raises(NotFoundError):
        reg.get("nope")
    with pytest.raises(NotFoundError):
        reg.update("nope", state="FAILED")
    again = reg.add(make_run("a1", submitted_at=9.0))      # a job id handed out again: a second run
    assert again.run_key != a.run_key and reg.get("a1").submitted_at == 9.0 and reg.get("a1~1").state == "COMPLETED"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "", "a b", "x" * 100, "-rf"])
def test_job_ids_that_could_escape_are_refused(bad):
    with pytest.raises(UsageError):
        Registry().get(bad)


def _writer(args):
    home, k = args
    import os

    os.environ["CRACKOPS_HOME"] = home
    reg = Registry()
    for i in range(40):
        reg.add(make_run(f"p{k}-{i}", state="PENDING"))
        reg.update(f"p{k}-{i}", state="RUNNING")
    return k


def test_several_processes_at_once(crackops_dirs):
    Registry()  # create + migrate first, like a real first command would
    with mp.get_context("spawn").Pool(4) as pool:
        assert sorted(pool.map(_writer, [(str(crackops_dirs["home"]), k) for k in range(4)])) == [0, 1, 2, 3]
    runs = Registry().list()
    assert len(runs) == 160 and {r.state for r in runs} == {"RUNNING"}


def test_concurrent_first_open_migrates_once(crackops_dirs):
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(str(crackops_dirs["home"] / "fresh"), k) for k in range(4)])
    import os

    os.environ["CRACKOPS_HOME"] = str(crackops_dirs["home"] / "fresh")
    assert len(Registry().list()) == 160
