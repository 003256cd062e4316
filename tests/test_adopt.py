"""Pieces of the fault handling that need no cluster: finding a lost submission's job in sacct and
squeue text, recording it exactly once, dropping one never accepted, and `status` exiting 5 while
the controller does not answer (tests/test_faults.py does all of it on the real Slurm)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from crackops import api
from crackops.backends.base import RefreshResult, StateUpdate, Submitted
from crackops.backends.slurm import CONTROLLER_DOWN, SlurmBackend
from crackops.config import Resources, TrainConfig
from crackops.errors import BackendError, UsageError
from crackops.registry import Registry, Run
from crackops.slurm.adopt import build_find_sacct_command, build_find_squeue_command, match_submissions
from helpers import invoke, make_run, FakeBackend

SID, OTHER = "0123456789abcdef", "fedcba9876543210"


def test_match_submissions_by_the_submissions_own_folder():
    sacct = "\n".join([
        f"300001|cnn_crack|2026-12-01T17:00:36|sbatch /h/.crackops/submitit/{OTHER}/.submission_file_a.sh",
        f"300002|cnn_crack|2026-12-01T17:00:37|sbatch /h/.crackops/submitit/{SID}/.submission_file_b.sh",
        f"300002.batch|batch|2026-12-01T17:00:37|sbatch /h/.crackops/submitit/{SID}/x.sh",
        f"300003|cnn_crack|2026-12-01T17:00:38|sbatch /h/.crackops/submitit/{SID}x/.s.sh",   # another folder
        "garbage without a bar", "|no id|", f"abc|cnn_crack||/{SID}/",
    ])
    assert match_submissions(sacct, [SID]) == {SID: "300002"}
    assert match_submissions(sacct, [SID, OTHER]) == {SID: "300002", OTHER: "300001"}
    assert match_submissions("", [SID]) == {}
    squeue = f"300007_3|cnn_crack|/h/.crackops/submitit/{SID}/.submission_file_c.sh\n"
    assert match_submissions(squeue, [SID]) == {SID: "300007_3"}
    cmd = build_find_sacct_command(["cnn_crack", "b", "cnn_crack"], "2026-12-01T16:50:00")
    assert cmd[-1] == "--name=b,cnn_crack" and "--format=JobID,JobName,Submit,SubmitLine" in cmd and "-X" in cmd
    assert build_find_squeue_command(["x"])[-2:] == ["--format=%i|%j|%o", "--name=x"]


def pending_run(reg: Registry, sid: str = SID, *, holder: str = "1@elsewhere", created_at: float | None = None):
    reg.add_pending(sid, "slurm", "cnn_crack", time.time() if created_at is None else created_at, holder,
                    {"name": "lost", "config": {**make_run("x").config, "submission_id": sid, "out_root": "/tmp/o"},
                     "resources": {"job_name": "cnn_crack"}, "logs_dir": "/tmp/logs", "fn": "m.f", "provenance": None})


def run_for(sid: str, job_id: str = "4242") -> Run:
    r = make_run(job_id, state="PENDING", backend="slurm", submission_id=sid)
    return r


def test_exactly_one_of_submitter_and_adopter_records_the_run():
    reg = Registry()
    pending_run(reg)
    adopted = reg.record_submission(run_for(SID), SID, adopting=True)
    assert adopted is not None and reg.pending() == []
    late = reg.record_submission(run_for(SID), SID)              # the submitter, finishing after all
    assert late is not None and late.run_key == adopted.run_key
    assert len(reg.list()) == 1
    pending_run(reg, OTHER)
    mine = reg.record_submission(run_for(OTHER, "4243"), OTHER)
    assert reg.record_submission(run_for(OTHER, "4243"), OTHER, adopting=True) is None
    assert [r.job_id for r in reg.list()] == ["4242", "4243"] and reg.get("4243").run_key == mine.run_key


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture(autouse=True)
def no_search_budget(monkeypatch):
    """These tests search again and again within seconds; the search's budget has its own test."""
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")


