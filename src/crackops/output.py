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
    """JSON to stdout, nothing else (no rich markup, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def hint(msg: str) -> None:
    err.print(f"[dim]{msg}[/dim]")


def warn(msg: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {msg}")


def state(s: str | None) -> str:
    s = s or "UNKNOWN"
    style = STATE_STYLE.get(s, "white")
    return f"[{style}]{s}[/{style}]"
