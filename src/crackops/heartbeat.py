"""The job's heartbeat: a sign of life the scheduler cannot give.

A job whose node crashed can stay RUNNING in Slurm's view for many minutes (until the controller
declares the node down). The job touches ``out/<job_id>/heartbeat`` every ``CRACKOPS_HEARTBEAT_S``
seconds (30 by default) from a thread of its own, independent of how long an epoch takes; a
refresh that sees a RUNNING run whose heartbeat has not moved for ``CRACKOPS_HEARTBEAT_STALE_S``
seconds (300) of its own clock says so. The reader compares the file's time with the time it saw
before, never with its own clock, so clock skew between the node, the file server and the reader
changes nothing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from crackops.fmt import env_number

HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_S = 30.0
STALE_S = 300.0


def interval_s() -> float:
    return env_number("CRACKOPS_HEARTBEAT_S", HEARTBEAT_S, "seconds", "e.g. CRACKOPS_HEARTBEAT_S=30 (the default)",
                      maximum=3600)


def stale_s() -> float:
    return env_number("CRACKOPS_HEARTBEAT_STALE_S", STALE_S, "seconds",
                      "e.g. CRACKOPS_HEARTBEAT_STALE_S=300 (the default)")


class Heartbeat:
    """Touches the heartbeat file until :meth:`stop` (a daemon thread: it never keeps a job alive)."""

    def __init__(self, out_dir: Path | str, every_s: float | None = None):
        self.path = Path(out_dir) / HEARTBEAT_FILE
        self.every_s = interval_s() if every_s is None else every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="crackops-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._touch()
        self._thread.start()
        return self

    def _touch(self) -> None:
        try:
            self.path.touch()
            os.utime(self.path)
        except OSError:   # a full or read-only disk: the scheduler's view is all there is
            pass

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            self._touch()

    def stop(self) -> None:
        self._stop.set()


def mtime(out_dir: Path | str | None) -> float | None:
    """The heartbeat file's modification time (the writer's clock), or None."""
    if not out_dir:
        return None
    try:
        return (Path(out_dir) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return None


def silent_for(seen: list[float] | None, beat: float | None, now: float) -> tuple[list[float] | None, float]:
    """``(what to keep, seconds without a beat)``: ``seen`` is ``[heartbeat time, when it was first
    seen in this clock]`` from the last refresh; a heartbeat that moved starts the count again."""
    if beat is None:
        return seen, 0.0
    if not seen or seen[0] != beat:
        return [beat, now], 0.0
    return seen, max(0.0, now - seen[1])
