"""Rerun by cause (issue 14): the memory limit (scontrol text recorded from the local Slurm), the
plan, ``--retries`` and ``rerun --failed --sweep`` on the local backend with trivial job functions
(tests/jobs.py; a MemoryError is what the local runner records as OUT_OF_MEMORY). The same on the
real Slurm, with the kernel's memory limit: tests/test_slurm_rerun.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jobs
from crackops import api
from crackops.config import Resources, TrainConfig
from crackops.errors import UsageError
from crackops.registry import Registry, Run
from crackops.rerun import plan
from crackops.slurm.limits import MemCap, memory_cap, parse_records
from helpers import invoke, text

TESTS = str(Path(__file__).parent)
DATA = Path(__file__).parent / "data" / "scontrol"
SMALL = Resources(cpus=1, mem="1G", time="5")


@pytest.fixture(autouse=True)
def importable_jobs(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


# ------------------------------------------------------------------ the partition's limit (pure)

def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize("parts", ["partitions.txt", "partitions-o.txt"])
@pytest.mark.parametrize("nodes", ["nodes.txt", "nodes-o.txt"])
def test_memory_cap_from_recorded_scontrol_output(parts, nodes):
    """Slurm 22.05 on the local cluster, partitions batch (default, no memory limit), small
    (MaxMemPerNode=2048) and percpu (MaxMemPerCPU=1500); one node, RealMemory=65536."""
    p, n = read(parts), read(nodes)
    assert memory_cap(p, n, None, 4) == MemCap(65536, "partition batch: largest node vm has RealMemory 64G")
    assert memory_cap(p, n, "batch", 4).mb == 65536
    assert memory_cap(p, n, "small", 4) == MemCap(2048, "partition small: MaxMemPerNode 2G")
    assert memory_cap(p, n, "percpu", 4) == MemCap(6000, "partition percpu: MaxMemPerCPU 1500M x 4 CPUs")
    assert memory_cap(p, n, "percpu", 100).mb == 65536          # per CPU x 100 is more than the node has
    assert memory_cap(p, n, "nosuch", 4) is None
    assert memory_cap(p, "", "batch", 4) is None                # no node text, no partition limit: unknown


def test_scontrol_records_skip_words_without_a_value():
    nodes = parse_records(read("nodes-o.txt"), "NodeName")
    assert len(nodes) == 1 and nodes[0]["RealMemory"] == "65536" and nodes[0]["Partitions"] == "batch,small,percpu"
    assert nodes[0]["OS"] == "Linux"                            # "OS=Linux 6.18 #1 SMP ..." has spaces
    assert [p["PartitionName"] for p in parse_records(read("partitions.txt"), "PartitionName")] == \
        ["batch", "small", "percpu"]


def test_memory_cap_of_several_nodes_takes_the_largest_in_the_partition():
    parts = "PartitionName=gpu Default=NO MaxMemPerNode=UNLIMITED\nPartitionName=cpu Default=YES MaxMemPerNode=UNLIMITED\n"
    nodes = ("NodeName=a RealMemory=32000 Partitions=cpu\nNodeName=b RealMemory=96000 Partitions=cpu,gpu\n"
             "NodeName=c RealMemory=512000 Partitions=gpu\n")
    assert memory_cap(parts, nodes, None, 1).mb == 96000
    assert memory_cap(parts, nodes, "gpu", 1).mb == 512000


# ------------------------------------------------------------------ the plan (pure)

RES = {"cpus": 4, "mem": "16G", "time": "4:00:00"}


def test_out_of_memory_increase_is_capped_by_the_limit_and_says_so():
    p = plan("1", "OUT_OF_MEMORY", RES, None, backup_epoch=2, cap=MemCap(20480, "partition small: MaxMemPerNode 20G"))
    assert p.action == "rerun" and p.resources["mem"] == "20G"
    assert "16G -> 20G" in p.why and "x1.5 = 24G, capped by partition small: MaxMemPerNode 20G" in p.why
    p = plan("1", "OUT_OF_MEMORY", RES, None, backup_epoch=2, cap=MemCap(65536, "partition batch"))
    assert p.resources["mem"] == "24G" and "capped" not in p.why
    # at the limit already: another try with the same memory would die the same way
    p = plan("1", "OUT_OF_MEMORY", {**RES, "mem": "20G"}, None, backup_epoch=2, cap=MemCap(20480, "partition small"))
    assert p.action == "refused" and "already at the limit (partition small)" in p.why and "--mem" in p.why
    # the user's own cap, lower than the partition's
    p = plan("1", "OUT_OF_MEMORY", RES, None, backup_epoch=2, max_mem="18G", cap=MemCap(65536, "partition batch"))
    assert p.resources["mem"] == "18G" and "capped by --max-mem 18G" in p.why


def test_mem_chooses_the_memory_for_any_cause_but_never_above_the_limit():
    cap = MemCap(32768, "partition batch: MaxMemPerNode 32G")
    p = plan("1", "OUT_OF_MEMORY", RES, None, backup_epoch=2, mem="30G", cap=cap)
    assert p.resources["mem"] == "30G" and "16G -> 30G (--mem)" in p.why
    p = plan("1", "TIMEOUT", RES, None, backup_epoch=2, mem="8192M", cap=cap)
    assert p.action == "rerun" and p.resources["mem"] == "8G" and "time limit 4:00:00" in p.why
    p = plan("1", "OUT_OF_MEMORY", RES, None, backup_epoch=2, mem="40G", cap=cap)
    assert p.action == "refused" and p.why == "--mem 40G is more than the limit (partition batch: MaxMemPerNode 32G)"


def test_rerun_flags_are_validated_before_anything_is_asked():
    for kw, word in (({"mem": "12x"}, "--mem 12x"), ({"max_mem": "0G"}, "--max-mem 0G"),
                     ({"time_limit": "soon"}, "--time soon"), ({"mem_factor": 0.5}, "--mem-factor 0.5")):
        with pytest.raises(UsageError) as e:
            api.rerun(["anything"], **kw)
        assert word in e.value.message
    res = invoke("rerun", "--failed", "--mem", "lots")
    assert res.exit_code == 2 and "--mem lots: cannot read memory" in text(res) and "Traceback" not in text(res)
    res = invoke("rerun", "1234", "--sweep", "x")
    assert res.exit_code == 2 and "give job ids or --sweep, not both" in text(res)
    res = invoke("submit", "--retries", "-1", "--data", "x")
    assert res.exit_code == 2 and "--retries -1 must be a whole number" in text(res)


def test_local_memory_limit_is_the_machine_memory():
    from crackops.backends.local import LocalBackend

    cap = LocalBackend().memory_limit(SMALL)
    total_kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal:")))
    assert abs(cap.mb - total_kb // 1024) <= 1 and "this machine has" in cap.why


# ------------------------------------------------------------------ --retries (local backend)

def wait_last(job_id, timeout=120):
    reports = list(api.wait([job_id], poll_s=0.2, timeout_s=timeout))
    return reports[-1].runs[0], [p for rep in reports for p in rep.retried]


def test_retries_rerun_an_out_of_memory_run_with_more_memory_and_wait_follows_it():
    run = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.oom_once, check_data=False, retries=2)
    last, retried = wait_last(run.job_id)
    first = api.get_run(run.job_id)
    assert first.state == "OUT_OF_MEMORY" and first.retries == 2
    assert last.state == "COMPLETED", last.reason
    assert last.job_id != run.job_id and last.continues == run.job_id and last.attempt == 2
    assert last.resources["mem"] == "2G" and last.retries == 1 and last.config["resume_from"] == first.out_dir
    assert last.extra["fn"] == "jobs.oom_once"
    assert [(p.job_id, p.new_job_id) for p in retried] == [(run.job_id, last.job_id)]
    assert "memory 1G -> 2G" in retried[0].why
    again = api.status()
    assert again.retried == [] and len(again.runs) == 2        # done once, not at every status


def test_retries_stop_after_n_attempts():
    run = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.oom_always, check_data=False, retries=2)
    last, retried = wait_last(run.job_id)
    runs = api.status().runs
    assert len(runs) == 3 and len(retried) == 2 and all(r.state == "OUT_OF_MEMORY" for r in runs)
    assert [r.resources["mem"] for r in runs] == ["1G", "2G", "3G"] and last.retries == 0
    assert last.continues == runs[1].job_id and runs[1].continues == run.job_id


def test_retries_never_rerun_a_python_exception_nor_a_run_without_retries():
    bug = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.fail, check_data=False, retries=3)
    plain = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.oom_once, check_data=False)
    for j in (bug, plain):
        last, retried = wait_last(j.job_id)
        assert last.job_id == j.job_id and retried == []
    assert [r.state for r in api.status().runs] == ["FAILED", "OUT_OF_MEMORY"]


def test_a_run_not_retried_says_why_then_and_later(crackops_dirs):
    bug = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.fail, check_data=False, retries=1)
    reports = list(api.wait([bug.job_id], poll_s=0.2, timeout_s=120))
    said = [w for rep in reports for w in rep.warnings if "is not retried" in w]
    assert len(said) == 1 and "ValueError: deliberate failure" in said[0] and "--force" in said[0], said
    run = api.get_run(bug.job_id)
    assert run.retries == 0 and "Python exception is never retried" in run.extra["not_retried"]
    res = invoke("status", bug.job_id)
    assert "not retried: it failed with ValueError" in text(res) and "1 left" not in text(res)
    assert not any("is not retried" in w for w in api.status().warnings)     # said once


def due_run(tmp_path, retries: int | None = 1) -> Run:
    """An OUT_OF_MEMORY run with one retry left, recorded as it would be after it ended."""
    out = tmp_path / "out"
    run = Run(job_id="L000000-000000-dead", backend="local", state="OUT_OF_MEMORY",
              config={**TrainConfig(data_dir="unused", out_root=str(out)).to_dict(), "job_id": None},
              resources=SMALL.to_dict(), submitted_at=time.time() - 60, out_dir=str(out / "L000000-000000-dead"),
              log_out=str(tmp_path / "logs" / "cnn_crack_L000000-000000-dead.out"),
              extra={"fn": "jobs.succeed"}, retries=retries)
    Registry().add(run)
    return run


@pytest.mark.procs
@pytest.mark.parametrize("how", ["len(api.status().retried)",
                                 "len([p for p in api.rerun(failed=True) if p.new_job_id])"])
def test_a_run_is_rerun_once_by_concurrent_crackops_processes(tmp_path, how):
    """Six processes refresh (``--retries``) or ``rerun --failed`` at the same moment: the
    registry's claim lets exactly one rerun it."""
    run = due_run(tmp_path, retries=1 if "status" in how else None)
    code = ("import sys, time\nfrom crackops import api\n"
            "while time.time() < float(sys.argv[1]): time.sleep(0.005)\n"
            f"print({how})\n")
    at = str(time.time() + 4)
    procs = [subprocess.Popen([sys.executable, "-c", code, at], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    assert sum(int(o[0].split()[-1]) for o in outs) == 1
    reruns = [r for r in Registry().list() if r.continues == run.job_id]
    assert len(reruns) == 1


def test_a_claim_left_by_a_process_that_died_can_be_taken_again(tmp_path):
    reg = Registry()
    run = reg.get(due_run(tmp_path).job_id)
    assert reg.claim_rerun(run, time.time(), 600) is True
    assert reg.claim_rerun(run, time.time(), 600) is False               # held
    assert reg.claim_rerun(run, time.time() + 601, 600) is True          # the holder never recorded a rerun
    reg.release_rerun(run)
    assert reg.claim_rerun(run, time.time(), 600) is True


# ------------------------------------------------------------------ rerun --failed --sweep (local)

@pytest.mark.procs
def test_rerun_failed_sweep_repairs_that_sweep_only(crackops_dirs):
    other = api.submit(TrainConfig(data_dir="unused"), SMALL, fn=jobs.oom_once, check_data=False, name="outside")
    h = api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.1, 0.3]}, seeds=1, resources=SMALL, name="drop",
                  fn=jobs.oom_if_dropout_high, check_data=False)
    st = h.wait(poll_s=0.2, timeout_s=120)
    assert st.counts["done"] == 1 and st.counts["failed"] == 1
    wait_last(other.job_id)
    res = invoke("rerun", "--failed", "--sweep", "drop", "--json")
    assert res.exit_code == 0, text(res)
    import json

    (p,) = json.loads(res.stdout)
    oom = next(r for r in st.runs if r.state == "OUT_OF_MEMORY")
    assert p["job_id"] == oom.job_id and p["action"] == "rerun" and p["resources"]["mem"] == "2G"
    assert api.get_run(other.job_id).state == "OUT_OF_MEMORY"            # not in the sweep: left alone
    assert [r for r in Registry().list() if r.continues == other.job_id] == []
    st = h.wait(poll_s=0.2, timeout_s=120)
    assert st.counts == {"pending": 0, "running": 0, "done": 2, "failed": 0, "cancelled": 0} and st.reruns == 1
    new = api.get_run(p["new_job_id"])
    assert new.sweep_id == h.sweep.sweep_id and new.name == oom.name and new.extra["sweep"]["values"] == {"dropout": 0.3}
    assert len(h.compare().comparison.rows) == 2                         # the last attempts only
    res = invoke("status", "--sweep", "drop")
    assert res.exit_code == 0 and "done 2   failed 0   cancelled 0   (and 1 earlier attempt, rerun)" in text(res)
    assert api.rerun(failed=True, sweep="drop") == []                    # nothing left to repair
    res = invoke("rerun", oom.job_id)
    assert res.exit_code == 4 and f"already rerun as {new.job_id}" in text(res)


