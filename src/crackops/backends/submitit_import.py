"""Importing submitit without its import-time logging set-up (a leaf module: the Slurm backend
and its adoption helpers both use it)."""

from __future__ import annotations

import os
import sys


def import_submitit():
    """``import submitit`` without its import-time logging set-up, and return the module.

    On import, submitit calls ``logging.config.dictConfig``, which closes every logging handler
    the process already has and binds two new ones to the ``sys.stdout``/``sys.stderr`` of that
    moment. absl's handler (TensorFlow installs it) closes the stream it holds when closed: in a
    process whose ``sys.stderr`` had been swapped meanwhile (a notebook, a program capturing its
    output, pytest's capture under typer's CliRunner) that was a stream still in use, and the
    next write to it failed with "I/O operation on closed file". ``SUBMITIT_LOG_LEVEL=NOCONFIG``
    (submitit's own switch) turns the set-up off for this process only: the variable is restored
    at once, so the job, which imports submitit afresh on the node, still logs as submitit does.
    submitit's warnings then go where the process's logging sends them (by default the current
    stderr)."""
    mod = sys.modules.get("submitit")
    if mod is not None:
        return mod
    saved = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        import submitit
    finally:
        if saved is None:
            os.environ.pop("SUBMITIT_LOG_LEVEL", None)
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = saved
    return submitit
