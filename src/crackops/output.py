"""One place for output: data to stdout (rich tables or JSON), messages and hints to stderr.

Numbers are turned into text by ``crackops.fmt`` and the metric table (``crackops.metrics``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

STATE_STYLE = {
    "COMPLETED": "green", "RUNNING": "cyan", "PENDING": "yellow", "FAILED": "bold red",
    "CANCELLED": "magenta", "TIMEOUT": "red", "OUT_OF_MEMORY": "red", "NODE_FAIL": "red",
    "INCOMPLETE": "bold red", "UNKNOWN": "yellow",
}


def print_json(data: Any) -> None:
    """JSON to stdout, nothing else (no rich markup, no wrapping): indented on a terminal, one line
    when piped (to ``jq`` or a script), which is what keeps ``status --sweep --json`` of 1,000 runs
    fast: only the unindented form uses the standard library's C encoder."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")
    sys.stdout.flush()


def hint(msg: str) -> None:
    err.print(f"[dim]{msg}[/dim]")


def warn(msg: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {msg}")


def state(s: str | None) -> str:
    s = s or "UNKNOWN"
    style = STATE_STYLE.get(s, "white")
    return f"[{style}]{s}[/{style}]"
