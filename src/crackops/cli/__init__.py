"""The ``crackops`` command: a thin layer over ``crackops.api`` that formats its results."""

from __future__ import annotations

from crackops.cli.app import app
from crackops.cli import runs as _runs  # noqa: F401  (registers commands)
from crackops.cli import compare as _compare  # noqa: F401
from crackops.cli import demo as _demo  # noqa: F401
from crackops.cli import predict as _predict  # noqa: F401
from crackops.cli import report as _report  # noqa: F401
from crackops.cli import sweep as _sweep  # noqa: F401
from crackops.cli import rerun as _rerun  # noqa: F401
from crackops.cli import recover as _recover  # noqa: F401

try:
    from crackops.cli.data import app as _data_app
    from crackops.cli.app import mount

    mount(_data_app, "data", "Make and check datasets: synth, check.")
except ImportError:  # pragma: no cover
    pass


def main() -> None:
    app()


__all__ = ["app", "main"]
