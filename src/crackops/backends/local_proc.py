"""The local backend's processes and job folders: where a job's state lives, whether its process
is alive (guarded against pid reuse), which processes a job's group still has. Shared by the
backend and its queue runner."""

from __future__ import annotations

import os
import time
from pathlib import Path

from crackops import contract
from crackops.paths import state_dir


def job_dir(job_id: str) -> Path:
    return state_dir() / "jobs" / job_id


def read_state(job_id: str) -> dict | None:
    return contract.read_state(job_dir(job_id))


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None when unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _read_cmdline(pid: int) -> str:
    """/proc/<pid>/cmdline, waiting out an exec in progress. ``Popen`` returns once the child's
    exec is past its point of no return (the close-on-exec error pipe closes), but the kernel sets
    up the new argv only later: for a moment (long on a busy machine) cmdline reads empty, and a
    runner or job started just now would look like some other process. Raises OSError (no /proc)."""
    deadline = time.monotonic() + 5.0
    while True:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        if raw:
            return raw.decode(errors="replace")
        st = _proc_stat(pid)
        # gone, a zombie, or a kernel thread (PF_KTHREAD): empty for good
        if st is None or st[0] in ("Z", "X") or (len(st) > 6 and int(st[6]) & 0x00200000):
            return ""
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.01)


def _pid_alive(pid: int, spec: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if spec:  # guard against pid reuse: the process must be our runner for this spec
        try:
            cmdline = _read_cmdline(pid)
        except OSError:
            return True  # no /proc (macOS): trust kill(0)
        if spec not in cmdline:
            return False
        try:  # a zombie is dead
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            pass
    return True


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux /proc; elsewhere: the leader)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    pids = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(d.name))
    return pids
