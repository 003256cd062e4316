"""Sweeps: a grid of config values times seeds, submitted as one thing and recorded as one thing.

    from crackops import api
    base = api.config_from_profile("default", data_dir="datasets/concrete", epochs=5)
    sw = api.sweep(base, {"learning_rate": [1e-3, 3e-4], "batch_size": [32, 64]}, seeds=3,
                   backend="slurm", max_parallel=4, name="lr-bs")
    sw.runs; sw.status().counts; sw.wait(); sw.compare().effects

Grid keys are ``TrainConfig`` fields (``seed`` excepted: use ``seeds``) or resource fields
(``cpus``, ``mem``, ``time``, ``partition``, ``qos``, ``gres``, ``account``). Values are parsed to
the field's type and every grid point is validated before anything is submitted.

This module is the sweep's domain, pure: the grid (parsing, validation, expansion into runs), the
plan (the backend's ``plan_batch`` says how the runs are grouped: Slurm job arrays by resource shape
cut at MaxArraySize, or one local queue), a sweep's status summary and which keys matter. Submitting
goes through the API's one pipeline (``crackops.api.sweeping``): the backend's ``submit_batch``
(``crackops.backends.slurm_batch``, ``crackops.backends.local_queue``), noted before the first
submission where the backend can find a lost batch again, recorded as one sweep.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import secrets
import statistics
import time
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence

from crackops.config import MAX_SEED, Resources, TrainConfig
from crackops.errors import UsageError
from crackops.registry import Run, Sweep
from crackops.states import TERMINAL_STATES
from crackops.verdict import key_effects  # noqa: F401  (where it was; crackops.verdict holds it)

RESOURCE_KEYS = ("cpus", "mem", "time", "partition", "account", "qos", "gres")
NOT_GRID = {"seed": "use --seeds N (seeds are not a grid key)", "job_id": "job ids are given by the scheduler",
            "out_root": "use --out"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


# ------------------------------------------------------------------ grid

def _field_types() -> dict[str, tuple[type, bool]]:
    """key -> (base type, None allowed) for grid keys."""
    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, tuple[type, bool]] = {}
    for f in fields(TrainConfig):
        t = hints[f.name]
        args = typing.get_args(t)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), t) if args else t
        out[f.name] = (base, optional)
    rhints = typing.get_type_hints(Resources)
    for k in RESOURCE_KEYS:
        t = rhints[k]
        args = typing.get_args(t)
        out[k] = (next((a for a in args if a is not type(None)), t) if args else t, type(None) in args)
    return out


def _type_word(t: type) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(t, t.__name__)


def parse_value(key: str, raw: Any, typ: type, optional: bool) -> Any:
    """One grid value (text from the command line, or already typed from Python) as ``typ``."""
    example = {int: "5,10", float: "1e-3,3e-4", bool: "true,false", str: "a,b"}.get(typ, "a,b")
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "auto") and optional):
        if optional:
            return None
        raise UsageError(f"--grid {key}: {key} cannot be empty", f"e.g. --grid {key}={example}")
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if typ is bool:
            if isinstance(text, bool):
                return text
            if str(text).lower() in _TRUE:
                return True
            if str(text).lower() in _FALSE:
                return False
            raise ValueError
        if typ is int:
            if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
                raise ValueError
            if isinstance(text, str):
                f = float(text)
                if not f.is_integer() or not all(c.isdigit() or c in "+-eE." for c in text):
                    raise ValueError
                return int(f)
            return int(text)
        if typ is float:
            if isinstance(text, bool):
                raise ValueError
            v = float(text)
            if math.isnan(v) or math.isinf(v):
                raise ValueError
            return v
        if typ is str:
            if text == "":
                raise ValueError
            return str(text)
    except (TypeError, ValueError):
        more = " (or none)" if optional else ""
        raise UsageError(f"--grid {key}={raw}: {key} takes {_type_word(typ)}{more}",
                         f"e.g. --grid {key}={example}") from None
    return text


def check_key(key: str) -> tuple[type, bool]:
    types_ = _field_types()
    if key in NOT_GRID:
        raise UsageError(f"--grid {key}: not a grid key", NOT_GRID[key])
    if key not in types_:
        close = difflib.get_close_matches(key, [k for k in types_ if k not in NOT_GRID], n=1)
        hint = f"did you mean {close[0]}?" if close else "see crackops sweep --help for the keys"
        keys = ", ".join(k for k in types_ if k not in NOT_GRID)
        raise UsageError(f"--grid {key}: unknown config key {key!r}", f"{hint} Keys: {keys}")
    return types_[key]


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["learning_rate=1e-3,3e-4", "batch_size=32,64"]`` -> typed ``{key: [values]}``, in order."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--grid {item!r} is not KEY=V1,V2", "e.g. --grid learning_rate=1e-3,3e-4")
        key, _, vals = item.partition("=")
        key = key.strip().replace("-", "_")
        if key in grid:
            raise UsageError(f"--grid {key} is given twice", f"put all values in one: --grid {key}=V1,V2,V3")
        raw = [v for v in vals.split(",")]
        if not vals.strip() or any(not v.strip() for v in raw):
            raise UsageError(f"--grid {item!r}: an empty value", f"e.g. --grid {key}=V1,V2")
        grid[key] = raw
    return normalize_grid(grid)


def normalize_grid(grid: dict[str, Sequence[Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        typ, optional = check_key(key)
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            values = [values]
        vals = [parse_value(key, v, typ, optional) for v in values]
        if not vals:
            raise UsageError(f"--grid {key}: no values", f"e.g. --grid {key}=V1,V2")
        dup = [v for i, v in enumerate(vals) if v in vals[:i]]
        if dup:
            raise UsageError(f"--grid {key}: value {dup[0]!r} is given twice", "list each value once")
        out[key] = vals
    return out


def seed_list(seeds: int | Sequence[int], base_seed: int) -> list[int]:
    if isinstance(seeds, bool):
        raise UsageError("--seeds takes a number of seeds", "e.g. --seeds 3")
    if isinstance(seeds, int):
        if seeds < 1:
            raise UsageError(f"--seeds {seeds} must be at least 1", "e.g. --seeds 3")
        if base_seed + seeds - 1 > MAX_SEED:   # checked here, before the jobs would fail one by one
            raise UsageError(f"--seeds {seeds} from --seed {base_seed} reaches seed {base_seed + seeds - 1}, above "
                             f"{MAX_SEED} (2**32 - 1)",
                             f"use a smaller --seed, or at most {max(0, MAX_SEED - base_seed + 1)} seeds")
        return [base_seed + i for i in range(seeds)]
    out = [int(s) for s in seeds]
    bad = [s for s in out if not 0 <= s <= MAX_SEED]
    if bad:
        raise UsageError(f"seed {bad[0]} is out of range", f"seeds go from 0 to {MAX_SEED} (2**32 - 1)")
    if not out or len(set(out)) != len(out):
        raise UsageError("seeds must be distinct, at least one", "e.g. seeds=[1, 2, 3]")
    return out


@dataclass
class PlannedRun:
    index: int
    point_index: int
    point: dict[str, Any]
    seed: int
    config: TrainConfig
    resources: Resources

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.point.items())


def expand(base: TrainConfig, resources: Resources, grid: dict[str, list[Any]],
           seeds: list[int]) -> list[PlannedRun]:
    """Every grid point times every seed, each config and resource set validated."""
    keys = list(grid)
    planned: list[PlannedRun] = []
    for p, combo in enumerate(itertools.product(*(grid[k] for k in keys)) if keys else [()]):
        point = dict(zip(keys, combo))
        train = {k: v for k, v in point.items() if k not in RESOURCE_KEYS}
        res_vals = {k: v for k, v in point.items() if k in RESOURCE_KEYS}
        label = ",".join(f"{k}={v}" for k, v in point.items()) or "the base config"
        try:
            res = dataclasses.replace(resources, **res_vals).validate()
        except UsageError as e:
            raise UsageError(f"grid point {label}: {e.message}", e.hint) from None
        for s in seeds:
            cfg = dataclasses.replace(base, **train, seed=s)
            try:
                cfg.validate()
            except UsageError as e:
                raise UsageError(f"grid point {label}: {e.message}", e.hint) from None
            planned.append(PlannedRun(index=len(planned), point_index=p, point=point, seed=s, config=cfg,
                                      resources=res))
    return planned


# ------------------------------------------------------------------ submit

@dataclass
class SweepPlan:
    """What a sweep would submit (``dry_run``) before anything is."""

    name: str
    backend: str
    grid: dict[str, list[Any]]
    seeds: list[int]
    runs: list[PlannedRun]
    max_parallel: int | None
    arrays: list[dict[str, Any]] = field(default_factory=list)   # Slurm: index ranges per array
    script: str = ""
    array_size: int | None = None                                # Slurm: MaxArraySize used
    batch: Any = None                                            # the backend's BatchPlan

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "grid": self.grid, "seeds": self.seeds,
                "max_parallel": self.max_parallel, "arrays": self.arrays, "script": self.script,
                "max_array_size": self.array_size,
                "runs": [{"index": r.index, "point": r.point_index, "seed": r.seed, "values": r.point,
                          "resources": {k: getattr(r.resources, k) for k in ("cpus", "mem", "time")}}
                         for r in self.runs]}


def new_sweep_id() -> str:
    return time.strftime("S%y%m%d-%H%M%S-") + secrets.token_hex(2)


def plan(base: TrainConfig, grid: dict[str, Sequence[Any]], seeds: int | Sequence[int] = 1,
         resources: Resources | None = None, *, backend: str = "local", name: str | None = None,
         max_parallel: int | None = None) -> SweepPlan:
    """The runs of a sweep and how its backend would submit them (``Backend.plan_batch``: one
    local queue, or Slurm job arrays by resource shape cut at MaxArraySize)."""
    from crackops.backends import get_backend

    be = get_backend(backend)   # an unknown name: UsageError listing the backends
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"--max-parallel {max_parallel} must be at least 1", "e.g. --max-parallel 4")
    if name is not None and not name.strip():
        raise UsageError("--name is empty", "e.g. --name lr-bs")
    resources = dataclasses.replace(resources or Resources()).validate()
    be.check(resources)
    base = dataclasses.replace(base)
    g = normalize_grid(grid)
    sl = seed_list(seeds, base.seed)
    runs = expand(base, resources, g, sl)
    batch = be.plan_batch([r.resources for r in runs], max_parallel)
    return SweepPlan(name=name or time.strftime("sweep-%y%m%d-%H%M%S"), backend=backend, grid=g, seeds=sl,
                     runs=runs, max_parallel=batch.max_parallel, arrays=batch.groups,
                     array_size=batch.extra.get("max_array_size"), batch=batch)


def run_name(sweep_name: str, r: PlannedRun) -> str:
    return f"{sweep_name}/p{r.point_index + 1}/s{r.seed}"


def member_run(tpl: dict[str, Any], job_id: str, backend: str, sweep_id: str, submitted_at: float,
               out_dir: str, log_out: Any, log_err: Any, extra: dict[str, Any]) -> Run:
    """A sweep's member run from its template (noted before sbatch) and what the scheduler gave it."""
    return Run(job_id=job_id, backend=backend, name=tpl["name"], state="PENDING", config=tpl["config"],
               resources=tpl["resources"], submitted_at=submitted_at, out_dir=out_dir, log_out=str(log_out),
               log_err=str(log_err), extra={**extra, **tpl["extra"]}, sweep_id=sweep_id,
               provenance=tpl["provenance"], retries=tpl.get("retries"))


