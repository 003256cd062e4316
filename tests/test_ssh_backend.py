"""The ssh backend against a real OpenSSH server (``scripts/local-sshd.sh``): a separate user with its
own home, Debian's Python and a virtualenv with crackops installed from this checkout, the local
Slurm in its login environment. The laptop side is this process (root) with a generated ssh config.

Skipped when the server cannot start (not root, no Slurm); failing instead when
``CRACKOPS_REQUIRE_SSH=1`` (CI). Every ssh and rsync this test's crackops starts goes through a
counting wrapper on PATH (it runs the real ``/usr/bin/ssh``), so round trips are counted, not assumed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import REPO, invoke, require_sample_data, text

pytestmark = [pytest.mark.ssh, pytest.mark.slurm]

SCRIPT = REPO / "scripts" / "local-sshd.sh"
TINY = ["--epochs", "1", "--image-size", "32", "--max-images", "60", "--cpus", "1", "--mem", "2G",
        "--time", "0:15:00"]


def _fail_or_skip(problem: str) -> None:
    if os.environ.get("CRACKOPS_REQUIRE_SSH") == "1":
        pytest.fail(f"CRACKOPS_REQUIRE_SSH=1 but {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def ssh_server(slurm_cluster, tmp_path_factory):
    if os.geteuid() != 0:
        _fail_or_skip("the local sshd needs root (scripts/local-sshd.sh start)")
    r = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        _fail_or_skip(f"the local sshd did not start: {r.stderr.strip().splitlines()[-3:]}")
    env = dict(line.removeprefix("export ").split("=", 1)
               for line in subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True,
                                          check=True).stdout.splitlines())
    host, config = env["CRACKOPS_SSH_TEST_HOST"], env["CRACKOPS_SSH_CONFIG"]
    # the photos on "the cluster" (the remote user's home), copied with the remote user's rights
    sample = require_sample_data()
    subprocess.run(["rsync", "-a", "-e", f"ssh -F {config}", f"{sample}/", f"{host}:data/concrete-sample/"],
                   check=True, capture_output=True, timeout=300)
    # the counting wrapper: every ssh crackops (or its rsync) starts is a line in the file
    wrap = tmp_path_factory.mktemp("sshwrap")
    count = wrap / "calls.txt"
    (wrap / "ssh").write_text(f'#!/bin/sh\necho "$*" >>{count}\nexec /usr/bin/ssh "$@"\n')
    (wrap / "ssh").chmod(0o755)
    return SimpleNamespace(host=host, config=config, data="data/concrete-sample", wrap=wrap, count=count)


@pytest.fixture
def remote(ssh_server, monkeypatch):
    monkeypatch.setenv("CRACKOPS_SSH_CONFIG", ssh_server.config)
    monkeypatch.setenv("PATH", f"{ssh_server.wrap}:{os.environ['PATH']}")
    monkeypatch.setenv("CRACKOPS_SACCT_INTERVAL", "1")
    monkeypatch.delenv("CRACKOPS_SSH_OUT", raising=False)
    ssh_server.count.write_text("")
    return ssh_server


def calls(remote) -> list[str]:
    """The ssh commands run since the last call (a master check, -O, is not a round trip)."""
    lines = [ln for ln in remote.count.read_text().splitlines() if " -O " not in f" {ln} "]
    remote.count.write_text("")
    return lines


def on_host(remote, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/ssh", "-F", remote.config, remote.host, *cmd], capture_output=True,
                          text=True, timeout=120, check=check)


def submit(remote, *extra: str) -> str:
    res = invoke("submit", "--backend", "ssh", "--host", remote.host, "--data", remote.data, *TINY, *extra, "--json")
    assert res.exit_code == 0, text(res)
    return json.loads(res.stdout)["job_id"]


def test_submit_wait_collect_compare_over_ssh(remote, crackops_dirs):
    a = submit(remote, "--seed", "1", "--name", "laptop")
    b = submit(remote, "--seed", "2", "--name", "laptop")
    calls(remote)
    # the laptop's rows: backend ssh, the host, the remote job and out dir
    res = invoke("status", "--json", a, b)
    assert res.exit_code == 0, text(res)
    rows = {r["job_id"]: r for r in json.loads(res.stdout)}
    assert {r["backend"] for r in rows.values()} == {"ssh"}
    assert rows[a]["resources"]["host"] == remote.host
    assert rows[a]["extra"]["remote_out_dir"].endswith(f"/out/{a}")
    # two runs, one ssh round trip (one crackops status there)
    made = calls(remote)
    assert len(made) == 1 and "crackops status --json" in made[0], made
    assert f" {a} " in made[0] + " " and f" {b}" in made[0]

    res = invoke("wait", a, b, "--timeout", "600")
    assert res.exit_code == 0, text(res)
    res = invoke("collect", a, "--json")
    assert res.exit_code == 0, text(res)
    rep = json.loads(res.stdout)
    assert rep["ok"] and rep["state"] == "COMPLETED"
    # wait already collected it (it reads completed runs): this second copy moves no file
    assert rep["fetched"]["files"] == 0 and rep["fetched"]["from"].startswith(f"{remote.host}:")
    local = Path(rows[a]["out_dir"])
    assert (local / "manifest.json").is_file() and (local / "best.h5").stat().st_size > 0
    assert Path(rows[a]["log_out"]).is_file()       # the logs came back too
    # what is missing is copied again, and only that
    (local / "metrics.txt").unlink()
    res = invoke("collect", a, "--json")
    assert res.exit_code == 0, text(res)
    assert json.loads(res.stdout)["fetched"]["files"] == 1 and (local / "metrics.txt").is_file()

    res = invoke("compare", a, b, "--json")
    assert res.exit_code == 0, text(res)
    shown = json.dumps(json.loads(res.stdout))
    assert a in shown and b in shown and "test_accuracy" in shown

    res = invoke("logs", a, "--tail", "3")
    assert res.exit_code == 0 and f"/out/{a}" in res.stdout, text(res)
    res = invoke("logs", b, "--follow")              # streamed from the host until the run's end
    assert res.exit_code == 0 and "done in" in res.stdout and f"/out/{b}" in res.stdout, text(res)


def test_sweep_over_ssh(remote):
    res = invoke("sweep", "--backend", "ssh", "--host", remote.host, "--data", remote.data, *TINY,
                 "--grid", "learning_rate=0.001,0.003", "--name", f"ssh-{time.time_ns()}")
    assert res.exit_code == 0, text(res)
    assert "2 runs (2 grid points x 1 seeds) on ssh, one job per run" in text(res)
    name = res.stdout.split()[0]
    res = invoke("wait", "--sweep", name, "--timeout", "600")
    assert res.exit_code == 0, text(res)
    res = invoke("compare", "--sweep", name, "--json")
    assert res.exit_code == 0, text(res)
    assert '"learning_rate": 0.003' in json.dumps(json.loads(res.stdout))


def test_unreachable_host_records_nothing(remote):
    res = invoke("submit", "--backend", "ssh", "--host", "nohost.invalid", "--data", remote.data, *TINY)
    assert res.exit_code == 5
    assert "error: cannot reach nohost.invalid: ssh: Could not resolve hostname" in text(res)
    assert json.loads(invoke("status", "--json").stdout) == []


def test_crackops_missing_on_the_host(remote):
    venv_bin = "venv/bin/crackops"
    on_host(remote, "mv", venv_bin, venv_bin + ".off")
    try:
        res = invoke("submit", "--backend", "ssh", "--host", remote.host, "--data", remote.data, *TINY)
    finally:
        on_host(remote, "mv", venv_bin + ".off", venv_bin)
    assert res.exit_code == 5
    lines = {ln for ln in text(res).splitlines() if ln.startswith("error:")}
    assert lines == {f"error: crackops is not installed on {remote.host} (the remote shell: crackops: command not found)"}
    assert "pip install" in text(res)
    assert json.loads(invoke("status", "--json").stdout) == []


def test_version_mismatch_is_one_line_saying_what_to_install(remote, monkeypatch):
    from crackops.backends import ssh

    real = ssh.local_versions()
    monkeypatch.setattr(ssh, "local_versions", lambda: {**real, "crackops": "0.0.1"})
    res = invoke("submit", "--backend", "ssh", "--host", remote.host, "--data", remote.data, *TINY)
    assert res.exit_code == 5
    assert f"error: crackops {real['crackops']} on {remote.host}, 0.0.1 here: both sides must run the same crackops" in text(res)
    assert "pip install 'crackops==0.0.1'" in text(res)
    assert json.loads(invoke("status", "--json").stdout) == []


def test_remote_disk_full(remote, monkeypatch, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(full)]).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={full}/fill", "bs=64k", "count=10"], capture_output=True)
        monkeypatch.setenv("CRACKOPS_SSH_OUT", str(full / "out"))
        res = invoke("submit", "--backend", "ssh", "--host", remote.host, "--data", remote.data, *TINY)
    finally:
        subprocess.run(["umount", str(full)])
    errors = sorted({ln for ln in text(res).splitlines() if ln.startswith("error:")})
    assert res.exit_code != 0 and len(errors) == 1, text(res)
    assert errors[0].startswith(f"error: on {remote.host}: ") and str(full) in errors[0], errors
    assert json.loads(invoke("status", "--json").stdout) == []


def _master_pid(remote, home: Path) -> int | None:
    from crackops.backends import ssh_transport as t

    ctl = t.control_path(home)
    r = subprocess.run(t.ssh_argv(remote.host, None, ctl, remote.config, extra=["-O", "check"]),
                       capture_output=True, text=True)
    return int(r.stderr.split("pid=")[1].split(")")[0]) if "pid=" in r.stderr else None


def test_connection_dropped_during_wait_then_status_catches_up(remote, crackops_dirs):
    job = submit(remote, "--epochs", "3", "--seed", "3")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    wait = subprocess.Popen([sys.executable, "-m", "crackops", "wait", job, "--timeout", "600"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        pid = _master_pid(remote, crackops_dirs["home"])
        assert pid is not None
        subprocess.run(["bash", str(SCRIPT), "stop"], check=True, capture_output=True)   # no new logins
        os.kill(pid, 9)                                                                  # the link drops
        time.sleep(6)                 # wait polls meanwhile: the host does not answer
        assert wait.poll() is None    # it waits on, saying why
    finally:
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, capture_output=True, timeout=600)
    out, err = wait.communicate(timeout=600)
    assert wait.returncode == 0, err
    assert f"cannot reach {remote.host}" in err or f"connection to {remote.host} dropped" in err, err
    rows = json.loads(invoke("status", "--json", job).stdout)
    assert rows[0]["state"] == "COMPLETED"
    assert invoke("collect", job).exit_code == 0


def test_a_run_the_host_forgot_is_unknown_and_the_others_still_answer(remote):
    """The host's registry lost a run (its state dir wiped): that run is UNKNOWN, said why; the
    other runs of the host are still refreshed."""
    from helpers import make_run, register

    job = submit(remote, "--seed", "4")
    lost = make_run("99999999", state="PENDING", backend="ssh")
    lost.resources = {**lost.resources, "host": remote.host}
    lost.ended_at = None
    register([lost])
    calls(remote)
    res = invoke("status", "--json")
    assert res.exit_code == 0, text(res)
    rows = {r["job_id"]: r for r in json.loads(res.stdout)}
    assert rows["99999999"]["state"] == "UNKNOWN"
    assert rows["99999999"]["reason"] == f"the crackops on {remote.host} has no record of its run 99999999"
    assert rows[job]["state"] in ("PENDING", "RUNNING", "COMPLETED") and rows[job]["state_source"].startswith("crackops status")
    assert len(calls(remote)) == 2
    invoke("cancel", job)


def _until(predicate, timeout: float = 300, step: float = 1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("timed out")


def test_cancel_and_rerun_continue_from_the_backup_on_the_cluster(remote):
    long = ["--epochs", "300", "--es-patience", "300", "--lr-patience", "300"]
    job = submit(remote, *long, "--seed", "5")
    def epoch() -> int:
        return max([int(n) for n in re.findall(r"Epoch (\d+)/", invoke("logs", job, "--tail", "20").stdout)] or [0])

    _until(lambda: epoch() >= 4)
    assert invoke("cancel", job).exit_code == 0
    _until(lambda: json.loads(invoke("status", "--json", job).stdout)[0]["state"] == "CANCELLED")
    res = invoke("rerun", job, "--json")
    assert res.exit_code == 0, text(res)
    plan = json.loads(res.stdout)[0]
    # planned from the run's backup on the cluster (copied here first), not "no backup"
    assert "from the backup after epoch" in json.dumps(plan), plan
    new = plan["new_job_id"]
    try:
        _until(lambda: "resuming after epoch" in invoke("logs", new).stdout)
    finally:
        invoke("cancel", new)
