"""OUT_OF_MEMORY for real on the local Slurm (scripts/local-slurm.sh start: cgroup v1 memory
limits), repaired by ``crackops rerun --failed``, by ``--retries`` and by ``rerun --failed --sweep``.

The job (tests/slurm_jobs.py ``hog``) holds ``HOG_MB`` of written memory on top of Python's own
(about 40 MB measured): more than the 512M it asks for, less than the 768M that 1.5x gives, so
the kernel kills the first attempt and the rerun completes. Where the cluster does not enforce
memory, these tests skip and say why (and fail under ``CRACKOPS_REQUIRE_SLURM=1``: CI must show it).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import cloudpickle
import pytest

import slurm_jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.registry import Registry, Run
from helpers import invoke, text

cloudpickle.register_pickle_by_value(slurm_jobs)   # tests/ is not importable inside a job

pytestmark = pytest.mark.slurm

HOG_MB = 560
ASK = Resources(cpus=1, mem="512M", time="5")


def _memory_enforcement_problem() -> str | None:
    """Why this cluster does not kill a job over its --mem, or None when it does (task/cgroup
    with ConstrainRAMSpace=yes)."""
    try:
        conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"scontrol show config: {e}"
    task = next((l.split("=", 1)[1].strip() for l in conf.splitlines() if l.startswith("TaskPlugin ")), "")
    if "cgroup" not in task:
        return f"memory is not enforced on this cluster (TaskPlugin={task or '?'}, no cgroups)"
    slurm_conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    cgroup_conf = Path(slurm_conf).parent / "cgroup.conf"
    try:
        lines = cgroup_conf.read_text().splitlines()
    except OSError:
        return f"cannot read {cgroup_conf} to see whether memory is constrained"
    if not any(l.replace(" ", "").lower() == "constrainramspace=yes" for l in lines):
        return f"memory is not enforced on this cluster ({cgroup_conf} has no ConstrainRAMSpace=yes)"
    return None


@pytest.fixture(scope="module")
def memory_enforced(slurm_cluster):
    problem = _memory_enforcement_problem()
    if problem:
        if os.environ.get("CRACKOPS_REQUIRE_SLURM") == "1":
            pytest.fail(f"CRACKOPS_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def hog_size(monkeypatch):
    monkeypatch.setenv("CRACKOPS_TEST_HOG_MB", str(HOG_MB))   # sbatch passes the environment on


def submit_hog(**kw) -> Run:
    return api.submit(TrainConfig(data_dir="unused"), ASK, backend="slurm", fn=slurm_jobs.hog, check_data=False, **kw)


def wait_last(job_id: str, timeout: float = 300):
    reports = list(api.wait([job_id], poll_s=1, timeout_s=timeout))
    return reports[-1].runs[0], [p for rep in reports for p in rep.retried]


def test_out_of_memory_is_rerun_by_rerun_failed_with_1_5x_and_completes(memory_enforced):
    run = submit_hog()
    first, _ = wait_last(run.job_id)
    assert first.state == "OUT_OF_MEMORY", (first.state, first.reason)
    assert "memory" in first.reason

    res = invoke("rerun", "--failed", "--json")
    assert res.exit_code == 0, text(res)
    (p,) = json.loads(res.stdout)
    assert p["job_id"] == run.job_id and p["action"] == "rerun" and p["resources"]["mem"] == "768M"
    assert p["why"].startswith("memory 512M -> 768M")
    new, _ = wait_last(p["new_job_id"])
    assert new.state == "COMPLETED", (new.state, new.reason)
    assert new.continues == run.job_id and new.resources["mem"] == "768M" and new.extra["fn"] == "slurm_jobs.hog"
    assert (Path(new.out_dir) / "held.txt").read_text() == str(HOG_MB)
    rss = (new.accounting or {}).get("max_rss_mb")
    print(f"OOM at 512M ({first.reason}); rerun at 768M COMPLETED, MaxRSS {rss} MB")
    assert rss is None or rss > 512          # it really needed more than the first attempt got
    assert invoke("rerun", "--failed", "--json").stdout.strip() == "[]"   # repaired: nothing left


def test_retries_rerun_the_out_of_memory_run_by_themselves(memory_enforced):
    run = submit_hog(retries=1)
    last, retried = wait_last(run.job_id)           # wait follows the chain to the last attempt
    assert api.get_run(run.job_id).state == "OUT_OF_MEMORY"
    assert last.state == "COMPLETED", (last.state, last.reason)
    assert last.continues == run.job_id and last.resources["mem"] == "768M" and last.retries == 0
    assert [(p.job_id, p.new_job_id) for p in retried] == [(run.job_id, last.job_id)]


def test_rerun_failed_sweep_repairs_the_sweep_on_slurm(memory_enforced, tmp_path):
    """Two seeds per memory value: each value is a job array of two tasks (ids ``<array>_<i>``)."""
    outside = Run(job_id="L000000-000000-beef", backend="local", state="FAILED", config={}, resources=ASK.to_dict(),
                  submitted_at=time.time(), out_dir=str(tmp_path / "nowhere"), name="outside")
    Registry().add(outside)                          # a failed run of no sweep: --sweep leaves it alone
    h = api.sweep(TrainConfig(data_dir="unused"), {"mem": ["512M", "1G"]}, seeds=2, resources=ASK, backend="slurm",
                  name="mem", fn=slurm_jobs.hog, check_data=False)
    assert all("_" in r.job_id for r in h.runs) and len(h.sweep.extra["arrays"]) == 2
    st = h.wait(poll_s=1, timeout_s=300)
    assert st.counts["done"] == 2 and st.counts["failed"] == 2, [(r.job_id, r.state, r.reason) for r in st.runs]
    ooms = sorted(r.job_id for r in st.runs if r.state != "COMPLETED")
    assert all(r.state == "OUT_OF_MEMORY" and r.resources["mem"] == "512M" for r in st.runs if r.job_id in ooms)

    res = invoke("rerun", "--failed", "--sweep", "mem", "--json")
    assert res.exit_code == 0, text(res)
    plans = json.loads(res.stdout)
    assert sorted(p["job_id"] for p in plans) == ooms and all(p["resources"]["mem"] == "768M" for p in plans)
    st = h.wait(poll_s=1, timeout_s=300)
    assert st.counts == {"pending": 0, "running": 0, "done": 4, "failed": 0, "cancelled": 0} and st.reruns == 2, \
        [(r.job_id, r.state, r.reason) for r in st.runs]
    assert sorted(r.continues for r in st.runs if r.continues) == ooms
    assert api.get_run(outside.job_id).state == "FAILED"
    assert [r for r in Registry().list() if r.continues == outside.job_id] == []


def test_rerun_caps_the_memory_at_the_partition_limit_read_from_the_cluster(slurm_cluster, tmp_path):
    """A partition with MaxMemPerNode=640 (made for the test, removed after): the 1.5x of 512M is
    capped at 640M and the plan says why; --mem above it is refused. The run is a recorded
    OUT_OF_MEMORY run of that partition (no job needed: only the limit is read from the cluster)."""
    part = "crackops_cap_test"
    made = subprocess.run(["scontrol", "create", f"PartitionName={part}", "Nodes=ALL", "MaxMemPerNode=640",
                           "State=UP"], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"cannot create a test partition here: {made.stderr.strip()}")
    try:
        run = Run(job_id="9999991", backend="slurm", state="OUT_OF_MEMORY", config={},
                  resources={**ASK.to_dict(), "partition": part}, submitted_at=time.time() - 60,
                  out_dir=str(tmp_path / "9999991"))
        Registry().add(run)
        (p,) = api.rerun([run.job_id], dry_run=True)
        assert p.action == "rerun" and p.resources["mem"] == "640M"
        assert p.why.startswith(f"memory 512M -> 640M (x1.5 = 768M, capped by partition {part}: MaxMemPerNode 640M)")
        (p,) = api.rerun([run.job_id], dry_run=True, mem="700M")
        assert p.action == "refused" and p.why == f"--mem 700M is more than the limit (partition {part}: MaxMemPerNode 640M)"
        res = invoke("rerun", run.job_id, "--mem", "1G")
        assert res.exit_code == 4 and "is more than the limit" in text(res)
    finally:
        subprocess.run(["scontrol", "delete", f"PartitionName={part}"], capture_output=True, timeout=30)


def test_retries_rerun_a_timed_out_run_with_the_same_limit(slurm_cluster):
    """A real TIMEOUT (1-minute limit, checked by Slurm every 30 s: about 90 s), no requeue: the
    retry keeps the limit and continues the run."""
    run = api.submit(TrainConfig(data_dir="unused", max_attempts=1), Resources(cpus=1, mem="512M", time="1"),
                     backend="slurm", fn=slurm_jobs.slow_once, check_data=False, retries=1)
    last, retried = wait_last(run.job_id, timeout=420)
    first = api.get_run(run.job_id)
    assert first.state == "TIMEOUT", (first.state, first.reason)
    assert last.state == "COMPLETED", (last.state, last.reason)
    assert [(p.job_id, p.state, p.why) for p in retried] == [(run.job_id, "TIMEOUT", "time limit 1, from epoch 1 (no backup)")]
    assert last.continues == run.job_id and last.resources["time"] == "1" and last.config["resume_from"] == first.out_dir
