"""Faults injected on purpose, on the real local Slurm: the controller restarting under a running
job, slurmdbd down for a job's whole life, the job killed while writing its artifacts, the CLI
killed between sbatch and the registry write (a submit, a sweep), the registry file copied in the middle of a write.
Each test leaves the cluster up (try/finally) and counts the runs: none may be lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from typer.testing import CliRunner

import helpers
import slurm_jobs
from crackops import api
from crackops.cli import app
from crackops.config import Resources, TrainConfig
from crackops.errors import CrackopsError
from crackops.registry import Registry
from helpers import local_slurm

cloudpickle.register_pickle_by_value(slurm_jobs)
cloudpickle.register_pickle_by_value(helpers)
runner = CliRunner()
TINY = Resources(cpus=1, mem="256M", time="10")
REPO = Path(__file__).resolve().parents[1]


def cli(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output
    return res


def submit(fn, **kw):
    return api.submit(TrainConfig(data_dir="unused"), TINY, backend="slurm", fn=fn, check_data=False, **kw)


def wait_for(what, predicate, timeout=120.0, poll=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(poll)


def sacct_state(job_id: str) -> str | None:
    p = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "--format=State", "--starttime=now-1days"],
                       capture_output=True, text=True, timeout=30)
    rows = [l.split()[0] for l in p.stdout.splitlines() if l.strip()]
    return rows[-1] if p.returncode == 0 and rows else None


def phase(run) -> str | None:
    p = Path(run.out_dir) / "status.json"
    try:
        return json.loads(p.read_text()).get("phase")
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- the controller restarts

@pytest.mark.slurm
def test_controller_restart_while_a_job_runs(slurm_cluster, crackops_dirs, monkeypatch):
    monkeypatch.setenv("CRACKOPS_TEST_SLEEP", "12")
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")        # every status asks, none is served stale
    run = submit(slurm_jobs.sleep_then_artifacts, name="ctld-restart")
    wait_for("RUNNING", lambda: api.status([run.job_id]).runs[0].state == "RUNNING", timeout=90)
    local_slurm("stop-ctld", timeout=60)
    try:
        t = time.monotonic()
        down = cli("status")
        took = time.monotonic() - t
        as_json = cli("status", run.job_id, "--json")
        with pytest.raises(CrackopsError) as refused:               # sbatch cannot reach it: said, nothing noted
            submit(slurm_jobs.hello, name="while-down")
        # the job ends on its node while the controller is away: nothing may call it finished yet
        wait_for("the job's own end", lambda: phase(run) == "completed", timeout=120)
        still = cli("status", "--json")
    finally:
        local_slurm("start-ctld", timeout=120)
    assert down.exit_code == 5, down.output
    assert "slurmctld" in down.output and "does not answer" in down.output and run.job_id in down.output
    assert took < 15, took                                     # scontrol ping, not squeue's 20 s of retries
    assert as_json.exit_code == 5 and json.loads(as_json.stdout)[0]["state"] == "RUNNING"
    assert refused.value.exit_code == 5 and "controller" in refused.value.message, refused.value.message
    assert Registry().pending() == []
    assert still.exit_code == 5 and json.loads(still.stdout)[0]["state"] == "RUNNING"
    # controller back: the job completes, the run is COMPLETED with its artifacts
    final = list(api.wait([run.job_id], poll_s=1, timeout_s=120))[-1]
    assert final.runs[0].state == "COMPLETED" and final.sources == {"slurm": "sacct"}
    assert final.scheduler_down is None
    rep = api.collect(run.job_id)
    assert rep.ok and rep.run.metrics["test_accuracy"] == pytest.approx(0.9)
    ok = cli("status")
    assert ok.exit_code == 0 and "does not answer" not in ok.output
    assert len(Registry().list()) == 1


@pytest.mark.slurm
def test_controller_and_slurmdbd_down_together(slurm_cluster, crackops_dirs, monkeypatch):
    monkeypatch.setenv("CRACKOPS_TEST_SLEEP", "10")
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    run = submit(slurm_jobs.sleep_then_artifacts, name="both-down")
    wait_for("RUNNING", lambda: api.status([run.job_id]).runs[0].state == "RUNNING", timeout=90)
    local_slurm("stop-dbd", timeout=60)
    try:
        local_slurm("stop-ctld", timeout=60)
        try:
            t = time.monotonic()
            res = cli("status", "--json")
            took = time.monotonic() - t
        finally:
            local_slurm("start-ctld", timeout=120)
    finally:
        local_slurm("start-dbd", timeout=120)
    said = " ".join(res.output.split())                # rich wraps long lines
    assert res.exit_code == 5 and "does not answer" in said and "showing artifacts only" in said, said[-1500:]
    (row,) = json.loads(res.stdout)
    assert row["state"] == "RUNNING" and row["state_source"] == "artifacts"
    assert took < 15, took                             # squeue's retries (about 20 s) skipped
    final = list(api.wait([run.job_id], poll_s=1, timeout_s=120))[-1].runs[0]
    assert final.state == "COMPLETED" and api.collect(run.job_id).ok


# ---------------------------------------------------------------- slurmdbd away for a job's whole life

@pytest.mark.slurm
def test_slurmdbd_down_for_a_jobs_whole_life(slurm_cluster, crackops_dirs, monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    local_slurm("stop-dbd", timeout=60)
    try:
        good = submit(slurm_jobs.hello, name="no-dbd-ok")
        bad = submit(slurm_jobs.boom, name="no-dbd-fails")
        res = cli("status")
        seen = []

        def ended():
            rep = api.status()
            seen.append((sorted(rep.sources.values()), [r.state for r in rep.runs]))
            return rep if all(r.terminal for r in rep.runs) else None

        rep = wait_for("both jobs to end without accounting", ended, timeout=120)
    finally:
        local_slurm("start-dbd", timeout=120)
    assert {r.job_id: r.state for r in rep.runs} == {good.job_id: "COMPLETED", bad.job_id: "FAILED"}
    assert all(r.state_source == "squeue+artifacts" for r in rep.runs)
    assert all(src == ["squeue+artifacts"] for src, _ in seen), seen
    assert res.exit_code == 0 and "sacct failed" in res.output and "squeue+artifacts" in res.output
    by_id = {r.job_id: r for r in rep.runs}
    assert by_id[bad.job_id].reason == "ValueError: synthetic failure for the test"
    # accounting back: slurmctld hands its queued records over; sacct agrees with what was stored
    for run in (good, bad):
        got = wait_for(f"sacct row of {run.job_id}", lambda: sacct_state(run.job_id) not in (None, "RUNNING", "PENDING") and
                       sacct_state(run.job_id), timeout=120)
        assert Registry().get(run.job_id).state == got, (run.job_id, got)
    assert len(Registry().list()) == 2


# ---------------------------------------------------------------- killed while writing artifacts

@pytest.mark.slurm
def test_job_killed_while_writing_its_manifest_is_never_completed(slurm_cluster, crackops_dirs, monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    run = submit(slurm_jobs.killed_writing_artifacts, name="killed-in-manifest")
    final = list(api.wait([run.job_id], poll_s=1, timeout_s=120))[-1].runs[0]
    out = Path(run.out_dir)
    assert "killed while writing" in Path(run.log_out).read_text()
    assert not (out / "manifest.json").exists()                 # the rename never happened
    assert list(out.glob(".manifest.json.*.tmp"))                # the temporary file did
    assert (out / "metrics.txt").exists() and (out / "best.h5").exists()
    assert final.state != "COMPLETED" and final.metrics is None, (final.state, final.reason)
    assert final.state == sacct_state(run.job_id)
    res = cli("collect", run.job_id)
    assert res.exit_code == 4 and final.state in res.output


@pytest.mark.slurm
def test_training_run_completed_by_slurm_without_manifest_is_incomplete(slurm_cluster, crackops_dirs, monkeypatch):
    """The same files, but the job's process exited 0 before the manifest (Slurm: COMPLETED). The
    run is recorded as a training (its function decides whether artifacts are promised)."""
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    monkeypatch.setenv("CRACKOPS_TEST_SLEEP", "0")
    run = submit(slurm_jobs.hello, name="no-manifest")
    reg = Registry()
    reg.update(run.job_id, extra={**run.extra, "fn": api.TRAINING_FN})
    helpers.make_artifacts(run.out_dir, job_id=run.job_id)
    (Path(run.out_dir) / "manifest.json").unlink()
    final = list(api.wait([run.job_id], poll_s=1, timeout_s=120))[-1].runs[0]
    assert sacct_state(run.job_id) == "COMPLETED"
    assert final.state == "INCOMPLETE" and "manifest.json is missing" in final.reason
    res = cli("collect", run.job_id)
    assert res.exit_code == 6 and Registry().get(run.job_id).metrics is None


# ---------------------------------------------------------------- the submitter killed after sbatch

SUBMITTER = """
import cloudpickle, helpers, slurm_jobs
cloudpickle.register_pickle_by_value(slurm_jobs)
cloudpickle.register_pickle_by_value(helpers)
from crackops import api
from crackops.config import Resources, TrainConfig
run = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"), backend="slurm",
                 fn=slurm_jobs.sleep_then_artifacts, check_data=False, name="crashed")
