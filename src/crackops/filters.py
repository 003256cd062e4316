"""Which runs a comparison takes: by state, name glob, submit time and config values, and only the
final attempt of a rerun chain. Pure functions over registry runs (``compare``, ``compare --sweep``
and the API use them)."""

from __future__ import annotations

import fnmatch
import math
import re
from typing import Any, Iterable

from crackops.errors import UsageError
from crackops.fmt import parse_since
from crackops.registry import Run
from crackops.states import LIVE_STATES, TERMINAL_STATES

# config keys that identify where things went, not how the model was trained
IGNORED_CONFIG = {"job_id", "out_root", "submission_id"}


def parse_where(items: Iterable[str]) -> list[tuple[str, str, str]]:
    """['learning_rate=0.001', 'image_size!=64'] -> [(key, op, value)]."""
    out = []
    for it in items:
        m = re.match(r"^\s*([A-Za-z_][\w.-]*)\s*(!=|==|=)\s*(.*?)\s*$", it)
        if not m:
            raise UsageError(f"--where {it!r} is not KEY=VALUE", "e.g. --where learning_rate=0.001 "
                             "(or KEY!=VALUE; strings may use * and ?)")
        key, op, value = m.groups()
        out.append((key.replace("-", "_"), "!=" if op == "!=" else "=", value))
    return out


def value_matches(actual: Any, text: str) -> bool:
    """A config value against what was typed: numbers numerically, booleans and None by name, strings as globs."""
    t = text.strip()
    if actual is None:
        return t.lower() in ("none", "null", "")
    if isinstance(actual, bool):
        return t.lower() in (("true", "1", "yes", "on") if actual else ("false", "0", "no", "off"))
    if isinstance(actual, (int, float)):
        try:
            return math.isclose(float(actual), float(t), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return fnmatch.fnmatchcase(str(actual), t)


def final_attempts(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """``(kept, left_out)``: a run that another run here continues (``Run.continues``, set by
    ``crackops rerun``) is an earlier attempt of that one; only the newest of each chain is kept."""
    continued = {r.continues for r in runs if r.continues}
    return ([r for r in runs if r.job_id not in continued], [r for r in runs if r.job_id in continued])


def filter_runs(runs: list[Run], *, states: Iterable[str] | None = None, name: str | None = None,
                since: str | float | None = None, where: Iterable[str] | None = None) -> list[Run]:
    """Keep the runs in one of ``states`` (any case), whose name matches the glob ``name``, submitted
    at or after ``since`` (see :func:`parse_since`), and whose config matches every ``where``."""
    out = list(runs)
    if states:
        wanted = {s.strip().upper() for st in states for s in st.split(",") if s.strip()}
        unknown = wanted - TERMINAL_STATES - LIVE_STATES
        if unknown:
            raise UsageError(f"unknown state {', '.join(sorted(unknown))}",
                             "use Slurm's names, e.g. --state COMPLETED or --state FAILED,TIMEOUT")
        out = [r for r in out if r.state in wanted]
    if name:
        out = [r for r in out if fnmatch.fnmatchcase(r.name or "", name)]
    if since is not None:
        t0 = since if isinstance(since, (int, float)) else parse_since(since)
        out = [r for r in out if r.submitted_at >= t0]
    conds = parse_where(where or [])
    if conds:
        known = {k for r in runs for k in r.config}
        bad = [k for k, _, _ in conds if k not in known]
        if bad and runs:
            raise UsageError(f"--where: no run has a config value {', '.join(bad)}",
                             "config keys: " + ", ".join(sorted(known - IGNORED_CONFIG)))
        for key, op, value in conds:
            out = [r for r in out if value_matches(r.config.get(key), value) == (op == "=")]
    return out
