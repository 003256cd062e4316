"""Numbers as people read them: the one place for durations, memory sizes, percentages, dates,
and for the dates people type (``--since``).

Pure functions over numbers (no rich, no I/O), used by the terminal output, the HTML report, the
Slurm hints and the metric table alike, so the same value reads the same everywhere.
"""

from __future__ import annotations

import math
import os
import re
import time
from datetime import datetime, timedelta
from typing import Any

from crackops.errors import UsageError


def duration(seconds: float | None, style: str = "clock", missing: str = "-") -> str:
    """Seconds as text. ``clock``: ``4:05`` under an hour, else Slurm's ``1:02:03`` /
    ``1-02:03:04``; ``slurm``: always ``H:MM:SS`` or ``D-HH:MM:SS`` (Slurm's --time syntax);
    ``short``: ``4h``, ``1d``, ``30m`` for whole units, else as ``clock``."""
    if seconds is None:
        return missing
    total = int(round(float(seconds)))
    if style == "short":
        for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
            if total >= n and total % n == 0:
                return f"{total // n}{unit}"
        style = "clock"
    if style == "clock" and total < 3600:
        m, s = divmod(total, 60)
        return f"{m}:{s:02d}"
    if style not in ("clock", "slurm"):
        raise ValueError(f"unknown duration style {style!r}")
    d, s = divmod(total, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h}:{m:02d}:{s:02d}"


def mem(mb: float | None, missing: str = "?") -> str:
    """MB -> short text: ``2.1 GB``, ``512 MB``, ``16 GB``."""
    if mb is None:
        return missing
    if mb >= 1024:
        gb = mb / 1024
        return f"{gb:.0f} GB" if gb >= 10 or abs(gb - round(gb)) < 0.05 else f"{gb:.1f} GB"
    return f"{mb:.0f} MB" if mb >= 1 else f"{mb * 1024:.0f} KB"


def pct(x: Any, digits: int = 2) -> str:
    """0.875 -> ``87.50%``; None or NaN -> ``-``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 100:.{digits}f}%"


def num(x: Any, digits: int = 4) -> str:
    """Floats with ``digits`` decimals, anything else as it is; None -> ``-``."""
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def when(ts: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM``."""
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


_REL_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")


def env_number(name: str, default: float, unit: str, example: str, maximum: float = math.inf) -> float:
    """The number (0 to ``maximum``, never infinite) in environment variable ``name``, or
    ``default`` when it is unset or blank; anything else is a one-line error naming it."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return float(default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum or value == math.inf:
        raise UsageError(f"{name}={text!r} is not a number of {unit}", example)
    return value


def parse_since(text: str, now: float | None = None) -> float:
    """'2025-11-24', '2025-11-24 13:00', '2025-11-24T13:00:00', 'today', 'yesterday', '3d', '12h',
    '30m', '2w' -> a Unix time (local time zone)."""
    now = time.time() if now is None else now
    s = text.strip().lower()
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if s == "today":
        return midnight.timestamp()
    if s == "yesterday":
        return (midnight - timedelta(days=1)).timestamp()
    m = _REL_RE.match(s)
    if m:
        return now - float(m.group(1)) * {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(f"cannot read --since {text!r}",
                         "use a date (2025-11-24), a date and time (2025-11-24 13:00), today, yesterday, "
                         "or an age such as 3d, 12h, 30m") from None


def as_number(v: Any) -> float | None:
    """``v`` as a float when it is a real number (not a bool, None or NaN), else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None
