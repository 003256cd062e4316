"""Ctrl-C (SIGINT): what the ``crackops`` command does with it, and the section where it waits.

The command (``crackops.cli.main``) calls :func:`install`: the first Ctrl-C raises
``KeyboardInterrupt`` where the command is (the CLI edge prints one line and exits 130), and any
further Ctrl-C is ignored while the command cleans up (scan workers ended, nothing left behind).

Once a job is being handed to a scheduler, stopping half-way would leave a job that runs but is
not recorded, or recorded but reported as interrupted. :func:`committed` marks that point: from
there, SIGINT is blocked (so a child such as ``sbatch`` does not get it either), the submission is
recorded and printed, and the command exits as it would have (0). Exit 130 therefore means that
nothing was handed to a scheduler by this command.

Without :func:`install` (the Python API), :func:`committed` blocks SIGINT for the block only: an
interrupt that came meanwhile is raised when the submission is recorded.

Standard library only.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_STATE: dict[str, Any] = {"installed": False, "said": False, "noted": False}
_SIGINT = {signal.SIGINT}


def _on_sigint(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # one Ctrl-C is enough: a second changes nothing
    raise KeyboardInterrupt


def install() -> None:
    """The command's SIGINT handling (see the module notes). Main thread only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
        _STATE["installed"] = True


def said_interrupted() -> None:
    """The command printed its one line about an interrupt (``main`` prints it otherwise)."""
    _STATE["said"] = True


def was_said() -> bool:
    return bool(_STATE["said"])


def ignore() -> None:
    """Ignore any further Ctrl-C (the command is on its way out)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def blocked() -> Iterator[None]:
    """SIGINT held back for the block (and for processes forked inside it); delivered after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
    try:
        yield
    finally:
        if signal.SIGINT not in old:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)


def _noted(signum: int, frame: Any) -> None:
    _STATE["noted"] = True


@contextmanager
def committed() -> Iterator[None]:
    """The point of no return of a submission (see the module notes)."""
    if _STATE["installed"] and threading.current_thread() is threading.main_thread():
        # for the rest of the command: blocked in this thread and in the processes it starts (sbatch),
        # and noted, not raised, if another thread of this process receives it
        signal.signal(signal.SIGINT, _noted)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
        yield
        return
    with blocked():
        yield


def unblock_in_child() -> None:
    """For a process started from a blocked section (a local job's runner): take Ctrl-C again."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)
