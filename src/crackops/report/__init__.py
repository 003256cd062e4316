"""Static outputs for people: comparison plots (``plots``) and the self-contained HTML run report
(``html``). Reads the registry rows and the runs' artifacts; never imports TensorFlow.

    from crackops.report import write_report
    write_report(runs, "report.html")
"""

from __future__ import annotations

from typing import Any


def write_report(*args: Any, **kwargs: Any):
    """See :func:`crackops.report.html.write_report`."""
    from crackops.report.html import write_report as _write

    return _write(*args, **kwargs)


__all__ = ["write_report"]
