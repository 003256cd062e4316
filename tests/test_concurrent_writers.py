"""Concurrent writers: 8 processes submitting and 8 running ``status`` / ``compare`` at once on one
registry (created by whichever comes first): no lost or duplicated row, and nobody is shown
"database is locked" or a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crackops.registry import Registry

TESTS = str(Path(__file__).resolve().parent)
SRC = str(Path(__file__).resolve().parents[1] / "src")
SUBMITS_EACH = 4

# every process imports, says it is ready, then waits for "go": the 16 start together, with no
# fixed head start to guess on a loaded machine
BARRIER = """
import os, sys, time
from pathlib import Path
sync = Path(sys.argv[1])
(sync / f"ready-{os.getpid()}").touch()
while not (sync / "go").exists():
    time.sleep(0.01)
"""

SUBMITTER = f"""
import json, sys, time
import jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.errors import CrackopsError
{BARRIER}
for i in range({SUBMITS_EACH}):
    try:
        run = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"),
                         backend="local", fn=jobs.succeed, check_data=False, name=f"w{{sys.argv[2]}}-{{i}}")
    except CrackopsError as e:
        print("ERROR", e, flush=True)
        continue
    print("JOB", run.job_id, flush=True)
"""

READER = """
import sys, time
from typer.testing import CliRunner
from crackops.cli import app
""" + BARRIER + """
runner = CliRunner()
n = 0
while not (sync / "stop").exists() or n < 2:   # until the runs are submitted and have all ended
    cmd = ["status", "--json"] if n % 2 == 0 else ["compare", "--json"]
    res = runner.invoke(app, cmd)
    out = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback
        out += "".join(traceback.format_exception(res.exception))
    print("RESULT", " ".join(cmd), res.exit_code, repr(out[-400:]) if res.exit_code else "", flush=True)
    n += 1
"""


@pytest.mark.procs
def test_eight_submitters_and_eight_readers_lose_nothing(tmp_path, crackops_dirs):
    """The readers read from the moment the submitters start until every submitted run has ended,
    so they overlap the submissions and the state changes of the 32 runs finishing."""
    from crackops import api

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, SRC, os.environ.get("PYTHONPATH", "")])}
    sync = tmp_path / "sync"
    sync.mkdir()
    # stdout/stderr to files: a pipe nobody reads while the test waits could fill and block a process
    logs = [(open(tmp_path / f"p{i}.out", "w+"), open(tmp_path / f"p{i}.err", "w+")) for i in range(16)]
    subs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(sync), str(i)], env=env,
                             stdout=logs[i][0], stderr=logs[i][1], text=True) for i in range(8)]
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(sync)], env=env,
                                stdout=logs[8 + i][0], stderr=logs[8 + i][1], text=True) for i in range(8)]
    procs = subs + readers
    try:
        deadline = time.time() + 120
        while len(list(sync.glob("ready-*"))) < 16:
            assert time.time() < deadline and all(p.poll() is None for p in procs), "a process did not get ready"
            time.sleep(0.05)
        (sync / "go").touch()
        for p in subs:
            p.wait(timeout=120)
        reg = Registry()
        deadline = time.time() + 180   # 32 job processes on a loaded 2-core machine: an upper bound only
        while True:   # the parent is a ninth reader; the eight keep going until the runs have ended
            ended = api.status(registry=reg).runs
            states = [r.state for r in ended]
            if (len(states) == 8 * SUBMITS_EACH and all(s == "COMPLETED" for s in states)) or time.time() > deadline:
                break
            time.sleep(0.5)
        (sync / "stop").touch()
        for p in readers:
            p.wait(timeout=120)
    finally:
        (sync / "go").touch()
        (sync / "stop").touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    outs = []
    for out, err in logs:
        out.seek(0)
        err.seek(0)
        outs.append((out.read(), err.read()))
        out.close()
        err.close()
    submitted: list[str] = []
    for p, (out, err) in zip(subs, outs[:8]):
        assert p.returncode == 0, err[-3000:]
        assert "ERROR" not in out and "locked" not in out + err and "Traceback" not in err, out + err[-3000:]
        submitted += [l.split()[1] for l in out.splitlines() if l.startswith("JOB ")]
    results = []
    for p, (out, err) in zip(readers, outs[8:]):
        assert p.returncode == 0, err[-3000:]
        assert "locked" not in out + err and "Traceback" not in out + err, (out + err)[-3000:]
        results += [l for l in out.splitlines() if l.startswith("RESULT ")]
    bad = [r for r in results if r.split()[3] != "0"]
    assert not bad, bad[:5]
    assert len(results) >= 16

    assert len(submitted) == 8 * SUBMITS_EACH and len(set(submitted)) == len(submitted)
    reg = Registry()
    rows = reg._conn.execute("SELECT job_id, name FROM runs").fetchall()
    assert len(rows) == 8 * SUBMITS_EACH                        # none lost, none twice
    assert sorted(r[0] for r in rows) == sorted(submitted)
    assert sorted(r[1] for r in rows) == sorted(f"w{i}-{j}" for i in range(8) for j in range(SUBMITS_EACH))
    assert reg.applied_migrations() == [name for name, _ in __import__("crackops.registry").registry.MIGRATIONS]
    # and the jobs themselves ran: every run ended COMPLETED
    assert states.count("COMPLETED") == 8 * SUBMITS_EACH, [(r.job_id, r.state, r.reason) for r in ended
                                                           if r.state != "COMPLETED"]
    assert [r.state for r in api.status(registry=reg).runs].count("COMPLETED") == 8 * SUBMITS_EACH
    json.dumps(states)


def test_a_write_outlasting_the_busy_timeout_waits_instead_of_failing(tmp_path, monkeypatch):
    """SQLite gives up on a lock after its busy timeout and says "database is locked"; the
    registry tries BEGIN IMMEDIATE again instead (a loaded login node, a long writer)."""
    import threading

    from crackops import registry as registry_mod
    from helpers import make_run

    monkeypatch.setattr(registry_mod, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "r.db"
    reg = Registry(path)
    locked = threading.Event()

    def writer():                                     # another process writing for a while
        import sqlite3

        c = sqlite3.connect(path, isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(1.0)
        c.execute("COMMIT")
        c.close()

    t = threading.Thread(target=writer)
    t.start()
    locked.wait(10)
    t0 = time.monotonic()
    reg.add(make_run("301", state="PENDING"))
    t.join()
    assert time.monotonic() - t0 >= 0.8
    assert [r.job_id for r in reg.list()] == ["301"]


def test_two_local_submits_given_the_same_new_id_both_get_a_run(monkeypatch):
    from crackops import api
    from crackops.backends import local
    from crackops.config import Resources, TrainConfig

    sys.path.insert(0, TESTS)
    import jobs

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, SRC, os.environ.get("PYTHONPATH", "")]))
    ids = iter(["L000000-000000-abcd", "L000000-000000-abcd", "L000000-000000-beef"])
    monkeypatch.setattr(local, "new_job_id", lambda: next(ids))
    a = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"), backend="local",
                   fn=jobs.succeed, check_data=False)
    b = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"), backend="local",
                   fn=jobs.succeed, check_data=False)
    assert (a.job_id, b.job_id) == ("L000000-000000-abcd", "L000000-000000-beef")
    assert len(Registry().list()) == 2