def test_status_submits_a_due_retry_says_so_on_stderr_and_keeps_json_clean(tmp_path):
    import json

    run = due_run(tmp_path)
    res = invoke("status", "--json")
    assert res.exit_code == 0, text(res)
    rows = json.loads(res.stdout)
    assert [r["job_id"] for r in rows] == [run.job_id] and rows[0]["retries"] == 1
    new = Registry().continued_by(Registry().get(run.job_id))
    assert new is not None and new.retries == 0 and new.resources["mem"] == "2G"
    assert f"retried {run.job_id} (OUT_OF_MEMORY) as {new.job_id}: memory 1G -> 2G" in text(res)


def test_a_retry_that_cannot_be_submitted_is_a_warning_not_a_crash(tmp_path):
    run = due_run(tmp_path)
    reg = Registry()
    reg.update(run.job_id, extra={"fn": "no_such_module.train"})
    rep = api.status()
    assert rep.retried == [] and len(rep.runs) == 1
    assert any(f"retry of {run.job_id} (OUT_OF_MEMORY) failed" in w and "no_such_module.train" in w
               for w in rep.warnings), rep.warnings
    assert reg.get(run.job_id).rerun_claimed_at is None and reg.get(run.job_id).retries == 1   # tried again later


def test_a_run_already_at_the_memory_limit_is_not_retried_and_status_says_why(tmp_path):
    from crackops.backends.local import LocalBackend

    cap = LocalBackend().memory_limit(SMALL)
    run = due_run(tmp_path)
    reg = Registry()
    reg.update(run.job_id, resources={**SMALL.to_dict(), "mem": f"{cap.mb}M"})
    rep = api.status()
    assert rep.retried == [] and reg.continued_by(reg.get(run.job_id)) is None
    assert any(f"{run.job_id} (OUT_OF_MEMORY) is not retried: memory" in w and "already at the limit (this machine has"
               in w for w in rep.warnings), rep.warnings
    assert reg.get(run.job_id).retries == 0 and api.status().warnings == []   # said once


