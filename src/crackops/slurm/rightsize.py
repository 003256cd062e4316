"""Right-sizing across runs, from Slurm accounting: which efficiency ratios to believe, the runs'
hints merged, and one request that would have fitted them all (the next sweep's ``--mem`` /
``--time`` / ``--cpus``).

Pure functions over comparison rows (dicts with ``job_id``, ``state``, ``accounted``, ``hints`` and
the accounting numbers of ``crackops.slurm.units.efficiency``); ``crackops.compare`` calls them.
"""

from __future__ import annotations

import math
from typing import Any

from crackops import fmt
from crackops.fmt import as_number as _num
from crackops.slurm.units import parse_duration_s, suggest_cpus, suggest_mem, suggest_time




# above these a ratio is not believable (memory not enforced, children counted twice...)
PLAUSIBLE = {"cpu_eff": 1.05, "mem_eff": 1.5, "time_eff": 1.2}


def implausible(acct: dict[str, Any]) -> list[str]:
    """The efficiency ratios not to believe: the Slurm module's own verdict when it gave one."""
    if not acct:
        return []
    if isinstance(acct.get("implausible"), list):
        return [k for k in acct["implausible"] if k in PLAUSIBLE]
    return [k for k, lim in PLAUSIBLE.items() if _num(acct.get(k)) is not None and not 0 <= acct[k] <= lim]


def _ids(ids: list[str], n: int = 4) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def efficiency_hints(rows: list[dict[str, Any]]) -> list[str]:
    """The Slurm runs' right-sizing hints, runs with the same advice merged, plus one request
    that would have fitted every run (the next sweep's ``--mem``/``--time``/``--cpus-per-task``)."""
    by_advice: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        for h in row.get("hints") or []:
            obs, sep, advice = h.rpartition(": ")
            key = advice if sep else h
            by_advice.setdefault(key, []).append((row["job_id"], obs if sep else ""))
    hints = []
    for advice, items in by_advice.items():
        ids = [j for j, _ in items]
        first_id, obs = items[0]
        if len(items) == 1:
            hints.append(f"{first_id}: {obs + ': ' if obs else ''}{advice}")
        else:
            hints.append(f"{_ids(ids)}: {advice}" + (f" ({first_id}: {obs})" if obs else ""))
    acc = [row for row in rows if row.get("accounted") and row.get("state") == "COMPLETED"]
    if len(acc) > 1:
        hints += _sweep_request(acc)
    return hints


def _sweep_request(acc: list[dict[str, Any]]) -> list[str]:
    def vals(key: str) -> list[float]:
        return [x for x in (_num(r.get(key)) for r in acc) if x is not None]

    rss, req, el, lim = vals("max_rss_mb"), vals("req_mem_mb"), vals("elapsed_s"), vals("timelimit_s")
    busy = [r["total_cpu_s"] / r["elapsed_s"] for r in acc
            if _num(r.get("total_cpu_s")) is not None and _num(r.get("elapsed_s"))]
    bits, ask = [], []

    def _gb(mb: float) -> str:
        return fmt.mem(mb)

    def _hms(seconds: float) -> str:
        return fmt.duration(seconds, "slurm")

    if rss and req:
        span = _gb(max(rss)) if _gb(min(rss)) == _gb(max(rss)) else f"{_gb(min(rss))}..{_gb(max(rss))}"
        bits.append(f"peak memory {span} of {_gb(max(req))} asked")
        if float(suggest_mem(max(rss))[:-1]) * 1024 < max(req):
            ask.append(f"--mem {suggest_mem(max(rss))}")
    if el and lim:
        span = _hms(max(el)) if _hms(min(el)) == _hms(max(el)) else f"{_hms(min(el))}..{_hms(max(el))}"
        bits.append(f"elapsed {span} of {_hms(max(lim))} allowed")
        t = suggest_time(max(el))
        if (parse_duration_s(t) or math.inf) < max(lim):
            ask.append(f"--time {t}")
    cpus = vals("alloc_cpus")
    if busy and cpus:
        need = max(suggest_cpus(b, 1.0) for b in busy)
        if need < max(cpus):
            ask.append(f"--cpus {need}")
    out = [f"across {len(acc)} completed Slurm runs: " + "; ".join(bits)] if bits else []
    if ask:
        out.append(f"a request that would have fitted all {len(acc)}: {' '.join(ask)}")
    return out
