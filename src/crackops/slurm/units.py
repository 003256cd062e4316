"""Slurm's units, read robustly, and seff-style efficiency with right-sizing hints.

Everything here is a pure function over strings and numbers: no subprocess, no clock.

Memory as sacct/squeue print it: ``16G``, ``16000M``, ``320628K``, ``1.50G``, ``0``; older Slurm
(before 21.08) suffixes ReqMem with ``n`` (per node) or ``c`` (per CPU): ``4Gn``, ``1Gc``.
Times: ``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``, ``MM:SS.mmm`` (TotalCPU under an hour),
and the words ``UNLIMITED``, ``Partition_Limit``, ``INVALID``, ``Unknown``, ``None``.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Any

from crackops.fmt import duration, mem as format_mem

_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2, "P": 1024.0 ** 3}
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTP]?)B?([nc]?)$", re.I)

#: Words Slurm prints where a time or a limit would be.
NO_TIME_WORDS = {"", "UNLIMITED", "PARTITION_LIMIT", "INVALID", "UNKNOWN", "NONE", "N/A", "NOT_SET"}


def parse_mem_mb(text: str | None, *, alloc_cpus: int | None = None, nnodes: int | None = None,
                 default_unit: str = "M", scoped: bool = True) -> float | None:
    """Memory text -> MB (float), or None when empty or unreadable. The one memory parser:
    ``crackops.config`` reads ``--mem`` with it too (``scoped=False``: no ``n``/``c`` suffix).

    ``default_unit`` applies to bare numbers (``ReqMem``/``--mem``: MB). A ``c`` suffix means per
    CPU and is multiplied by ``alloc_cpus``; ``n`` means per node and is multiplied by ``nnodes``
    (if given). ``0`` is 0.0: for a request that means "all the node's memory".
    """
    if text is None:
        return None
    s = str(text).strip()
    if not s:
        return None
    m = _MEM_RE.match(s)
    if not m:
        return None
    value = float(m.group(1))
    unit = (m.group(2) or default_unit).upper()
    mb = value * _UNIT_MB[unit]
    scope = m.group(3).lower()
    if scope and not scoped:
        return None
    if scope == "c":
        if not alloc_cpus:
            return None
        mb *= alloc_cpus
    elif scope == "n" and nnodes:
        mb *= nnodes
    return mb


def parse_duration_s(text: str | None) -> float | None:
    """Slurm duration -> seconds (float, milliseconds kept), or None for words/empty/garbage.

    ``1-02:03:04`` -> 93784, ``02:03:04`` -> 7384, ``03:04`` -> 184 (MM:SS, as sacct and squeue
    print), ``00:04.984`` -> 4.984, ``1-00:00`` -> 86400 (D-HH:MM), ``1-02`` -> 93600 (D-HH),
    ``UNLIMITED`` -> None.
    """
    if text is None:
        return None
    s = str(text).strip()
    if s.upper() in NO_TIME_WORDS:
        return None
    days = 0
    if "-" in s:
        d, _, s = s.partition("-")
        if not (d.isascii() and d.isdigit()):      # str.isdigit() is true for '²', which int() refuses
            return None
        days = int(d)
        parts = s.split(":")
        if not 1 <= len(parts) <= 3:
            return None
        parts += ["0"] * (3 - len(parts))          # D-HH, D-HH:MM
    else:
        parts = s.split(":")
        if len(parts) == 2:
            parts = ["0"] + parts                   # MM:SS[.mmm]
        elif len(parts) == 1:
            parts = ["0", "0", parts[0]]            # SS (rare: bare seconds)
        elif len(parts) != 3:
            return None
    try:
        h, mi = int(parts[0]), int(parts[1])
        sec = float(parts[2])
    except ValueError:
        return None
    if h < 0 or mi < 0 or sec < 0 or not math.isfinite(sec):
        return None
    return days * 86400 + h * 3600 + mi * 60 + sec


def parse_timestamp(text: str | None) -> float | None:
    """``2026-11-25T17:53:02`` (local time, as sacct prints with SLURM_TIME_FORMAT=standard) or
    epoch digits -> epoch seconds; ``Unknown``/``None``/``N/A``/empty -> None."""
    if text is None:
        return None
    s = str(text).strip()
    if not s or s.upper() in NO_TIME_WORDS:
        return None
    if s.isascii() and s.isdigit():   # ASCII only: str.isdigit() is true for '²', which float() refuses
        return float(s)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            return time.mktime(datetime.strptime(s, fmt).timetuple())
        except ValueError:
            continue
    return None


def format_slurm_time(epoch: float) -> str:
    """Epoch -> ``YYYY-MM-DDTHH:MM:SS`` in local time (what ``sacct --starttime`` accepts)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


def format_duration(seconds: float | None) -> str:
    """Seconds -> ``H:MM:SS`` or ``D-HH:MM:SS`` (Slurm's --time syntax); None -> ``?``."""
    return duration(seconds, "slurm", missing="?")


# ------------------------------------------------------------------ right-sizing

_MEM_LADDER_GB = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]
_TIME_LADDER_MIN = [5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 960, 1440, 2880, 4320, 10080]