class Finder(SlurmBackend):
    """The Slurm backend, whose find_submissions answers as given instead of asking sacct."""

    def __init__(self, found=None, error=None):
        super().__init__()
        self.found, self.error, self.asked = found or {}, error, []

    def find_submissions(self, pending):
        self.asked.append([p["submission_id"] for p in pending])
        return dict(self.found), self.error


def with_backend(monkeypatch, be):

    monkeypatch.setattr("crackops.backends.get_backend", lambda name: be)


def test_a_dead_submitters_job_is_adopted_once(monkeypatch, crackops_dirs):
    import socket

    reg = Registry()
    pending_run(reg, holder=f"{dead_pid()}@{socket.gethostname()}")
    be = Finder({SID: "4242"})
    with_backend(monkeypatch, be)
    res = api.adopt_submissions(reg)
    (run,) = res.runs
    assert (run.job_id, run.name, run.state, run.backend) == ("4242", "lost", "PENDING", "slurm")
    assert run.out_dir == "/tmp/o/4242" and run.log_out == "/tmp/logs/cnn_crack_4242.out"
    assert run.config["submission_id"] == SID and "ended after sbatch" in run.extra["adopted"]
    assert any("adopted job 4242" in w for w in res.warnings)
    assert api.adopt_submissions(reg).runs == [] and be.asked == [[SID]]      # done: nobody asks again
    assert [r.job_id for r in reg.list()] == ["4242"]


def test_a_live_submitter_is_left_alone_and_an_unknown_job_is_not_guessed(monkeypatch, crackops_dirs):
    import os
    import socket

    reg = Registry()
    pending_run(reg, holder=f"{os.getpid()}@{socket.gethostname()}")            # alive, just started
    be = Finder()
    with_backend(monkeypatch, be)
    assert api.adopt_submissions(reg).warnings == [] and be.asked == []
    # its process gone, the job not found: within the grace period, keep looking
    monkeypatch.setenv("CRACKOPS_NO_RECORD_GRACE", "600")
    res = api.adopt_submissions(reg, now=time.time() + api.ADOPT_AFTER_S + 1)
    assert "keeps looking" in res.warnings[0] and len(reg.pending()) == 1
    # the scheduler could not be asked: whatever the age, nothing is concluded
    be.error = "sacct failed: Connection refused"
    res = api.adopt_submissions(reg, now=time.time() + 10_000)
    assert "Connection refused" in res.warnings[0] and len(reg.pending()) == 1
    # asked, not known, past the grace period: never accepted, dropped
    be.error = None
    res = api.adopt_submissions(reg, now=time.time() + 10_000)
    assert "never accepted" in res.warnings[0] and reg.pending() == [] and reg.list() == []


class Refusing(FakeBackend):
    name = "slurm"
    finds_submissions = True

    def __init__(self, exc):
        self.exc = exc

    def submit(self, sub):
        raise self.exc


def test_submit_notes_the_submission_and_forgets_it_only_when_nothing_was_submitted(monkeypatch, crackops_dirs):
    reg = Registry()
    with_backend(monkeypatch, Refusing(BackendError("sbatch refused the job: bad partition")))
    with pytest.raises(BackendError):
        api.submit(TrainConfig(data_dir="unused"), Resources(), backend="slurm", fn=print, check_data=False,
                   registry=reg)
    assert reg.pending() == []
    with_backend(monkeypatch, Refusing(KeyboardInterrupt()))      # interrupted inside sbatch: maybe accepted
    with pytest.raises(KeyboardInterrupt):
        api.submit(TrainConfig(data_dir="unused"), Resources(), backend="slurm", fn=print, check_data=False,
                   registry=reg, name="interrupted")
    (p,) = reg.pending()
    assert p["run"]["name"] == "interrupted" and p["job_name"] == "cnn_crack"