# ------------------------------------------------------------------ status

LIVE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING", "SUSPENDED",
                "STOPPED"}


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


@dataclass
class SweepStatus:
    sweep: Sweep
    runs: list[Run]
    counts: dict[str, int]                # pending, running, done, failed, cancelled (last attempts)
    elapsed: dict[str, float | None]      # min, median, max (seconds, runs that started)
    peak_mem_mb: float | None
    hint: str | None
    code_changed: list[str]               # runs whose code changed between submit and start
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    calls: int = 0
    retried: list[Any] = field(default_factory=list)   # rerun.Plan of each --retries rerun submitted
    reruns: int = 0                       # earlier attempts: runs that a rerun continues
    scheduler_down: str | None = None     # the controller did not answer (api.StatusReport)

    @property
    def finished(self) -> bool:
        return all(r.terminal for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep.to_dict() | {"extra": {k: v for k, v in self.sweep.extra.items()
                                                          if k != "packages"}},
                "counts": self.counts, "reruns": self.reruns, "elapsed_s": self.elapsed, "peak_mem_mb": self.peak_mem_mb,
                "hint": self.hint, "code_changed": self.code_changed, "sources": self.sources,
                "warnings": self.warnings, "scheduler_calls": self.calls, "scheduler_down": self.scheduler_down,
                "retried": [p.to_dict() for p in self.retried], "runs": [r.to_dict() for r in self.runs]}


