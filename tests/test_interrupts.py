"""Ctrl-C on the real ``crackops`` command, with real signals: SIGINT sent to the command's process
group (as a terminal does) at several moments of a ``submit`` (starting up, scanning the data with
forked workers, handing the job over, printing), once or twice.

Whatever the moment: the command ends within seconds; exit 130 with one line on stderr and nothing
submitted, or (the job had been handed over) exit 0 with the job printed and recorded; never a
traceback; no process of the command's left behind (the scan's workers included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, sample_data_dir

pytestmark = pytest.mark.procs

DELAYS = (0.15, 0.5, 0.8, 1.1, 1.5, 2.2)


@pytest.fixture(scope="module")
def scan_data(tmp_path_factory) -> Path:
    """Over ``PARALLEL_MIN_FILES`` images and under the exact-check limit: submit scans them all
    with forked workers."""
    d = sample_data_dir()
    if d is not None:
        return d
    from crackops.data.synth import synthesize

    d = tmp_path_factory.mktemp("scan") / "data"
    synthesize(d, n_per_class=300, size=160, seed=0)
    return d


def _env(dirs) -> dict[str, str]:
    return {**os.environ, "CRACKOPS_HOME": str(dirs["home"]), "CRACKOPS_OUT": str(dirs["out"]),
            "CRACKOPS_LOGS": str(dirs["logs"]), "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "COLUMNS": "100"}


def _session_processes(sid: int) -> list[str]:
    """Processes still in the command's session (the local job's runner has its own session)."""
    p = subprocess.run(["ps", "-e", "-o", "pid=,sid=,args="], capture_output=True, text=True)
    return [l.strip() for l in p.stdout.splitlines() if l.split()[1:2] == [str(sid)]]


def _interrupt(args: list[str], dirs, delay: float, twice: bool = False) -> tuple[int, str, str, list[str]]:
    p = subprocess.Popen([sys.executable, "-m", "crackops", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(dirs), start_new_session=True, text=True)
    time.sleep(delay)
    try:
        os.killpg(p.pid, signal.SIGINT)
        if twice:
            time.sleep(0.05)
            os.killpg(p.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"still running 60 s after Ctrl-C at {delay} s: {err[-2000:]}")
    time.sleep(0.2)
    return p.returncode, out, err, _session_processes(p.pid)


def _recorded(dirs) -> list[dict]:
    p = subprocess.run([sys.executable, "-m", "crackops", "status", "--json", "--no-refresh"],
                       capture_output=True, text=True, env=_env(dirs))
    return json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else []


def _check(rc: int, out: str, err: str, left: list[str], dirs, delay: float) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, (delay, err)
    assert left == [], (delay, left)
    recorded = _recorded(dirs)
    if rc == 130:
        assert len(lines) == 1 and lines[0].startswith("interrupted"), (delay, err)
        assert out.strip() == "" and recorded == [], (delay, out, recorded)
        return "interrupted"
    assert rc == 0, (delay, rc, err)
    job_id = out.split()[0]
    assert [r["job_id"] for r in recorded] == [job_id], (delay, recorded)
    assert f"submitted {job_id}" in err
    subprocess.run([sys.executable, "-m", "crackops", "cancel", job_id], capture_output=True, env=_env(dirs))
    return "submitted"


@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
def test_ctrl_c_during_a_local_submit(scan_data, tmp_path, twice):
    seen = []
    for i, delay in enumerate(DELAYS):
        dirs = {k: tmp_path / f"{k}{i}" for k in ("home", "out", "logs")}
        rc, out, err, left = _interrupt(["submit", "--data", str(scan_data), "--epochs", "1"], dirs, delay, twice)
        seen.append(_check(rc, out, err, left, dirs, delay))
    assert "interrupted" in seen, seen   # the scan was reached and interrupted at least once


@pytest.mark.slurm
def test_ctrl_c_during_a_slurm_submit(scan_data, tmp_path, slurm_cluster):
    seen = []
    for i, delay in enumerate(DELAYS + (0.6, 0.65, 0.7)):
        dirs = {k: tmp_path / f"{k}{i}" for k in ("home", "out", "logs")}
        rc, out, err, left = _interrupt(["submit", "--backend", "slurm", "--data", str(scan_data), "--epochs", "1",
                                         "--cpus", "1", "--mem", "1G", "--time", "5"], dirs, delay)
        seen.append(_check(rc, out, err, left, dirs, delay))
    assert "interrupted" in seen, seen