class Accepting(Refusing):
    def __init__(self):
        pass

    def submit(self, sub):
        assert len(Registry().pending()) == 1         # noted before the scheduler is asked
        return Submitted(job_id="555", log_out=sub.logs_dir / "cnn_crack_555.out",
                         log_err=sub.logs_dir / "cnn_crack_555.err")


def test_a_normal_submit_leaves_no_pending_row(monkeypatch, crackops_dirs):
    with_backend(monkeypatch, Accepting())
    run = api.submit(TrainConfig(data_dir="unused"), Resources(), backend="slurm", fn=print, check_data=False)
    reg = Registry()
    assert reg.pending() == [] and [r.job_id for r in reg.list()] == [run.job_id] == ["555"]


# ---------------------------------------------------------------- the controller does not answer

class PingBackend(SlurmBackend):
    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def _run(self, cmd):
        return self.answer


def test_controller_problem_reads_scontrol_ping():
    down = (1, "Slurmctld(primary) at vm is DOWN\n*****\n** RESTORE SLURMCTLD DAEMON TO SERVICE **\n", "")
    msg = PingBackend(down).controller_problem()
    assert msg.startswith(CONTROLLER_DOWN) and "at vm is DOWN" in msg and "RESTORE" not in msg
    assert PingBackend((0, "Slurmctld(primary) at vm is UP\n", "")).controller_problem() is None
    assert PingBackend((127, "", "scontrol: command not found")).controller_problem() is None   # cannot ask
    assert CONTROLLER_DOWN in PingBackend((1, "", "scontrol: error: Unable to contact")).controller_problem()


def test_status_exits_5_while_the_controller_is_down_in_every_process(monkeypatch):
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "30")
    monkeypatch.setattr(SlurmBackend, "refresh", lambda self, runs: RefreshResult(
        updates={r.job_id: StateUpdate(state="RUNNING") for r in runs}, source="sacct", calls=1))
    monkeypatch.setattr(SlurmBackend, "controller_problem", lambda self: f"{CONTROLLER_DOWN}: scontrol ping says 'DOWN'")
    Registry().add(make_run("101", state="PENDING", backend="slurm", submitted_at=time.time()))
    res = invoke("status")
    assert res.exit_code == 5, res.output
    assert "does not answer" in res.output and "101" in res.output and "RUNNING" in res.output
    assert "Traceback" not in res.output
    # other processes within the interval are served from the registry: they say so too
    res = invoke("status", "--json")
    assert res.exit_code == 5 and "does not answer" in res.output and "asks again" in res.output, res.output
    Registry().update("101", refreshed_at=None)                  # not fresh: claims, denied (backed off)
    res = invoke("status", "--json")
    assert res.exit_code == 5 and "does not answer" in res.output and "asks again" in res.output, res.output
    # once the controller answers again (and the backoff has passed), status exits 0
    monkeypatch.setattr(SlurmBackend, "controller_problem", lambda self: None)
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    res = invoke("status")
    assert res.exit_code == 0 and "does not answer" not in res.output, res.output


def test_a_job_that_already_claimed_its_out_dir_is_found_without_asking(monkeypatch, crackops_dirs, tmp_path):
    import socket

    from crackops.paths import claim_out_dir

    reg = Registry()
    pending_run(reg, holder=f"{dead_pid()}@{socket.gethostname()}")
    reg._conn.execute("UPDATE pending_submissions SET run = json_set(run, '$.config.out_root', ?)", (str(tmp_path),))
    (tmp_path / "777").mkdir()                                   # an earlier run's folder with the same id
    claimed = claim_out_dir(tmp_path, "777", SID)                # what the job did when it started
    assert claimed.name == f"777-{SID[:8]}"
    be = Finder()                                                 # the scheduler would know nothing
    with_backend(monkeypatch, be)
    (run,) = api.adopt_submissions(reg).runs
    assert run.job_id == "777" and run.out_dir == str(claimed) and be.asked == []


