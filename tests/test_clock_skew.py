"""Minutes of clock skew between crackops, the registry's other users and the cluster change
nothing: sacct's window is a duration before sacct's own clock, a job's row is matched to its run
by the run's own submission (its submitit folder in sacct's SubmitLine), and a deadline written
into the shared registry by a clock ahead of the reader's holds the reader only as long as it was
meant to. The skew is injected in the crackops process (its ``time.time``), not in the cluster."""

from __future__ import annotations

import time

import cloudpickle

import slurm_jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.registry import Registry
from crackops.slurm import throttle as th

cloudpickle.register_pickle_by_value(slurm_jobs)

SKEW_S = 1800.0   # the crackops process is 30 minutes fast


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_backoff_written_by_a_fast_clock_holds_others_only_as_long_as_meant(tmp_path):
    true = Clock(100_000.0)
    fast = Clock(true.t + SKEW_S)
    a = th.Throttle(Registry(tmp_path / "r.db"), interval=5, clock=fast)      # the skewed host
    b = th.Throttle(Registry(tmp_path / "r.db"), interval=5, clock=true)      # every other process
    g = a.claim()
    fast.t += 1
    wait = a.done(g, ok=False, error="sacct: error: Connection refused") - fast.t   # a failure: 10 s back-off
    assert 0 < wait <= th.MAX_BACKOFF_S
    denied = b.claim()
    assert isinstance(denied, th.Denied)
    assert denied.next_at - true.t <= wait + 0.01, "the reader would wait out the writer's clock skew"
    assert "asks again in 10 s" in denied.warning(true.t)
    true.t += wait + 0.01
    assert isinstance(b.claim(), th.Grant)


def test_a_call_in_flight_on_a_fast_clock_holds_others_for_its_lease_only(tmp_path):
    true = Clock(100_000.0)
    fast = Clock(true.t + SKEW_S)
    a = th.Throttle(Registry(tmp_path / "r.db"), interval=5, lease_s=60, clock=fast)
    b = th.Throttle(Registry(tmp_path / "r.db"), interval=5, lease_s=60, clock=true)
    assert isinstance(a.claim(), th.Grant)          # and dies before done()
    assert isinstance(b.claim(), th.Denied)
    true.t += 65 + 0.01
    assert isinstance(b.claim(), th.Grant)


def test_a_fast_clock_sees_its_slurm_jobs_true_states(slurm_cluster, monkeypatch):
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + SKEW_S)
    res = Resources(cpus=1, mem="256M", time="5")
    ok = api.submit(TrainConfig(data_dir="unused"), res, backend="slurm", fn=slurm_jobs.hello, check_data=False)
    bad = api.submit(TrainConfig(data_dir="unused"), res, backend="slurm", fn=slurm_jobs.boom, check_data=False)
    reports = list(api.wait([ok.job_id, bad.job_id], poll_s=1.0, timeout_s=120))
    warnings = [w for rep in reports for w in rep.warnings]
    assert not any("start time after end time" in w or "asks again" in w for w in warnings), warnings
    runs = {r.job_id: r for r in reports[-1].runs}
    assert runs[ok.job_id].state == "COMPLETED" and runs[bad.job_id].state == "FAILED"
    assert reports[-1].sources["slurm"] == "sacct"
    assert runs[ok.job_id].accounting, "the efficiency from sacct was never recorded"
    # the next process, with a true clock, is not held off by the skewed one's deadlines
    monkeypatch.setattr(time, "time", real)
    row = Registry().scheduler_call("sacct")
    assert row["next_at"] - real() < 400, row