MEM_HEADROOM = 1.5    # suggest peak x 1.5, rounded up to a usual size
TIME_HEADROOM = 1.5   # suggest elapsed x 1.5, rounded up to a usual limit


def mem_text(mb: int) -> str:
    """MB as ``--mem`` takes it: whole gigabytes as ``16G``, anything else ``1500M``."""
    mb = int(mb)
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def suggest_mem(peak_mb: float) -> str:
    """A ``--mem`` value leaving headroom over ``peak_mb``: 2150 MB -> ``4G``."""
    need_gb = peak_mb * MEM_HEADROOM / 1024
    for gb in _MEM_LADDER_GB:
        if gb >= need_gb:
            return f"{gb}G"
    return f"{int(math.ceil(need_gb))}G"


def suggest_time(elapsed_s: float) -> str:
    """A ``--time`` value leaving headroom over ``elapsed_s``: 750 s -> ``0:20:00``."""
    need_min = elapsed_s * TIME_HEADROOM / 60
    for m in _TIME_LADDER_MIN:
        if m >= need_min:
            return format_duration(m * 60)
    return format_duration(math.ceil(need_min) * 60)


def suggest_cpus(total_cpu_s: float, elapsed_s: float) -> int:
    """CPUs actually kept busy, rounded up, with a little headroom (at least 1)."""
    return max(1, int(math.ceil(total_cpu_s / elapsed_s * 1.25)))


def efficiency(*, state: str | None, elapsed_s: float | None, timelimit_s: float | None,
               alloc_cpus: int | None, req_mem_mb: float | None, max_rss_mb: float | None,
               total_cpu_s: float | None) -> dict[str, Any]:
    """seff's numbers plus hints. JSON-able; ratios are fractions (0.42 = 42 %), None when unknown.

    - ``cpu_eff`` = TotalCPU / (AllocCPUS x Elapsed)
    - ``mem_eff`` = MaxRSS / requested memory (ReqMem, already the job total)
    - ``time_eff`` = Elapsed / Timelimit
    - ``implausible``: names of ratios above 100 % (e.g. memory not enforced, or accounting that
      counted children twice) - shown, but not used for hints
    - ``hints``: right-sizing sentences, only for jobs that ran to an end that tells something
      (memory/CPU hints for COMPLETED jobs; a time hint for COMPLETED and TIMEOUT).
    """
    def ratio(num: float | None, den: float | None) -> float | None:
        if num is None or not den or den <= 0:
            return None
        return round(num / den, 4)

    cpu_eff = ratio(total_cpu_s, (alloc_cpus or 0) * (elapsed_s or 0)) if alloc_cpus and elapsed_s else None
    mem_eff = ratio(max_rss_mb, req_mem_mb) if req_mem_mb else None
    time_eff = ratio(elapsed_s, timelimit_s)
    implausible = [k for k, v in (("cpu_eff", cpu_eff), ("mem_eff", mem_eff), ("time_eff", time_eff))
                   if v is not None and v > 1.0 and not (k == "time_eff" and state == "TIMEOUT")]
    hints: list[str] = []
    st = (state or "").upper()
    if st == "COMPLETED":
        if req_mem_mb and max_rss_mb is not None and "mem_eff" not in implausible:
            sugg = suggest_mem(max_rss_mb)
            if float(sugg[:-1]) * 1024 < req_mem_mb:
                hints.append(f"asked {format_mem(req_mem_mb)}, peak {format_mem(max_rss_mb)}: --mem {sugg} would do")
        if elapsed_s and timelimit_s and time_eff is not None and time_eff < 0.5:
            sugg = suggest_time(max(elapsed_s, 60))
            if (parse_duration_s(sugg) or 0) < timelimit_s:
                hints.append(f"asked {format_duration(timelimit_s)}, ran {format_duration(elapsed_s)}: "
                             f"--time {sugg} would do")
        if (alloc_cpus and alloc_cpus > 1 and cpu_eff is not None and cpu_eff < 0.5
                and "cpu_eff" not in implausible and total_cpu_s is not None and elapsed_s):
            n = suggest_cpus(total_cpu_s, elapsed_s)
            if n < alloc_cpus:
                hints.append(f"{alloc_cpus} CPUs at {cpu_eff:.0%} use: --cpus {n} would do")
    elif st == "TIMEOUT" and timelimit_s:
        hints.append(f"hit the {format_duration(timelimit_s)} time limit: ask for more "
                     f"(--time {format_duration(timelimit_s * 2)}) or train fewer epochs")
    elif st == "OUT_OF_MEMORY" and req_mem_mb:
        hints.append(f"ran out of its {format_mem(req_mem_mb)}: ask for more (--mem {suggest_mem(req_mem_mb)})")
    return {
        "elapsed_s": elapsed_s, "timelimit_s": timelimit_s, "alloc_cpus": alloc_cpus,
        "req_mem_mb": None if req_mem_mb is None else round(req_mem_mb, 3),
        "max_rss_mb": None if max_rss_mb is None else round(max_rss_mb, 3),
        "total_cpu_s": None if total_cpu_s is None else round(total_cpu_s, 3),
        "cpu_eff": cpu_eff, "mem_eff": mem_eff, "time_eff": time_eff,
        "implausible": implausible, "hints": hints,
    }