class ToolBackend(SlurmBackend):
    def __init__(self, answers):
        super().__init__()
        self.answers, self.asked = answers, []

    def _run(self, cmd):
        self.asked.append(cmd[0])
        return self.answers[cmd[0]]


def test_with_the_controller_down_the_fallback_reads_artifacts_without_squeues_retries(tmp_path):
    import json

    be = ToolBackend({"scontrol": (1, "Slurmctld(primary) at vm is DOWN\n", ""),
                      "sacct": (1, "", "sacct: error: Problem talking to the database: Connection refused"),
                      "squeue": (1, "", "slurm_load_jobs error: Unable to contact slurm controller")})
    run = make_run("31", state="RUNNING", backend="slurm", out_dir=str(tmp_path / "31"), submitted_at=time.time())
    (tmp_path / "31").mkdir()
    (tmp_path / "31" / "status.json").write_text(json.dumps({"phase": "running", "started_at": 5.0}))
    assert be.controller_problem().startswith(CONTROLLER_DOWN)
    res = be.refresh([run])
    assert be.asked == ["scontrol", "sacct"] and res.calls == 1 and res.source == "artifacts"
    assert "Connection refused" in res.warning and CONTROLLER_DOWN in res.warning
    assert res.updates["31"].state == "RUNNING" and "could not be asked" in res.updates["31"].reason
    # controller up again: squeue is asked as before
    be.answers["scontrol"] = (0, "Slurmctld(primary) at vm is UP\n", "")
    be.answers["squeue"] = (0, "", "")
    assert be.controller_problem() is None
    be.asked.clear()
    assert be.refresh([run]).source == "squeue+artifacts" and be.asked == ["sacct", "squeue"]


def test_status_of_a_sweep_exits_5_while_the_controller_is_down(monkeypatch):
    """``status --sweep`` keeps the promise of ``status``: the table, then the error and exit 5."""
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "0")
    monkeypatch.setattr(SlurmBackend, "refresh", lambda self, runs: RefreshResult(
        updates={r.job_id: StateUpdate(state="RUNNING") for r in runs}, source="sacct", calls=1))
    monkeypatch.setattr(SlurmBackend, "controller_problem", lambda self: f"{CONTROLLER_DOWN}: scontrol ping says 'DOWN'")
    from crackops.registry import Sweep

    runs = [make_run(f"7_{i}", state="PENDING", backend="slurm", submitted_at=time.time()) for i in range(2)]
    for r in runs:
        r.sweep_id = "S1"
    Registry().add_sweep(Sweep(sweep_id="S1", name="grid", backend="slurm", grid={"dropout": [0.1, 0.2]},
                               seeds=[42], base_config={}, resources={}, created_at=time.time()), runs)
    res = invoke("status", "--sweep", "grid")
    assert res.exit_code == 5, res.output
    assert "does not answer" in res.output and "7_1" in res.output and "RUNNING" in res.output
    res = invoke("status", "--sweep", "grid", "--json")
    import json

    assert res.exit_code == 5 and json.loads(res.stdout)["scheduler_down"].startswith(CONTROLLER_DOWN)
    monkeypatch.setattr(SlurmBackend, "controller_problem", lambda self: None)
    res = invoke("status", "--sweep", "grid")
    assert res.exit_code == 0 and "does not answer" not in res.output, res.output


# ---------------------------------------------------------------- a sweep whose submitter died

