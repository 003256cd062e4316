"""SlurmBackend against a real Slurm (scripts/local-slurm.sh start).

Tests marked ``slurm`` skip when sbatch/sacct are missing or the cluster is down, and FAIL
instead when ``CRACKOPS_REQUIRE_SLURM=1`` (CI). The slow TIMEOUT job is submitted once, at the
first test that needs the cluster, and checked by the last test, so its wait overlaps the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

import slurm_jobs
from crackops.backends.base import Submission
from crackops.backends.slurm import SlurmBackend, clean_slurm_env
from crackops.config import Resources, TrainConfig
from crackops.errors import BackendError
from crackops.registry import TERMINAL_STATES, Run
from helpers import local_slurm

# tests/ is not importable inside a job: ship the job functions by value
cloudpickle.register_pickle_by_value(slurm_jobs)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local-slurm.sh"
SMALL = dict(cpus=1, mem="1G", time="10:00")


# ------------------------------------------------------------------ cluster fixture

# ------------------------------------------------------------------ helpers

class CountingBackend(SlurmBackend):
    """Records every scheduler command it runs."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.commands: list[list[str]] = []

    def _run(self, cmd):
        self.commands.append(list(cmd))
        return super()._run(cmd)

    def count(self, tool: str) -> int:
        return sum(1 for c in self.commands if Path(c[0]).name == tool)


def submission(dirs, fn, **res) -> Submission:
    return Submission(config=TrainConfig(out_root=str(dirs["out"])), resources=Resources(**res),
                      logs_dir=dirs["logs"], fn=fn)


def as_run(sub: Submission, done) -> Run:
    """What crackops.api records after a submit."""
    return Run(job_id=done.job_id, backend="slurm", state="PENDING", config=sub.config.to_dict(),
               resources=sub.resources.to_dict(), submitted_at=time.time(),
               out_dir=str(Path(sub.config.out_root) / done.job_id), log_out=str(done.log_out),
               log_err=str(done.log_err), extra=dict(done.extra))


def submit(be, dirs, fn, **res) -> Run:
    sub = submission(dirs, fn, **res)
    return as_run(sub, be.submit(sub))


def wait_terminal(be, runs: list[Run], timeout: float = 60.0):
    """Refresh until every run is in a terminal state; returns {job_id: StateUpdate}."""
    deadline = time.time() + timeout
    last = {}
    while True:
        res = be.refresh([r for r in runs if r.job_id not in last or last[r.job_id].state not in TERMINAL_STATES])
        for k, u in res.updates.items():
            last[k] = u
        if all(r.job_id in last and last[r.job_id].state in TERMINAL_STATES for r in runs):
            return last
        if time.time() > deadline:
            states = {r.job_id: getattr(last.get(r.job_id), "state", "no row") for r in runs}
            raise AssertionError(f"not finished after {timeout:.0f} s: {states}")
        time.sleep(1.0)


