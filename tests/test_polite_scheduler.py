"""Polite to the scheduler: all crackops processes of a user make at most one sacct call per
``CRACKOPS_SACCT_INTERVAL``, runs refreshed within it are served from the registry, and sacct is
backed off while it fails or is slow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

import slurm_jobs
from crackops import api
from crackops.backends.base import RefreshResult, StateUpdate
from crackops.backends.slurm import SlurmBackend
from crackops.config import Resources, TrainConfig
from crackops.errors import UsageError
from crackops.registry import Registry
from crackops.slurm import throttle as th
from helpers import make_run

cloudpickle.register_pickle_by_value(slurm_jobs)
REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------- the throttle itself

def test_one_claim_per_interval_shared_through_the_registry(tmp_path):
    clock = Clock()
    a = th.Throttle(Registry(tmp_path / "r.db"), interval=5, clock=clock)
    b = th.Throttle(Registry(tmp_path / "r.db"), interval=5, clock=clock)   # another process
    g = a.claim()
    assert isinstance(g, th.Grant)
    assert isinstance(b.claim(), th.Denied)              # in flight: nobody else calls
    clock.t += 1
    a.done(g, ok=True)
    clock.t += 3                                          # 4 s after the call started
    assert isinstance(b.claim(), th.Denied)
    clock.t += 1.01                                       # 5 s after: anyone may call again
    g2 = b.claim()
    assert isinstance(g2, th.Grant) and isinstance(a.claim(), th.Denied)


def test_failures_and_slow_calls_back_off_and_a_good_call_ends_it(tmp_path):
    clock = Clock()
    t = th.Throttle(Registry(tmp_path / "r.db"), interval=5, clock=clock)
    waits = []
    for _ in range(3):
        g = t.claim()
        assert isinstance(g, th.Grant)
        clock.t += 0.5
        nxt = t.done(g, ok=False, error="slurmdbd down")
        waits.append(nxt - clock.t)
        clock.t += 1
        d = t.claim()
        assert isinstance(d, th.Denied) and d.failures == len(waits)
        assert "slurmdbd down" in d.warning(clock.t)
        clock.t = nxt
    assert waits == [10, 20, 40]
    g = t.claim()
    clock.t += th.SLOW_CALL_S + 1                          # answered, but slowly: still backing off
    assert t.done(g, ok=True) - clock.t == 80
    clock.t += 80
    g = t.claim()
    clock.t += 0.2
    assert t.done(g, ok=True) == pytest.approx(g.started_at + 5)   # fast and good: the plain interval
    assert th.backoff_s(5, 30) == th.MAX_BACKOFF_S


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "2.5")
    assert th.interval_s() == 2.5
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "soon")
    with pytest.raises(UsageError, match="CRACKOPS_SACCT_INTERVAL"):
        th.interval_s()
    monkeypatch.delenv("CRACKOPS_SACCT_INTERVAL")
    assert th.interval_s() == th.DEFAULT_INTERVAL_S


# ---------------------------------------------------------------- through api.status (no cluster)

def test_status_serves_fresh_runs_from_the_registry(monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "1")
    asked: list[list[str]] = []

    def fake_refresh(self, runs):
        asked.append([r.job_id for r in runs])
        return RefreshResult(updates={r.job_id: StateUpdate(state="RUNNING") for r in runs}, source="sacct",
                             calls=1)

    monkeypatch.setattr(SlurmBackend, "refresh", fake_refresh)
    reg = Registry()
    now = time.time()
    for j in ("101", "102"):
        reg.add(make_run(j, state="PENDING", backend="slurm", submitted_at=now))
    rep = api.status(registry=reg)
    assert rep.calls == 1 and [r.state for r in rep.runs] == ["RUNNING", "RUNNING"]
    other = Registry()                                      # a second process, same registry file
    for _ in range(3):
        rep2 = api.status(["101"], registry=other)
        assert rep2.calls == 0 and rep2.runs[0].state == "RUNNING" and "registry" in rep2.sources["slurm"]
    assert len(asked) == 1
    time.sleep(1.1)
    assert api.status(["101"], registry=other).calls == 1 and len(asked) == 2


def test_failing_sacct_is_backed_off(monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0.2")
    asked = []

    def failing(self, runs):
        asked.append(1)
        return RefreshResult(updates={}, source="squeue+artifacts", warning="sacct failed: boom", calls=2, ok=False)

    monkeypatch.setattr(SlurmBackend, "refresh", failing)
    reg = Registry()
    reg.add(make_run("201", state="PENDING", backend="slurm", submitted_at=time.time()))
    assert api.status(registry=reg).calls == 2
    time.sleep(0.5)                                           # past the interval, inside the backoff (1 s)
    rep = api.status(registry=reg)
    assert rep.calls == 0 and len(asked) == 1
    assert any("boom" in w and "asks again" in w for w in rep.warnings), rep.warnings


# ---------------------------------------------------------------- 8 waits at once on a real Slurm

def _sacct_shim(tmp_path: Path) -> tuple[Path, Path]:
    real = shutil.which("sacct")
    shim, log = tmp_path / "shim", tmp_path / "sacct-calls.log"
    shim.mkdir()
    (shim / "sacct").write_text(f'#!/bin/sh\necho "$(date +%s.%N)" >> "{log}"\nexec "{real}" "$@"\n')
    (shim / "sacct").chmod(0o755)
    return shim, log


@pytest.mark.slurm
def test_eight_waits_make_no_more_sacct_calls_than_one(slurm_cluster, tmp_path, monkeypatch):
    interval = 5.0
    monkeypatch.setenv("CRACKOPS_TEST_SLEEP", "45")          # the job's own sleep (inherited by sbatch)
    run = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="5"), backend="slurm",
                     fn=slurm_jobs.sleepy, check_data=False)
    shim, log = _sacct_shim(tmp_path)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "CRACKOPS_SACCT_INTERVAL": str(interval),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, "-m", "crackops", "wait", run.job_id, "--json", "--timeout", "80"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    try:
        results = [p.communicate(timeout=85) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        api.cancel([run.job_id])
    elapsed = time.time() - t0
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, (p.returncode, err[-2000:])
        assert "Traceback" not in err and "database is locked" not in err
    calls = log.read_text().split() if log.exists() else []
    budget = elapsed / interval + 2        # what one process alone is allowed: one call per interval
    print(f"\n8 waits for {elapsed:.0f} s: {len(calls)} sacct calls (budget {budget:.0f}, interval {interval:g} s)")
    assert 1 <= len(calls) <= budget, (len(calls), elapsed)
    stamps = sorted(float(c) for c in calls)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g >= interval - 0.5 for g in gaps), gaps   # never two calls inside one interval
    assert Registry().get(run.job_id).state == "COMPLETED"