class SweepScheduler(SlurmBackend):
    """sbatch accepts the first ``accept`` arrays, then the submitter is "killed" (an exception
    nobody catches); sacct and squeue answer with the lines of what was accepted."""

    def __init__(self, accept: int, *, sacct_ok: bool = True):
        super().__init__()
        self.accept, self.sacct_ok, self.folders, self.lines, self.asked = accept, sacct_ok, [], [], []

    def submit_array(self, subs, parallelism=None, folder_id=None):
        name = subs[0].name.split("/")[0]                            # noted before sbatch, not recorded
        assert [q["run"]["sweep"]["name"] for q in Registry().pending()] == [name]
        assert name not in [s.name for s in Registry().list_sweeps()]
        self.folders.append(folder_id)
        if len(self.folders) > self.accept:
            raise KeyboardInterrupt                                 # SIGKILL stand-in: nothing after runs
        aid = str(500000 + len(self.folders))
        script = f"/h/.crackops/submitit/{folder_id}/.submission_file_{len(self.folders)}.sh"
        if len(subs) > 1:   # one task started (its own row), the rest pending (one line)
            self.lines.append(f"{aid}_0|cnn_crack|2026-12-01T17:00:37|sbatch {script}")
            self.lines.append(f"{aid}_[1-{len(subs) - 1}%2]|cnn_crack|2026-12-01T17:00:37|sbatch {script}")
        else:
            self.lines.append(f"{aid}|cnn_crack|2026-12-01T17:00:37|sbatch {script}")
        return [Submitted(job_id=f"{aid}_{i}" if len(subs) > 1 else aid, log_out=Path("/tmp/l.out"),
                          log_err=Path("/tmp/l.err")) for i in range(len(subs))]

    def _run(self, cmd):
        self.asked.append(cmd[0])
        if cmd[0] == "sacct":
            return (0, "\n".join(self.lines), "") if self.sacct_ok else (1, "", "sacct: error: Connection refused")
        squeue = [l.split("|")[0] + "|cnn_crack|" + l.split("sbatch ")[1] for l in self.lines]
        return 0, "\n".join(squeue), ""


def killed_sweep(monkeypatch, accept: int, name: str = "grid", **kw):
    monkeypatch.setenv("CRACKOPS_MAX_ARRAY_SIZE", "2")
    be = SweepScheduler(accept, **kw)
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: be)     # what api.sweep asks
    with_backend(monkeypatch, be)                                             # what adopt_submissions asks
    with pytest.raises(KeyboardInterrupt):
        api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.1, 0.2], "batch_size": [8, 16]}, 1,
                  Resources(), backend="slurm", name=name, fn=print, check_data=False, max_parallel=2)
    return be


