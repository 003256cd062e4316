"""One place for output: data to stdout (rich tables or JSON), messages and hints to stderr."""

from __future__ import annotations

import json
import math
import sys
import time
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


def pct(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 100:.{digits}f}%"


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = int(round(seconds))
    if total >= 3600:  # Slurm's H:MM:SS / D-HH:MM:SS
        from crackops.slurm.units import format_duration

        return format_duration(total)
    m, s = divmod(total, 60)
    return f"{m}:{s:02d}"


def when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def format_metric(m: Any, v: Any) -> str:
    """A metric value as tables show it; ``m`` is a ``crackops.compare.Metric`` (kind pct/dur/int/num)."""
    if v is None:
        return "-"
    if m.kind == "pct":
        return pct(v, 1 if m.key == "test_accuracy" else 0)
    if m.kind == "dur":
        return duration(v)
    if m.kind == "int":
        return f"{v:.0f}" if isinstance(v, (int, float)) else str(v)
    return num(v, 3)


def format_stat(m: Any, st: dict[str, Any]) -> str:
    """mean ± std of a metric over seeds (just the mean when there is one run)."""
    mean, std = st.get("mean"), st.get("std")
    if mean is None:
        return "-"
    if std is None:
        return format_metric(m, mean) if m.kind != "int" else f"{mean:.0f}"
    if m.kind == "pct":
        d = 1 if m.key == "test_accuracy" else 0
        return f"{mean * 100:.{d}f} ± {std * 100:.{d}f}%"
    if m.kind == "dur":
        return f"{duration(mean)} ± {duration(std)}"
    if m.kind == "int":
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.3f} ± {std:.3f}"