def summarize(sweep: Sweep, runs: list[Run]) -> SweepStatus:
    """Counts are of the last attempts: a run that a rerun continues is counted in ``reruns`` only."""
    from crackops.compare import final_attempts

    counts = {"pending": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    last, earlier = final_attempts(runs)
    for r in last:
        if r.state == "COMPLETED":
            counts["done"] += 1
        elif r.state == "CANCELLED":
            counts["cancelled"] += 1
        elif r.state in TERMINAL_STATES:
            counts["failed"] += 1
        elif r.state in LIVE_RUNNING:
            counts["running"] += 1
        else:
            counts["pending"] += 1
    el = [e for e in (r.elapsed_s for r in runs if r.started_at is not None or r.accounting) if e is not None]
    rss = [float(r.accounting["max_rss_mb"]) for r in runs if r.accounting and r.accounting.get("max_rss_mb")]
    hint = None
    done = [r for r in runs if r.state == "COMPLETED" and r.accounting]
    if done:
        from crackops import fmt

        els = sorted(float(r.elapsed_s or 0) for r in done)
        p95 = els[min(len(els) - 1, math.ceil(0.95 * len(els)) - 1)]
        peak = max(rss) if rss else None
        asked = done[0].resources
        bits = [f"--time {fmt.duration(max(60.0, p95 * 1.5), 'slurm')}"]
        if peak:
            bits.append(f"--mem {max(1, math.ceil(peak * 1.3 / 1024))}G")
        hint = (f"for the next sweep like this: {' '.join(bits)} (p95 elapsed and peak memory of "
                f"{len(done)} runs, plus a margin; asked {asked.get('time')} / {asked.get('mem')})")
    changed = [r.job_id for r in runs if (r.provenance or {}).get("code_changed")]
    return SweepStatus(sweep=sweep, runs=runs, counts=counts, reruns=len(earlier),
                       elapsed={"min": min(el) if el else None, "median": _median(el), "max": max(el) if el else None},
                       peak_mem_mb=max(rss) if rss else None, hint=hint, code_changed=changed)


# ------------------------------------------------------------------ compare: which keys matter

@dataclass
class SweepComparison:
    sweep: Sweep
    comparison: Any                      # crackops.compare.Comparison: one group per grid point
    effects: list[dict[str, Any]]        # per grid key: marginal means, spread, noise, matters

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": {"sweep_id": self.sweep.sweep_id, "name": self.sweep.name, "grid": self.sweep.grid,
                          "seeds": self.sweep.seeds},
                **self.comparison.to_dict(), "effects": self.effects}