def test_a_dead_submitters_sweep_is_found_by_its_arrays_folders_and_recorded_once(monkeypatch, crackops_dirs):
    import threading

    be = killed_sweep(monkeypatch, accept=1)                       # array 0 accepted, killed in sbatch #2
    reg = Registry()
    (p,) = reg.pending()
    assert reg.list_sweeps() == [] and reg.list() == [] and p["run"]["sweep"]["name"] == "grid"
    assert [a["folder"] for a in p["run"]["arrays"]] == be.folders == [f"{p['submission_id']}-a0",
                                                                        f"{p['submission_id']}-a1"]
    assert len(p["run"]["runs"]) == 4
    later = time.time() + api.ADOPT_AFTER_S + 1
    # several crackops processes adopt at the same time: the sweep is recorded once
    adoptions, barrier = [], threading.Barrier(4)

    def adopt():
        barrier.wait()
        adoptions.append(api.adopt_submissions(Registry(), now=later))

    threads = [threading.Thread(target=adopt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [a for a in adoptions if a.runs]
    assert len(winners) == 1, [a.warnings for a in adoptions]
    (sw,) = reg.list_sweeps()
    runs = reg.sweep_runs(sw.sweep_id)
    assert sw.name == "grid" and [r.job_id for r in runs] == ["500001_0", "500001_1"]   # what was accepted
    assert [r.name for r in runs] == ["grid/p1/s42", "grid/p2/s42"] and runs[0].config["batch_size"] == 8
    assert [r.extra["sweep"]["index"] for r in runs] == [0, 1] and runs[1].extra["sweep"]["values"] == {
        "dropout": 0.1, "batch_size": 16}
    assert all(r.sweep_id == sw.sweep_id and r.state == "PENDING" and "ended after sbatch" in r.extra["adopted"]
               for r in runs)
    assert [a["array_id"] for a in sw.extra["arrays"]] == ["500001"] and reg.pending() == []
    assert any("adopted sweep grid (2 of 4 runs" in w for w in winners[0].warnings)
    assert api.adopt_submissions(reg, now=later).warnings == []       # done: nobody asks again
    # the submitter, had it only been slow, adds what the adopter could not know, and nothing twice
    from crackops.sweeps import member_run

    late = [member_run(p["run"]["runs"][i], j, "slurm", sw.sweep_id, time.time(), "/o", "/l", "/e", {})
            for i, j in ((0, "500001_0"), (2, "500002_0"))]
    assert reg.add_sweep(sw, late, submission_id=p["submission_id"]).sweep_id == sw.sweep_id
    assert [r.job_id for r in reg.sweep_runs(sw.sweep_id)] == ["500001_0", "500001_1", "500002_0"]


def test_a_sweep_not_all_found_waits_for_sacct_and_one_never_accepted_is_dropped(monkeypatch, crackops_dirs):
    be = killed_sweep(monkeypatch, accept=1, sacct_ok=False)
    reg = Registry()
    later = time.time() + 10_000
    res = api.adopt_submissions(reg, now=later)                   # sacct failed: array 1 may have ended
    assert "keeps looking" in res.warnings[0] and "Connection refused" in res.warnings[0], res.warnings
    assert len(reg.pending()) == 1 and reg.list_sweeps() == []
    be.sacct_ok = True
    assert "adopted sweep grid" in api.adopt_submissions(reg, now=later).warnings[0]
    killed_sweep(monkeypatch, accept=0, name="never")             # killed inside the first sbatch
    monkeypatch.setenv("CRACKOPS_NO_RECORD_GRACE", "600")
    res = api.adopt_submissions(reg, now=time.time() + api.ADOPT_AFTER_S + 1)
    assert "keeps looking" in res.warnings[0] and len(reg.pending()) == 1
    with pytest.raises(UsageError, match="waits to be adopted"):   # its name is taken meanwhile
        killed_sweep(monkeypatch, accept=1, name="never")
    res = api.adopt_submissions(reg, now=later)
    assert "never accepted" in res.warnings[0] and reg.pending() == []
    assert [s.name for s in reg.list_sweeps()] == ["grid"]


def test_a_normal_slurm_sweep_leaves_no_pending_row(monkeypatch, crackops_dirs):
    monkeypatch.setenv("CRACKOPS_MAX_ARRAY_SIZE", "2")
    be = SweepScheduler(9)
    monkeypatch.setattr("crackops.backends.get_backend", lambda name: be)
    h = api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.1, 0.2, 0.3]}, 1, Resources(), backend="slurm",
                  name="ok", fn=print, check_data=False)
    reg = Registry()
    assert reg.pending() == [] and [r.job_id for r in h.runs] == ["500001_0", "500001_1", "500002"]
    assert [a["array_id"] for a in reg.get_sweep("ok").extra["arrays"]] == ["500001", "500002"]


def test_searches_for_lost_submissions_share_one_budget(monkeypatch, crackops_dirs):
    import socket

    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "5")
    reg = Registry()
    reg.add_pending("abc123", "slurm", "cnn_crack", time.time() - 200, f"999999@{socket.gethostname()}", {
        "name": "lost", "config": {**TrainConfig(data_dir="unused").to_dict(), "job_id": None},
        "resources": Resources().to_dict(), "logs_dir": "/tmp", "fn": "x.y"})
    finder = Finder(found={})
    with_backend(monkeypatch, finder)
    first = api.adopt_submissions(reg)
    second = api.adopt_submissions(Registry())            # another process, a second later
    assert len(finder.asked) == 1, finder.asked            # one search, not one per status or wait poll
    assert "not searched this time" in second.warnings[0] and reg.pending(), second.warnings
    assert "never accepted" not in " ".join(first.warnings + second.warnings)