def wait_state(be, run: Run, state: str, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        u = be.refresh([run]).updates.get(run.job_id)
        if u is not None and u.state == state:
            return u
        time.sleep(0.5)
    raise AssertionError(f"{run.job_id} never reached {state}")


@pytest.fixture(scope="module")
def timeout_job(slurm_cluster, tmp_path_factory):
    """A job that sleeps past its 1-minute limit, submitted once, early."""
    base = tmp_path_factory.mktemp("timeout")
    dirs = {"home": base / "home", "out": base / "out", "logs": base / "logs"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (("CRACKOPS_HOME", "home"), ("CRACKOPS_OUT", "out"), ("CRACKOPS_LOGS", "logs")):
            mp.setenv(k, str(dirs[v]))
        mp.setenv("CRACKOPS_TEST_SLEEP", "400")
        be = SlurmBackend()
        run = submit(be, dirs, slurm_jobs.sleepy, cpus=1, mem="1G", time="1")
    return run, dirs


# ------------------------------------------------------------------ dry run (no cluster needed)

def test_dry_run_is_the_sbatch_script_of_the_default_profile(crackops_dirs):
    be = SlurmBackend()
    sub = submission(crackops_dirs, slurm_jobs.hello)
    script = be.dry_run(sub)
    logs = crackops_dirs["logs"].resolve()
    for line in ("#SBATCH --cpus-per-task=4", "#SBATCH --mem=16G", "#SBATCH --time=240",
                 "#SBATCH --job-name=cnn_crack", f"#SBATCH --output={logs}/cnn_crack_%j.out",
                 f"#SBATCH --error={logs}/cnn_crack_%j.err"):
        assert line in script.splitlines()
    assert "srun" not in script                      # use_srun=False: the logs are ours
    assert "-m submitit.core._submit" in script
    # Python replaces the batch shell, so Slurm's SIGTERM (scancel, time limit, requeue) reaches it
    assert any(l.startswith("exec ") and "-m submitit.core._submit" in l for l in script.splitlines())
    assert "--wckey" not in script
    assert not crackops_dirs["logs"].exists() or not any(crackops_dirs["logs"].iterdir())  # nothing submitted


_LOGGING_PROBE = r"""
import io, logging, sys
from pathlib import Path

class ClosingHandler(logging.StreamHandler):
    # like absl's handler (TensorFlow installs it): close() closes the stream it holds
    def close(self):
        self.stream.close()
        super().close()

held = io.StringIO()
handler = ClosingHandler(held)
logging.getLogger().addHandler(handler)
from crackops.backends.base import Submission
from crackops.backends.slurm import SlurmBackend
from crackops.config import Resources, TrainConfig
from crackops.backends.slurm import array_script as slurm_array_script

assert "submitit" not in sys.modules
sub = Submission(config=TrainConfig(data_dir="d"), resources=Resources(), logs_dir=Path(sys.argv[1]), fn=print)
if sys.argv[2] == "dry_run":
    assert "#SBATCH" in SlurmBackend().dry_run(sub)
else:
    assert "#SBATCH --array" in slurm_array_script(Resources(), Path(sys.argv[1]), 3, 2)
assert "submitit" in sys.modules
assert not held.closed, "importing submitit closed a logging handler's stream"
assert handler in logging.getLogger().handlers, logging.getLogger().handlers
assert logging.getLogger("submitit").handlers == [], logging.getLogger("submitit").handlers
assert "SUBMITIT_LOG_LEVEL" not in __import__("os").environ
print("ok")
"""


@pytest.mark.parametrize("first", ["dry_run", "sweep_array_script"])
def test_submitit_import_leaves_the_process_logging_alone(tmp_path, first):
    """submitit's import runs ``logging.config.dictConfig``: it closed every handler the process had
    (absl's closes its stream: under a swapped ``sys.stderr`` that was pytest's capture file) and bound
    new ones to the streams of that moment. crackops imports it without that set-up."""
    env = {k: v for k, v in os.environ.items() if k != "SUBMITIT_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, "-c", _LOGGING_PROBE, str(tmp_path), first], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_dry_run_maps_all_resources(crackops_dirs):
    res = dict(cpus=2, mem="1500M", time="1-00:00:00", partition="batch", account="lab", qos="normal",
               gres="gpu:1", job_name="sweep", extra={"constraint": "avx512", "exclusive": True,
                                                      "setup": ["module load cuda"]})
    script = SlurmBackend().dry_run(submission(crackops_dirs, slurm_jobs.hello, **res)).splitlines()
    for line in ("#SBATCH --cpus-per-task=2", "#SBATCH --mem=1500M", "#SBATCH --time=1440",
                 "#SBATCH --partition=batch", "#SBATCH --account=lab", "#SBATCH --qos=normal",
                 "#SBATCH --gres=gpu:1", "#SBATCH --job-name=sweep", "#SBATCH --constraint=avx512",
                 "#SBATCH --exclusive", "module load cuda"):
        assert line in script
    assert any(l.endswith("/sweep_%j.out") for l in script)


def fake_slurm_bin(tmp_path, sbatch_body="sleep 30"):
    """A PATH dir whose sbatch/srun/sacct/squeue run ``sbatch_body`` (no cluster needed)."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("sbatch", "srun", "sacct", "squeue", "scancel"):
        (d / tool).write_text(f"#!/bin/sh\n{sbatch_body}\n")
        (d / tool).chmod(0o755)
    return d


def test_slurm_conf_pointing_at_nothing_fails_fast_and_says_so(tmp_path, monkeypatch, crackops_dirs):
    from typer.testing import CliRunner

    from crackops.cli import app
    from crackops.registry import Registry
    from helpers import assert_clean_error

    monkeypatch.setenv("PATH", f"{fake_slurm_bin(tmp_path)}:{os.environ['PATH']}")   # a blocking sbatch
    missing = tmp_path / "nowhere" / "slurm.conf"
    monkeypatch.setenv("SLURM_CONF", str(missing))
    t0 = time.monotonic()
    with pytest.raises(BackendError) as e:
        SlurmBackend().submit(submission(crackops_dirs, slurm_jobs.hello, **SMALL))
    assert time.monotonic() - t0 < 5
    assert "SLURM_CONF" in e.value.message and str(missing) in e.value.message
    assert "--cpus" not in str(e.value)
    from PIL import Image

    d = tmp_path / "d"
    for cls in ("positive", "negative"):
        (d / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (32, 32), (i * 20, 9 if cls == "positive" else 200, 0)).save(d / cls / f"{i}.jpg")
    res = CliRunner().invoke(app, ["submit", "--backend", "slurm", "--data", str(d), "--dry-run"])
    assert res.exit_code == 0, res.output      # a dry run needs no cluster
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["submit", "--backend", "slurm", "--data", str(d)])
    assert_clean_error(res, 5, "SLURM_CONF", str(missing))
    assert "--cpus" not in res.output and time.monotonic() - t0 < 10
    assert Registry().list() == []
    # unreadable is the same story
    missing.parent.mkdir()
    missing.write_text("ClusterName=x\n")
    missing.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(BackendError, match="SLURM_CONF"):
            SlurmBackend().submit(submission(crackops_dirs, slurm_jobs.hello, **SMALL))


def test_sbatch_failures_that_are_not_about_resources_do_not_blame_them():
    from crackops.backends.slurm import sbatch_hint

    assert "--mem" in sbatch_hint("Memory specification can not be satisfied")
    assert "--time" in sbatch_hint("Requested time limit is invalid (missing or exceeds some limit)")
    assert "--partition" in sbatch_hint("invalid partition specified: gpu")
    for text in ("Unable to contact slurm controller (connect failure)",
                 "Could not establish a configuration source", "Invalid user id"):
        assert "--cpus" not in sbatch_hint(text), text


def test_clean_slurm_env_strips_and_restores(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_CONF", "/x/slurm.conf")
    with clean_slurm_env():
        assert "SLURM_JOB_ID" not in os.environ and os.environ["SLURM_CONF"] == "/x/slurm.conf"
    assert os.environ["SLURM_JOB_ID"] == "12"


# ------------------------------------------------------------------ against the cluster

@pytest.mark.slurm
def test_default_profile_completes_with_named_logs(slurm_cluster, timeout_job, crackops_dirs):
    be = CountingBackend()
    run = submit(be, crackops_dirs, slurm_jobs.hello)           # 4 CPUs, 16 GB, 4 h
    u = wait_terminal(be, [run])[run.job_id]
    assert u.state == "COMPLETED", u
    assert u.exit_code == "0:0" and u.reason is None
    assert u.started_at and u.ended_at and u.ended_at >= u.started_at
    acc = u.accounting
    assert (acc["alloc_cpus"], acc["req_mem_mb"], acc["timelimit_s"]) == (4, 16384.0, 14400.0)
    assert json.loads(json.dumps(acc)) == acc
    out, err = Path(run.log_out), Path(run.log_err)
    assert out.name == f"cnn_crack_{run.job_id}.out" and err.name == f"cnn_crack_{run.job_id}.err"
    assert out.parent == crackops_dirs["logs"].resolve()
    assert f"hello from job {run.job_id} out={crackops_dirs['out'].resolve()}/{run.job_id}" in out.read_text()
    assert "a line on stderr" in err.read_text()
    status = json.loads((Path(run.out_dir) / "status.json").read_text())
    assert status["phase"] == "completed" and status["job_id"] == run.job_id
    # every refresh was exactly one sacct call
    assert be.count("sacct") == len(be.commands) and be.count("squeue") == 0


@pytest.mark.slurm
def test_accounting_numbers_from_step_rows(slurm_cluster, crackops_dirs):
    be = SlurmBackend()
    run = submit(be, crackops_dirs, slurm_jobs.burn, cpus=2, mem="2G", time="10:00")
    u = wait_terminal(be, [run])[run.job_id]
    assert u.state == "COMPLETED"
    acc = u.accounting
    assert acc["max_rss_mb"] > 140 and acc["max_rss_mb"] < 2048      # the 150 MB block was seen
    assert acc["total_cpu_s"] > 0.5                 # a 4 s busy loop (on a shared, busy 2-core box)
    assert acc["elapsed_s"] >= 4 and acc["alloc_cpus"] == 2
    assert acc["cpu_eff"] == round(acc["total_cpu_s"] / (2 * acc["elapsed_s"]), 4)
    assert 0.05 < acc["cpu_eff"] <= 1.0
    assert acc["mem_eff"] == pytest.approx(acc["max_rss_mb"] / 2048, abs=1e-3)
    assert "batch" in acc["steps"]
    assert any(h.startswith("asked 0:10:00, ran") for h in acc["hints"])


@pytest.mark.slurm
def test_failure_has_reason_and_traceback_in_err(slurm_cluster, crackops_dirs):
    be = SlurmBackend()
    run = submit(be, crackops_dirs, slurm_jobs.boom, **SMALL)
    u = wait_terminal(be, [run])[run.job_id]
    assert u.state == "FAILED"
    assert u.reason == "ValueError: synthetic failure for the test"
    assert u.exit_code == "1:0"
    err = Path(run.log_err).read_text()
    assert "Traceback (most recent call last)" in err and "ValueError: synthetic failure for the test" in err
    assert "about to fail" in Path(run.log_out).read_text()


@pytest.mark.slurm
def test_completed_job_whose_status_says_failed_is_failed(slurm_cluster, crackops_dirs):
    be = SlurmBackend()
    run = submit(be, crackops_dirs, slurm_jobs.hello, **SMALL)
    assert wait_terminal(be, [run])[run.job_id].state == "COMPLETED"
    p = Path(run.out_dir) / "status.json"
    st = json.loads(p.read_text())
    st.update(phase="failed", error="RuntimeError: loss is NaN\n")
    p.write_text(json.dumps(st))
    u = be.refresh([run]).updates[run.job_id]
    assert (u.state, u.reason) == ("FAILED", "RuntimeError: loss is NaN")


@pytest.mark.slurm
def test_cancel_gives_cancelled(slurm_cluster, crackops_dirs, monkeypatch):
    monkeypatch.setenv("CRACKOPS_TEST_SLEEP", "300")
    be = CountingBackend()
    runs = [submit(be, crackops_dirs, slurm_jobs.sleepy, **SMALL) for _ in range(2)]
    wait_state(be, runs[0], "RUNNING")
    be.commands.clear()
    be.cancel(runs)
    assert be.commands == [["scancel", runs[0].job_id, runs[1].job_id]]       # one call for all
    ups = wait_terminal(be, runs, timeout=30)
    for r in runs:
        assert ups[r.job_id].state == "CANCELLED"
        assert ups[r.job_id].reason == "cancelled by root"
    be.cancel(runs)                                                           # already over: no error


@pytest.mark.slurm
def test_one_sacct_call_for_many_runs_and_arrays(slurm_cluster, crackops_dirs):
    be = CountingBackend()
    subs = [submission(crackops_dirs, slurm_jobs.hello, **SMALL) for _ in range(5)]
    array = [as_run(s, d) for s, d in zip(subs, be.submit_array(subs))]
    base = array[0].job_id.split("_")[0]
    assert [r.job_id for r in array] == [f"{base}_{i}" for i in range(5)]
    singles = [submit(be, crackops_dirs, slurm_jobs.hello, **SMALL) for _ in range(3)]
    runs = array + singles
    ups = wait_terminal(be, runs, timeout=90)
    assert all(ups[r.job_id].state == "COMPLETED" for r in runs)
    be.commands.clear()
    res = be.refresh(runs)
    assert res.calls == 1 and res.source == "sacct" and len(be.commands) == 1
    cmd = be.commands[0]
    assert cmd[0] == "sacct" and cmd[-2] == "-j"
    assert cmd[-1] == ",".join([base] + [r.job_id for r in singles])          # the array as one id
    assert any(a.startswith("--starttime=") for a in cmd)
    assert {k: u.state for k, u in res.updates.items()} == {r.job_id: "COMPLETED" for r in runs}
    for r in array:                                                           # array logs named right
        assert Path(r.log_out).name == f"cnn_crack_{r.job_id}.out"
        assert f"out={crackops_dirs['out'].resolve()}/{r.job_id}" in Path(r.log_out).read_text()


@pytest.mark.slurm
def test_no_row_yet_is_not_finished(slurm_cluster, crackops_dirs):
    be = SlurmBackend()
    run = submit(be, crackops_dirs, slurm_jobs.hello, **SMALL)
    u = be.refresh([run]).updates.get(run.job_id)         # sacct lags 2-4 s behind sbatch
    assert u is None or u.state not in TERMINAL_STATES
    wait_terminal(be, [run])


@pytest.mark.slurm
def test_submitting_with_inherited_slurm_variables(slurm_cluster, crackops_dirs, monkeypatch):
    # what a process inside an array task sees; without stripping, the child would think it is
    # task 999_7 and write to out/999_7
    for k, v in {"SLURM_JOB_ID": "998", "SLURM_ARRAY_JOB_ID": "999", "SLURM_ARRAY_TASK_ID": "7",
                 "SLURM_MEM_PER_CPU": "1", "SLURM_CPUS_PER_TASK": "1", "SLURM_NTASKS": "3"}.items():
        monkeypatch.setenv(k, v)
    be = SlurmBackend()
    run = submit(be, crackops_dirs, slurm_jobs.hello, **SMALL)
    assert os.environ["SLURM_ARRAY_TASK_ID"] == "7"                       # restored after submit
    assert wait_terminal(be, [run])[run.job_id].state == "COMPLETED"
    assert (Path(run.out_dir) / "status.json").exists()
    assert not (crackops_dirs["out"] / "999_7").exists()
    env = (Path(run.out_dir) / "env.txt").read_text()
    assert f"SLURM_JOB_ID={run.job_id}" in env and "SLURM_ARRAY_TASK_ID" not in env


@pytest.mark.slurm
def test_submitting_from_inside_a_slurm_job(slurm_cluster, crackops_dirs):
    be = SlurmBackend()
    parent = submit(be, crackops_dirs, slurm_jobs.submit_child, **SMALL)
    assert wait_terminal(be, [parent])[parent.job_id].state == "COMPLETED", Path(parent.log_err).read_text()
    child_id = (Path(parent.out_dir) / "child.txt").read_text().strip()
    assert child_id != parent.job_id
    logs = crackops_dirs["logs"]
    child = Run(job_id=child_id, backend="slurm", state="PENDING", config={}, resources=Resources(**SMALL).to_dict(),
                submitted_at=time.time(), out_dir=str(crackops_dirs["out"].resolve() / child_id),
                log_out=str(logs / f"cnn_crack_{child_id}.out"), log_err=str(logs / f"cnn_crack_{child_id}.err"))
    assert wait_terminal(be, [child])[child_id].state == "COMPLETED"
    assert f"hello from job {child_id}" in Path(child.log_out).read_text()


@pytest.mark.slurm
def test_refused_request_is_a_backend_error(slurm_cluster, crackops_dirs):
    be = SlurmBackend()
    with pytest.raises(BackendError, match="sbatch refused the job: .*Memory specification"):
        be.submit(submission(crackops_dirs, slurm_jobs.hello, cpus=1, mem="1000G", time="5:00"))
    with pytest.raises(BackendError, match="time limit"):
        be.submit(submission(crackops_dirs, slurm_jobs.hello, cpus=1, mem="1G", time="30-00:00:00"))


@pytest.mark.slurm
def test_accounting_down_falls_back_to_squeue_and_artifacts(slurm_cluster, crackops_dirs):
    be = CountingBackend()
    done = submit(be, crackops_dirs, slurm_jobs.hello, **SMALL)
    assert wait_terminal(be, [done])[done.job_id].state == "COMPLETED"
    # a run the controller has forgotten, known only from its artifacts
    gone_dir = crackops_dirs["out"] / "987654"
    gone_dir.mkdir(parents=True)
    (gone_dir / "status.json").write_text(json.dumps({"phase": "failed", "error": "OSError: disk full",
                                                      "started_at": 1.0, "ended_at": 2.0}))
    gone = Run(job_id="987654", backend="slurm", state="RUNNING", config={}, resources=Resources().to_dict(),
               submitted_at=time.time() - 100, out_dir=str(gone_dir))
    local_slurm("stop-dbd", timeout=60)
    try:
        be.commands.clear()
        res = be.refresh([done, gone])
    finally:
        local_slurm("start-dbd", timeout=120)
    assert res.source == "squeue+artifacts"
    assert res.warning.startswith("sacct failed: ") and "Connection refused" in res.warning
    assert res.calls == 2 and [Path(c[0]).name for c in be.commands] == ["sacct", "squeue"]
    assert res.updates[done.job_id].state == "COMPLETED"                 # squeue --states=all
    assert (res.updates["987654"].state, res.updates["987654"].reason) == ("FAILED", "OSError: disk full")
    # and back to normal
    assert be.refresh([done]).source == "sacct"


@pytest.mark.slurm
def test_time_limit_gives_timeout(slurm_cluster, timeout_job):
    run, _dirs = timeout_job
    be = SlurmBackend()
    u = wait_terminal(be, [run], timeout=180)[run.job_id]
    assert u.state == "TIMEOUT"
    assert u.reason == "reached its time limit (0:01:00)"
    assert u.accounting["timelimit_s"] == 60.0 and u.accounting["elapsed_s"] >= 60
    assert u.accounting["hints"][0].startswith("hit the 0:01:00 time limit")
    assert "sleeping" in Path(run.log_out).read_text()
    # the job's Python process got Slurm's SIGTERM (the batch script execs it) and said so before the end
    assert json.loads((Path(run.out_dir) / "status.json").read_text())["phase"] == "interrupted"


# ------------------------------------------------------------------ refresh logic over captured outputs
# (no cluster needed: the scheduler commands answer with what the real one printed)

DATA = Path(__file__).parent / "data" / "sacct"


#: "now" for the canned outputs: 2 minutes after the fixture runs' submit time (within the grace)
CANNED_NOW = time.mktime(time.strptime("2026-11-25T17:55:02", "%Y-%m-%dT%H:%M:%S"))


class CannedBackend(SlurmBackend):
    def __init__(self, answers, now=CANNED_NOW):
        super().__init__()
        self.answers = dict(answers)            # tool name -> (rc, stdout, stderr)
        self.commands: list[list[str]] = []
        self.clock = lambda: now

    def _run(self, cmd):
        self.commands.append(list(cmd))
        return self.answers[Path(cmd[0]).name]


def fixture_run(job_id: str, out_root: Path, *, submitted="2026-11-25T17:53:02", job_name="cnn_crack",
                state="PENDING") -> Run:
    t = time.mktime(time.strptime(submitted, "%Y-%m-%dT%H:%M:%S"))
    return Run(job_id=job_id, backend="slurm", state=state, config={},
               resources=Resources(job_name=job_name).to_dict(), submitted_at=t,
               out_dir=str(out_root / job_id), log_err=f"/logs/{job_name}_{job_id}.err")


def test_refresh_maps_sacct_rows(tmp_path):
    be = CannedBackend({"sacct": (0, (DATA / "mixed.txt").read_text(), "")})
    names = {"1": "ok", "2": "fail3", "3": "cancelme", "4": "timeout", "5": "held", "7": "big", "13": "pendcancel",
             "6_1": "arr", "15": "race"}
    runs = [fixture_run(j, tmp_path, job_name=n) for j, n in names.items()]
    runs.append(fixture_run("99", tmp_path, job_name="x"))                  # no row yet
    res = be.refresh(runs)
    assert res.calls == 1 and res.source == "sacct" and res.warning is None
    u = res.updates
    assert "99" not in u
    assert (u["1"].state, u["1"].reason, u["1"].exit_code) == ("COMPLETED", None, "0:0")
    assert u["1"].accounting["max_rss_mb"] == pytest.approx(313.113, abs=1e-3)
    assert (u["2"].state, u["2"].reason) == ("FAILED", "exit code 3:0; see /logs/fail3_2.err")
    assert (u["3"].state, u["3"].reason) == ("CANCELLED", "cancelled by root")
    assert (u["4"].state, u["4"].reason) == ("TIMEOUT", "reached its time limit (0:01:00)")
    assert (u["5"].state, u["5"].reason, u["5"].accounting) == ("PENDING", "JobHeldUser", None)
    assert (u["7"].state, u["7"].ended_at) == ("RUNNING", None) and u["7"].started_at is not None
    assert (u["13"].state, u["13"].started_at) == ("CANCELLED", None)
    assert u["6_1"].state == "COMPLETED"
    assert u["15"].state == "PENDING"
    cmd = be.commands[0]   # 24 h before the oldest run's submission, as a duration before sacct's clock
    oldest = min(r.submitted_at for r in runs)
    n = int(cmd[4].removeprefix("--starttime=now-").removesuffix("seconds"))
    assert n == int(be.clock() - oldest + 86400), cmd[4]


def test_refresh_reused_id_is_not_taken_for_a_new_run(tmp_path):
    be = CannedBackend({"sacct": (0, (DATA / "mixed.txt").read_text(), "")})
    later = fixture_run("2", tmp_path, job_name="fail3", submitted="2026-11-26T09:00:00")
    other_name = fixture_run("1", tmp_path, job_name="cnn_crack")
    assert be.refresh([later, other_name]).updates == {}


def test_no_accounting_record_past_the_grace_period_is_unknown(tmp_path):
    """A job sacct never shows (lost submission, purged record) is not PENDING forever: after
    NO_RECORD_GRACE_S it is UNKNOWN with why, unless squeue still lists it."""
    from crackops.backends.slurm import NO_RECORD_GRACE_S

    assert NO_RECORD_GRACE_S == 600
    sacct = (0, (DATA / "mixed.txt").read_text(), "")
    lost = fixture_run("99", tmp_path, job_name="x")
    young = CannedBackend({"sacct": sacct}, now=lost.submitted_at + NO_RECORD_GRACE_S - 5)
    assert "99" not in young.refresh([lost]).updates and len(young.commands) == 1     # not yet: no guess
    old = CannedBackend({"sacct": sacct, "squeue": (1, "", "slurm_load_jobs error: Invalid job id specified\n")},
                        now=lost.submitted_at + NO_RECORD_GRACE_S + 5)
    res = old.refresh([lost])
    u = res.updates["99"]
    assert u.state == "UNKNOWN" and u.state not in TERMINAL_STATES          # still asked about later
    assert "no accounting record" in u.reason and "10 min" in u.reason and "squeue" in u.reason
    assert [Path(c[0]).name for c in old.commands] == ["sacct", "squeue"] and res.calls == 2
    # the controller still knows it (accounting lagging behind): squeue's state, no guess
    queued = CannedBackend({"sacct": (0, "", ""), "squeue": (0, (DATA / "squeue_mixed.txt").read_text(), "")},
                           now=time.time() + 10 * NO_RECORD_GRACE_S)
    waiting = fixture_run("8", tmp_path, job_name="waiting")
    assert queued.refresh([waiting]).updates["8"].state == "PENDING"


def test_no_record_grace_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("CRACKOPS_NO_RECORD_GRACE", "60")
    lost = fixture_run("99", tmp_path, job_name="x")
    be = CannedBackend({"sacct": (0, "", ""), "squeue": (1, "", "Invalid job id specified")},
                       now=lost.submitted_at + 61)
    assert be.refresh([lost]).updates["99"].state == "UNKNOWN"
    monkeypatch.setenv("CRACKOPS_NO_RECORD_GRACE", "soon")
    from crackops.errors import UsageError

    with pytest.raises(UsageError, match="CRACKOPS_NO_RECORD_GRACE"):
        be.refresh([lost])


def test_refresh_status_json_refines_sacct(tmp_path):
    be = CannedBackend({"sacct": (0, (DATA / "submitit_jobs.txt").read_text(), "")})
    ok = fixture_run("21", tmp_path, submitted="2026-11-25T17:59:38")
    (tmp_path / "21").mkdir()
    (tmp_path / "21" / "status.json").write_text(json.dumps({"phase": "failed", "error": "KeyError: 'x'"}))
    to = fixture_run("23", tmp_path, submitted="2026-11-25T18:01:51")
    u = be.refresh([ok, to]).updates
    assert (u["21"].state, u["21"].reason) == ("FAILED", "KeyError: 'x'")
    assert u["21"].accounting["alloc_cpus"] == 4 and u["21"].accounting["req_mem_mb"] == 16384.0
    assert (u["23"].state, u["23"].exit_code) == ("TIMEOUT", "0:0")
    assert u["23"].accounting["max_rss_mb"] == 42.754
    assert u["21"].accounting["hints"] == []          # no right-sizing from a crashed run


def test_refresh_incomplete_record_stays_live(tmp_path):
    be = CannedBackend({"sacct": (0, (DATA / "incomplete_after_dbd_restart.txt").read_text(), "")})
    run = fixture_run("16", tmp_path, job_name="whiledown", submitted="2026-11-25T17:55:44")
    u = be.refresh([run]).updates["16"]
    assert u.state == "COMPLETING" and u.state not in TERMINAL_STATES
    assert u.reason == "Slurm says COMPLETED; its accounting record is not complete yet"


@pytest.mark.parametrize("error_file", ["error_accounting_disabled.txt", "error_slurmdbd_down.txt"])
def test_refresh_falls_back_when_sacct_fails(tmp_path, error_file):
    err = (DATA / error_file).read_text()
    be = CannedBackend({"sacct": (1, "", err), "squeue": (0, (DATA / "squeue_mixed.txt").read_text(), "")})
    runs = [fixture_run("4", tmp_path, job_name="timeout"), fixture_run("8", tmp_path, job_name="waiting"),
            fixture_run("7", tmp_path, job_name="big"), fixture_run("2", tmp_path, job_name="fail3")]
    for jid, st in {"77": {"phase": "completed", "started_at": 1.0, "ended_at": 5.0},
                    "78": {"phase": "running", "started_at": 1.0}}.items():
        (tmp_path / jid).mkdir()
        (tmp_path / jid / "status.json").write_text(json.dumps(st))
        runs.append(fixture_run(jid, tmp_path))
    runs.append(fixture_run("79", tmp_path))                                 # nothing anywhere
    res = be.refresh(runs)
    assert res.source == "squeue+artifacts" and res.calls == 2
    line = "Slurm accounting storage is disabled" if "disabled" in error_file else \
        "Problem talking to the database: Connection refused"
    assert res.warning == f"sacct failed: {line} (showing squeue + artifacts)"
    u = res.updates
    assert (u["4"].state, u["4"].reason) == ("TIMEOUT", "reached its time limit (0:01:00)")
    assert (u["8"].state, u["8"].reason) == ("PENDING", "Resources")
    assert (u["7"].state, u["7"].ended_at) == ("RUNNING", None)
    assert (u["2"].state, u["2"].reason) == ("FAILED", "NonZeroExitCode; see /logs/fail3_2.err")
    assert (u["77"].state, u["77"].started_at, u["77"].ended_at) == ("COMPLETED", 1.0, 5.0)
    assert u["78"].state == "UNKNOWN" and "no longer lists" in u["78"].reason
    assert u["79"].state == "UNKNOWN" and "no status.json" in u["79"].reason
    assert [Path(c[0]).name for c in be.commands] == ["sacct", "squeue"]
    assert be.commands[1][-1] == "4,8,7,2,77,78,79"


def test_refresh_when_squeue_fails_too(tmp_path):
    be = CannedBackend({"sacct": (127, "", "sacct: command not found"),
                        "squeue": (1, "", "squeue: error: Unable to contact slurm controller (connect failure)")})
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "status.json").write_text(json.dumps({"phase": "running", "started_at": 3.0}))
    res = be.refresh([fixture_run("5", tmp_path), fixture_run("6", tmp_path)])
    assert res.source == "artifacts"
    assert res.warning == ("sacct failed: sacct: command not found; squeue failed too: Unable to contact slurm "
                           "controller (connect failure) (showing artifacts only)")
    assert res.updates["5"].state == "RUNNING" and "6" not in res.updates


def test_refresh_squeue_knows_none_of_the_ids(tmp_path):
    be = CannedBackend({"sacct": (1, "", (DATA / "error_slurmdbd_down.txt").read_text()),
                        "squeue": (1, "", "slurm_load_jobs error: Invalid job id specified\n")})
    res = be.refresh([fixture_run("5", tmp_path)])
    assert res.source == "squeue+artifacts" and res.updates["5"].state == "UNKNOWN"


def test_refresh_nothing_to_do():
    be = CannedBackend({})
    res = be.refresh([])
    assert (res.updates, res.calls) == ({}, 0) and be.commands == []


def test_cancel_errors(tmp_path):
    runs = [fixture_run("5", tmp_path), fixture_run("6", tmp_path)]
    be = CannedBackend({"scancel": (1, "", "scancel: error: Kill job error on job id 5: Job/step already "
                                           "completing or completed\n")})
    be.cancel(runs)                                                           # already over: fine
    assert be.commands == [["scancel", "5", "6"]]
    be = CannedBackend({"scancel": (1, "", "scancel: error: Unable to contact slurm controller (connect failure)\n")})
    with pytest.raises(BackendError, match="scancel failed: Unable to contact slurm controller"):
        be.cancel(runs)
    be = CannedBackend({"scancel": (127, "", "scancel: command not found")})
    with pytest.raises(BackendError):
        be.cancel(runs)