print("RECORDED", run.job_id, flush=True)
"""


SWEEP_SUBMITTER = """
import cloudpickle, helpers, slurm_jobs
cloudpickle.register_pickle_by_value(slurm_jobs)
cloudpickle.register_pickle_by_value(helpers)
from crackops import api
from crackops.config import Resources, TrainConfig
sw = api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.1, 0.2, 0.3]}, 1,
               Resources(cpus=1, mem="256M", time="10"), backend="slurm", fn=slurm_jobs.dropout_then_artifacts,
               check_data=False, name="crashed-sweep", max_parallel=2)
print("RECORDED", sw.name, flush=True)
"""


def sbatch_that_kills_its_caller(tmp_path: Path, *, before: bool = False) -> tuple[Path, Path]:
    """An ``sbatch`` on PATH that runs the real one and then SIGKILLs the process that called it
    (the crackops submitter), before it could read the job id; ``before``: kills it instead of
    submitting. Its log keeps what the real sbatch printed."""
    real = shutil.which("sbatch")
    shim, log = tmp_path / "shim", tmp_path / "sbatch.log"
    shim.mkdir(exist_ok=True)
    body = ('kill -9 $PPID; exit 1\n' if before else
            f'out=$("{real}" "$@"); rc=$?\necho "$out" >> "{log}"\n[ $rc -eq 0 ] && kill -9 $PPID\n'
            'echo "$out"; exit $rc\n')
    (shim / "sbatch").write_text("#!/bin/sh\n" + body)
    (shim / "sbatch").chmod(0o755)
    return shim, log


def run_killed_submitter(tmp_path: Path, *, before: bool = False,
                         script: str = SUBMITTER) -> tuple[subprocess.CompletedProcess, Path]:
    shim, log = sbatch_that_kills_its_caller(tmp_path, before=before)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "CRACKOPS_TEST_SLEEP": "3",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    return p, log


@pytest.mark.slurm
def test_submitter_killed_between_sbatch_and_the_registry_is_adopted(slurm_cluster, crackops_dirs, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    p, log = run_killed_submitter(tmp_path)
    assert p.returncode == -9 and "RECORDED" not in p.stdout, (p.returncode, p.stdout, p.stderr[-2000:])
    job_id = log.read_text().split()[-1]                       # "Submitted batch job N"
    assert job_id.isdigit()
    reg = Registry()
    assert reg.list() == [] and len(reg.pending()) == 1           # sbatch said yes, nobody recorded it
    res = cli("status", "--json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["job_id"] == job_id and row["name"] == "crashed" and row["backend"] == "slurm"
    assert f"adopted job {job_id}" in res.output
    assert reg.pending() == []
    # adopted in time: the job found its pickle and ran; the run completes with its artifacts
    final = list(api.wait([job_id], poll_s=1, timeout_s=120))[-1].runs[0]
    assert final.state == "COMPLETED", (final.state, final.reason)
    assert api.collect(job_id).ok
    again = cli("status", "--json")                                # adopted once, never twice
    assert [r["job_id"] for r in json.loads(again.stdout)] == [job_id]


@pytest.mark.slurm
@pytest.mark.parametrize("array_size, accepted", [(None, 3), ("2", 2)], ids=["one-array", "second-never-sent"])
def test_sweep_submitter_killed_after_sbatch_accepted_its_array_is_adopted(slurm_cluster, crackops_dirs, tmp_path,
                                                                           monkeypatch, array_size, accepted):
    """3 runs as one array of 3, or (MaxArraySize 2) as arrays of 2 and 1, the submitter killed
    right after the first sbatch: the sweep is adopted with the runs of the array accepted."""
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    if array_size:
        monkeypatch.setenv("CRACKOPS_MAX_ARRAY_SIZE", array_size)
    p, log = run_killed_submitter(tmp_path, script=SWEEP_SUBMITTER)
    assert p.returncode == -9 and "RECORDED" not in p.stdout, (p.returncode, p.stdout, p.stderr[-2000:])
    array_id = log.read_text().split()[-1]                     # "Submitted batch job N": the array
    assert array_id.isdigit()
    ids = [f"{array_id}_{i}" for i in range(accepted)]
    reg = Registry()
    assert reg.list_sweeps() == [] and reg.list() == [] and len(reg.pending()) == 1
    res = cli("status", "--json")                              # the next status adopts the sweep
    assert res.exit_code == 0, res.output
    assert f"adopted sweep crashed-sweep ({accepted} of 3 runs" in res.output and array_id in res.output, res.output
    assert reg.pending() == []
    res = cli("status", "--sweep", "crashed-sweep", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["runs"]
    assert sorted(r["job_id"] for r in rows) == ids
    assert sorted(r["name"] for r in rows) == [f"crashed-sweep/p{i + 1}/s42" for i in range(accepted)]
    assert {r["job_id"]: r["config"]["dropout"] for r in rows} == dict(zip(ids, (0.1, 0.2, 0.3)))
    # adopted in time: each task found its own pickle and ran; every run completes
    done = api.get_sweep("crashed-sweep").wait(poll_s=1, timeout_s=180)
    assert done.counts["done"] == accepted, [(r.job_id, r.state, r.reason) for r in done.runs]
    assert all(api.collect(r.job_id).ok for r in done.runs)
    ran = {r.job_id: float((Path(r.out_dir) / "dropout.txt").read_text()) for r in done.runs}
    assert ran == {r.job_id: r.config["dropout"] for r in done.runs}    # each task ran its own run's pickle
    again = cli("status", "--json")                            # adopted once, never twice
    assert sorted(r["job_id"] for r in json.loads(again.stdout)) == ids
    assert len(Registry().list_sweeps()) == 1


@pytest.mark.slurm
def test_submitter_killed_before_sbatch_accepted_anything_is_dropped_not_guessed(slurm_cluster, crackops_dirs,
                                                                                tmp_path, monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    p, _log = run_killed_submitter(tmp_path, before=True)
    assert p.returncode == -9, (p.returncode, p.stderr[-2000:])
    reg = Registry()
    assert len(reg.pending()) == 1
    res = cli("status")                                            # within the grace period: still looking
    assert res.exit_code == 0 and "not found yet" in res.output and "keeps looking" in res.output, res.output
    assert len(reg.pending()) == 1 and reg.list() == []
    monkeypatch.setenv("CRACKOPS_NO_RECORD_GRACE", "0")
    res = cli("status")
    assert res.exit_code == 0 and "never accepted" in res.output, res.output
    assert reg.pending() == [] and reg.list() == []


# ---------------------------------------------------------------- the registry copied mid-write

def test_registry_copied_mid_write_opens_with_its_committed_rows(tmp_path):
    """``cp registry.db* backup/`` while crackops writes: the main file holds what the last
    checkpoint wrote, the WAL copy ends anywhere, even inside a frame. Every such copy opens, holds
    the committed runs in order (a prefix of them, none half-written) and passes SQLite's check."""
    from helpers import make_run

    src = tmp_path / "live" / "registry.db"
    reg = Registry(src)
    reg._conn.execute("PRAGMA wal_autocheckpoint = 0")             # keep every commit in the WAL
    n = 40
    for i in range(n):
        reg.add(make_run(f"{i + 1}", name=f"run-{i + 1}", submitted_at=1000.0 + i))
    wal = Path(str(src) + "-wal")
    data = wal.read_bytes()
    assert reg._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal" and len(data) > 10_000
    counts = []
    cuts = sorted({len(data)} | {len(data) * k // 23 for k in range(23)} | {len(data) - 7, 32, 4096 + 24 + 100})
    for cut in cuts:
        d = tmp_path / f"copy-{cut}"
        d.mkdir()
        shutil.copyfile(src, d / "registry.db")
        (d / "registry.db-wal").write_bytes(data[:cut])
        copy = Registry(d / "registry.db")                          # opens (and migrates) without error
        assert copy._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = copy.list()
        ids = [r.job_id for r in runs]
        assert ids == [str(i + 1) for i in range(len(ids))], (cut, ids)   # committed ones, in order
        assert all(r.name == f"run-{r.job_id}" and r.config["seed"] == 1 for r in runs)
        counts.append(len(ids))
        copy.close()
    assert counts == sorted(counts) and counts[-1] == n and counts[0] < n, counts
    # the main file alone (the WAL not copied): opens, with what was checkpointed
    for k, checkpoint in enumerate((False, True)):
        if checkpoint:
            reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        alone = tmp_path / f"alone-{k}"
        alone.mkdir()
        shutil.copyfile(src, alone / "registry.db")
        copy = Registry(alone / "registry.db")
        assert len(copy.list()) == (n if checkpoint else 0)
        copy.close()
