"""The ``crackops`` command: a thin layer over ``crackops.api`` that formats its results."""

from __future__ import annotations

from crackops.cli.app import EXIT_INTERRUPTED, INTERRUPTED, app
from crackops.output import err
from crackops.cli import runs as _runs  # noqa: F401  (registers commands)
from crackops.cli import compare as _compare  # noqa: F401
from crackops.cli import demo as _demo  # noqa: F401
from crackops.cli import predict as _predict  # noqa: F401
from crackops.cli import report as _report  # noqa: F401
from crackops.cli import sweep as _sweep  # noqa: F401
from crackops.cli import rerun as _rerun  # noqa: F401
from crackops.cli import recover as _recover  # noqa: F401
from crackops.cli import wait as _wait  # noqa: F401
from crackops.cli import track as _track  # noqa: F401

try:
    from crackops.cli.data import app as _data_app
    from crackops.cli.app import mount

    mount(_data_app, "data", "Make and check datasets: synth, check.")
except ImportError:  # pragma: no cover
    pass


def main() -> None:
    import os
    import sys

    from crackops import interrupts
    from crackops.contract import tighten_umask

    interrupts.install()
    tighten_umask()   # the registry, out folders, logs: never writable by group or others
    try:
        try:
            app()
        except KeyboardInterrupt:   # while typer builds the command, before any command runs
            raise SystemExit(EXIT_INTERRUPTED) from None
    except SystemExit as e:   # typer turns a Ctrl-C outside a command's body into a silent exit 130
        if e.code != EXIT_INTERRUPTED:
            raise
        interrupts.ignore()
        if not interrupts.was_said():
            err.print(INTERRUPTED, soft_wrap=True)
        # Out now, past Python's shutdown: a Ctrl-C that landed in code run by exec() (dataclasses,
        # namedtuples) makes CPython 3.11 end the process by SIGINT after its shutdown, whatever the
        # exit code; the scan's workers are already ended and nothing else is left to finish.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(EXIT_INTERRUPTED)
    finally:   # Python puts the default action (die by SIGINT) back while it shuts down: not that
        interrupts.ignore()


__all__ = ["app", "main"]