@pytest.mark.procs
def test_sweep_retries_repair_the_sweep_while_it_is_waited_for():
    """One run that runs out of memory: the poll that sees it end is the one that retries it, and
    the sweep is not finished then (its rerun is a member)."""
    h = api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.3]}, seeds=1, resources=SMALL, name="auto",
                  fn=jobs.oom_if_dropout_high, check_data=False, retries=1)
    assert [r.retries for r in h.runs] == [1]
    st = h.wait(poll_s=0.2, timeout_s=120)
    assert st.finished and st.counts["done"] == 1 and st.counts["failed"] == 0 and st.reruns == 1, \
        [(r.job_id, r.state, r.reason) for r in st.runs]
    (new,) = [r for r in st.runs if r.continues]
    assert new.sweep_id == h.sweep.sweep_id and new.retries == 0 and new.state == "COMPLETED"
    assert "--retries" in text(invoke("sweep", "--help")) and "--retries" in text(invoke("submit", "--help"))


@pytest.mark.parametrize("state,retried,why", [
    ("TIMEOUT", True, "time limit 5, from epoch 1 (no backup)"),
    ("NODE_FAIL", True, "same resources, from epoch 1 (no backup)"),
    ("PREEMPTED", True, "same resources, from epoch 1 (no backup)"),
    ("CANCELLED", False, None),        # the user's decision
    ("FAILED", False, None),           # not one of the causes --retries repairs
    ("COMPLETED", False, None),
])
def test_retries_by_cause(tmp_path, state, retried, why):
    run = due_run(tmp_path)
    Registry().update(run.job_id, state=state)
    rep = api.status()
    assert [(p.job_id, p.state, p.why) for p in rep.retried] == ([(run.job_id, state, why)] if retried else [])
    new = Registry().continued_by(Registry().get(run.job_id))
    assert (new is not None) == retried
    if retried:
        assert new.resources == {**SMALL.to_dict()} and new.retries == 0


def test_a_rerun_does_not_wait_for_the_array_its_sweep_run_waited_for(tmp_path):
    run = due_run(tmp_path, retries=None)
    Registry().update(run.job_id, resources={**SMALL.to_dict(), "extra": {"dependency": "afterany:123", "constraint": "x"}})
    (p,) = api.rerun([run.job_id])
    assert Registry().get(p.new_job_id).resources["extra"] == {"constraint": "x"}
