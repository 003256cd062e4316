"""Comparing runs: the metrics that matter, only the config values that differ, seed groups.

Pure functions over registry runs; no TensorFlow, no I/O.

    from crackops.compare import compare_runs, filter_runs
    runs = filter_runs(Registry().list(), states=["COMPLETED"], where=["image_size=64"])
    cmp = compare_runs(runs, sort="f1")
    cmp.best, cmp.best_group, cmp.verdict["text"]

Runs whose config is identical except ``seed`` form a group: each metric reduced to mean ± std
(sample std, n-1) over the runs that have it, with n. The best run (and the best group) is the one
with the highest test accuracy, ties broken by F1, then by fewer missed cracks.

Right-sizing advice from Slurm accounting comes from ``crackops.slurm.rightsize``; which runs are
compared (state, name, ``--since``, ``--where``, final attempts) from ``crackops.filters``; whether
a lead is real from ``crackops.verdict``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from crackops.errors import UsageError
# the filters moved to crackops.filters; these names stay importable from here
from crackops.filters import IGNORED_CONFIG, filter_runs, final_attempts, parse_where, value_matches  # noqa: F401
from crackops.fmt import as_number as _num, parse_since  # noqa: F401  (importable from here)
from crackops.metrics import BY_KEY, METRICS as ALL_METRIC_DEFS, Metric
from crackops.registry import Run
from crackops.slurm.rightsize import efficiency_hints, implausible
from crackops.verdict import (difference_noise, group_rank as _group_rank, group_verdict, pooled_seed_variance,
                              pp as _pp, rank_key, run_verdict)

# what varies between the runs of one group
GROUP_BY_EXCEPT = "seed"
# config keys that decide which images end up in the test split
SPLIT_CONFIG = ("data_dir", "test_dir", "test_fraction", "max_images")
# config keys that change nothing the model learns (how often to back up, where a rerun resumed
# from, how many requeues): never a group of their own, never shown as a difference
NON_TRAINING = ("backup_minutes", "resume_from", "max_attempts")
# where the images came from: a difference worth a warning (see _split_warnings), not a column, unless
# the groups cannot be told apart without it
DATA_SOURCE = ("data_dir", "test_dir", "max_images")


# the metric table (crackops.metrics) split by where the numbers come from
METRICS: list[Metric] = [m for m in ALL_METRIC_DEFS if m.source in ("metrics", "derived")]
EFFICIENCY: list[Metric] = [m for m in ALL_METRIC_DEFS if m.source == "accounting"]
ALL_METRICS: dict[str, Metric] = BY_KEY
# the other numbers each row carries (JSON / CSV), not shown as table columns
EXTRA_ROW_KEYS = ("test_n", "test_tp", "test_tn", "test_errors", "train_accuracy", "val_accuracy",
                  "train_images_per_s")
ACCOUNTING_KEYS = ("elapsed_s", "timelimit_s", "alloc_cpus", "req_mem_mb", "max_rss_mb", "total_cpu_s")

SORT_ALIASES = {
    **{alias: m.key for m in ALL_METRIC_DEFS for alias in m.aliases},
    "date": "submitted_at", "submitted": "submitted_at", "id": "job_id",
}
ROW_SORT_KEYS = ("job_id", "name", "state", "submitted_at", "group")


@dataclass
class Group:
    """Runs with the same config except the seed."""

    id: str                                   # g1, g2, ... in order of first submission
    config: dict[str, Any]                    # the differing config values (not the seed) that define it
    job_ids: list[str]
    seeds: list[Any]
    n_runs: int                               # all runs of the group, failed ones included
    n: int                                    # runs with test metrics
    stats: dict[str, dict[str, Any]]          # metric -> {"mean", "std", "n", "min", "max"}
    sweep_id: str | None = None               # set when the compared runs come from several sweeps
    label_keys: list[str] | None = None       # the config keys its label names (default: all of config)

    @property
    def label(self) -> str:
        keys = self.config if self.label_keys is None else self.label_keys
        return ", ".join(f"{k}={_fmt_value(self.config.get(k))}" for k in keys) or "same config"

    def mean(self, key: str) -> float | None:
        return (self.stats.get(key) or {}).get("mean")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "config": self.config, "job_ids": self.job_ids,
                "seeds": self.seeds, "n_runs": self.n_runs, "n": self.n, "stats": self.stats,
                "sweep_id": self.sweep_id}


@dataclass
class Comparison:
    runs: list[Run]
    differing: list[str]                      # config keys whose values differ (JSON, CSV: all of them)
    rows: list[dict[str, Any]]                # one per run: job_id, name, state, metrics, efficiency, config
    warnings: list[str] = field(default_factory=list)
    best: str | None = None                   # job id with the best test accuracy (ties: F1, then fewer FN)
    groups: list[Group] = field(default_factory=list)
    best_group: str | None = None             # group id, when some config was run with several seeds
    verdict: dict[str, Any] | None = None     # the winner, by how much, and whether that beats the noise
    hints: list[str] = field(default_factory=list)   # right-sizing advice from Slurm accounting
    plot_path: Path | None = None             # where crackops.api.compare saved the figure, if asked
    across_sweeps: list[dict[str, Any]] = field(default_factory=list)  # grid points shared by sweeps
    across_sweeps_reason: str | None = None   # runs of several sweeps, none lined up: why
    earlier_attempts: list[str] = field(default_factory=list)  # runs left out: a rerun here continues them
    shown: list[str] | None = None            # the differing keys tables, labels and the legend show

    @property
    def shown_differing(self) -> list[str]:
        """The differing config keys worth a column: not bookkeeping (:data:`NON_TRAINING`), nor
        where the data came from (:data:`DATA_SOURCE`) unless the groups need it to be told apart."""
        return self.differing if self.shown is None else self.shown

    @property
    def hidden_differing(self) -> list[str]:
        return [k for k in self.differing if k not in self.shown_differing]

    @property
    def replicated(self) -> bool:
        """Whether grouping by seed reduces anything (some config ran more than once)."""
        return any(g.n_runs > 1 for g in self.groups)

    @property
    def has_accounting(self) -> bool:
        return any(r.get("accounted") for r in self.rows)

    @property
    def group_differing(self) -> list[str]:
        return [k for k in self.shown_differing if k != GROUP_BY_EXCEPT]

    def to_dict(self) -> dict[str, Any]:
        return {"differing_config": self.differing, "runs": self.rows, "warnings": self.warnings,
                "best": self.best, "groups": [g.to_dict() for g in self.groups], "best_group": self.best_group,
                "verdict": self.verdict, "hints": self.hints, "across_sweeps": self.across_sweeps,
                "across_sweeps_reason": self.across_sweeps_reason, "shown_config": self.shown_differing,
                "earlier_attempts": self.earlier_attempts}


# ---------------------------------------------------------------------------------------------- helpers

def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "None" if v is None else str(v)




def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for c in configs for k in c} - IGNORED_CONFIG)
    return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]


def group_key(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items()
                       if k not in IGNORED_CONFIG and k not in NON_TRAINING and k != GROUP_BY_EXCEPT},
                      sort_keys=True, default=str)


def shown_keys(runs: list[Run], differing: list[str]) -> list[str]:
    """``differing`` without the bookkeeping keys, and without the data-source keys unless runs that
    are not one group (other settings) would look the same without them."""
    shown = [k for k in differing if k not in NON_TRAINING and k not in DATA_SOURCE]

    def looks(keys: list[str]) -> int:
        return len({json.dumps([r.config.get(k) for k in keys if k != GROUP_BY_EXCEPT], default=str) for r in runs})

    points = len({group_key(r.config) for r in runs})
    for k in (k for k in differing if k in DATA_SOURCE):
        if looks(shown) < points:
            shown.append(k)
    return [k for k in differing if k in shown]


def reduce(values: Iterable[Any]) -> dict[str, Any]:
    """mean, sample std (None below two values), n, min and max of the numbers among ``values``."""
    xs = [x for x in (_num(v) for v in values) if x is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0, "min": None, "max": None}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else None,
            "n": len(xs), "min": min(xs), "max": max(xs)}


def make_row(run: Run, differing: list[str]) -> dict[str, Any]:
    m = (run.metrics or {}) if run.state == "COMPLETED" else {}   # only a COMPLETED run is ranked
    acct = run.accounting or {}
    row: dict[str, Any] = {"job_id": run.shown_id, "name": run.name, "backend": run.backend, "state": run.state,
                           "collected": bool(m), "submitted_at": run.submitted_at,
                           "seed": run.config.get("seed"), "group": None}
    row.update({mt.key: (mt.value(run) if m else None) for mt in METRICS})
    row.update({k: m.get(k) for k in EXTRA_ROW_KEYS})
    row["accounted"] = bool(acct)
    row.update({mt.key: mt.value(run) for mt in EFFICIENCY})
    row.update({k: acct.get(k) for k in ACCOUNTING_KEYS})
    row["hints"] = list(acct.get("hints") or [])
    row["implausible"] = implausible(acct)
    row["config"] = {k: run.config.get(k) for k in differing}
    row["test_split"] = (m.get("split_fingerprint") or {}).get("test")
    if run.state != "COMPLETED" or run.reason:
        row["reason"] = run.reason
    return row


# ---------------------------------------------------------------------------------------------- compare

def compare_runs(runs: list[Run], *, sort: str | None = None, group: bool = True) -> Comparison:
    """Compare runs side by side. ``sort``: see :func:`resolve_sort`; ``group``: reduce seed groups."""
    configs = [r.config for r in runs]
    diff = differing_keys(configs) if len(runs) > 1 else []
    rows = [make_row(r, diff) for r in runs]
    warnings = _split_warnings(runs, diff) + _sanity_warnings(rows)
    uncollected = [r.shown_id for r in runs if r.metrics is None or r.state != "COMPLETED"]
    if uncollected:
        shown = ", ".join(uncollected[:8]) + (f" and {len(uncollected) - 8} more" if len(uncollected) > 8 else "")
        warnings.append(f"no metrics for {shown} (not collected, or not completed): shown without numbers")

    scored = [row for row in rows if row.get("test_accuracy") is not None]
    best = None
    if len(scored) > 1:
        best = max(scored, key=lambda r: rank_key(r["test_accuracy"], r["test_f1"], r["test_fn"]))["job_id"]

    groups = make_groups(runs, rows, diff) if group else []
    cmp = Comparison(runs=runs, differing=diff, rows=rows, warnings=warnings, best=best, groups=groups,
                     shown=shown_keys(runs, diff))
    for g in groups:
        g.label_keys = [k for k in cmp.shown_differing if k in g.config]
    ranked_groups = [g for g in groups if g.n]
    if cmp.replicated and len(ranked_groups) > 1:
        cmp.best_group = max(ranked_groups, key=_group_rank).id
    cmp.verdict = make_verdict(cmp)
    cmp.across_sweeps = align_sweeps(runs, groups)
    if not cmp.across_sweeps:
        cmp.across_sweeps_reason = no_shared_points_reason(runs, rows)
    cmp.hints = efficiency_hints(rows)
    if sort:
        sort_comparison(cmp, sort)
    return cmp


def _sweeps_of(runs: list[Run]) -> set[str]:
    return {r.sweep_id for r in runs if getattr(r, "sweep_id", None)}


def make_groups(runs: list[Run], rows: list[dict[str, Any]], differing: list[str]) -> list[Group]:
    """Runs with the same config except the seed; runs from several sweeps also by sweep (the same
    grid point of two sweeps is two groups, lined up by :func:`align_sweeps`)."""
    keys = [k for k in differing if k != GROUP_BY_EXCEPT and k not in NON_TRAINING]
    by_sweep = len(_sweeps_of(runs)) > 1
    by_key: dict[str, list[tuple[Run, dict[str, Any]]]] = {}
    for r, row in zip(runs, rows):
        k = group_key(r.config) + (f"|{r.sweep_id}" if by_sweep else "")
        by_key.setdefault(k, []).append((r, row))
    # number groups by first submission so ids are stable under any --sort
    ordered = sorted(by_key.values(), key=lambda members: min((m[0].submitted_at, m[0].job_id) for m in members))
    groups = []
    for i, members in enumerate(ordered, 1):
        gid = f"g{i}"
        ok = [row for _, row in members if row.get("test_accuracy") is not None]
        stats = {k: reduce(row.get(k) for row in ok if k not in (row.get("implausible") or ()))
                 for k in (*ALL_METRICS, "test_n")}
        for _, row in members:
            row["group"] = gid
        first = members[0][0]
        groups.append(Group(id=gid, config={k: first.config.get(k) for k in keys},
                            job_ids=[r.shown_id for r, _ in members],
                            seeds=[r.config.get(GROUP_BY_EXCEPT) for r, _ in members],
                            n_runs=len(members), n=len(ok), stats=stats,
                            sweep_id=first.sweep_id if by_sweep else None))
    return groups


def align_sweeps(runs: list[Run], groups: list[Group]) -> list[dict[str, Any]]:
    """For runs from two or more sweeps: every grid point (config without seed) that several sweeps
    ran, their mean test accuracies side by side, and whether the gap beats the seed noise (more
    than two standard errors of the difference of the means: 2·sqrt(sa²/na + sb²/nb))."""
    if len(_sweeps_of(runs)) < 2:
        return []
    first_run = {r.shown_id: r for r in runs}
    pooled, _dof = pooled_seed_variance(groups)
    points: dict[str, list[Group]] = {}
    for g in groups:
        if g.sweep_id and g.n:
            points.setdefault(group_key(first_run[g.job_ids[0]].config), []).append(g)
    out = []
    for members in points.values():
        if len({g.sweep_id for g in members}) < 2:
            continue
        ranked = sorted(members, key=_group_rank, reverse=True)
        a, b = ranked[0], ranked[-1]
        delta = a.mean("test_accuracy") - b.mean("test_accuracy")
        noise = difference_noise(a, b, pooled) if a.n > 1 and b.n > 1 else None
        if noise is None:
            real, why = None, "not enough runs to know: a single run on one side, add seeds"
        else:
            real = delta > noise
            why = f"{'beyond' if real else 'within'} the noise (±{_pp(noise)})"
        out.append({"label": a.label, "groups": [{"sweep_id": g.sweep_id, "group": g.id, "n": g.n,
                                                  "test_accuracy": g.stats["test_accuracy"]}
                                                 for g in members],
                    "best_sweep": a.sweep_id, "delta": delta, "noise": noise, "real": real, "why": why})
    return out


def no_shared_points_reason(runs: list[Run], rows: list[dict[str, Any]],
                            names: dict[str, str] | None = None) -> str | None:
    """Why runs of two or more sweeps line up no grid point (None for fewer sweeps): no point was
    run by two sweeps (and which settings keep them apart), or the shared points lack finished runs
    on one side. ``names``: sweep id -> the name to say."""
    sweeps = sorted(_sweeps_of(runs))
    if len(sweeps) < 2:
        return None
    say = (names or {}).get
    points: dict[str, dict[str, bool]] = {s: {} for s in sweeps}   # sweep -> grid point -> has metrics
    values: dict[str, dict[str, set[str]]] = {}                      # config key -> sweep -> values
    for r, row in zip(runs, rows):
        if not r.sweep_id:
            continue
        k = group_key(r.config)
        points[r.sweep_id][k] = points[r.sweep_id].get(k, False) or row.get("test_accuracy") is not None
        for key, v in r.config.items():
            if key not in IGNORED_CONFIG and key != GROUP_BY_EXCEPT:
                values.setdefault(key, {}).setdefault(r.sweep_id, set()).add(_fmt_value(v))
    seen: dict[str, list[str]] = {}
    for s, pts in points.items():
        for k in pts:
            seen.setdefault(k, []).append(s)
    shared = [k for k, ss in seen.items() if len(ss) > 1]
    if not shared:
        apart = [key for key, per in values.items() if len(per) > 1 and not set.intersection(*per.values())]
        if apart:
            shown = ", ".join(f"{key} (" + "; ".join(f"{say(s, s)}: {'/'.join(sorted(per[s]))}" for s in sweeps if s in per)
                              + ")" for key in apart[:3] for per in [values[key]])
            return f"the sweeps share no grid point: their runs differ in {shown}"
        return "the sweeps share no grid point: no combination of settings was run by more than one of them"
    both = [k for k in shared if sum(points[s].get(k, False) for s in sweeps) > 1]
    if not both:
        return (f"the {len(shared)} grid point{'s' if len(shared) != 1 else ''} the sweeps share "
                "{have} finished runs with metrics in only one sweep (or none) yet".format(
                    have="have" if len(shared) != 1 else "has"))
    return None


def _split_warnings(runs: list[Run], differing: list[str]) -> list[str]:
    fps = {(r.metrics or {}).get("split_fingerprint", {}).get("test") for r in runs if r.metrics}
    fps.discard(None)
    if len(fps) <= 1:
        return []
    data_keys = [k for k in SPLIT_CONFIG if k in differing]
    base = ("runs used different test splits (different data, seed or fractions): "
            "their test metrics are not measured on the same images")
    if data_keys:
        return [f"{base}; {', '.join(data_keys)} differ, so differences in test metrics may come from the data"]
    if GROUP_BY_EXCEPT in differing:
        return [f"{base}; the seed also picks the test split, so the ± std of a group includes that variation"]
    return [f"{base}; the data changed on disk between runs with the same settings"]


def _sanity_warnings(rows: list[dict[str, Any]]) -> list[str]:
    odd = [f"{row['job_id']} {k} {row[k]:.0%}" for row in rows for k in row.get("implausible") or []]
    if odd:
        return [f"implausible efficiency values from sacct, shown with '?' and left out of the means: "
                f"{', '.join(odd)}"]
    return []


def make_verdict(cmp: Comparison) -> dict[str, Any] | None:
    """Which configuration (or run) is best, by how much, and whether the gap beats the noise (the
    seed spread and the test set's size together: :mod:`crackops.verdict`)."""
    if cmp.best_group:
        ranked = sorted((g for g in cmp.groups if g.n), key=_group_rank, reverse=True)
        return group_verdict(ranked, cmp.groups)
    if cmp.best:
        scored = sorted((r for r in cmp.rows if r.get("test_accuracy") is not None),
                        key=lambda r: rank_key(r["test_accuracy"], r["test_f1"], r["test_fn"]), reverse=True)
        return run_verdict(scored[0], scored[1])
    return None


# ---------------------------------------------------------------------------------------------- sorting

def resolve_sort(spec: str, config_keys: Iterable[str] = ()) -> tuple[str, bool]:
    """'f1' -> ('test_f1', descending). Metrics sort best first (``missed`` ascending, ``acc``
    descending); anything else ascending. Append ``:asc`` or ``:desc`` to choose."""
    text = spec.strip()
    order = None
    if ":" in text:
        text, order = text.rsplit(":", 1)
        order = order.strip().lower()
        if order not in ("asc", "desc"):
            raise UsageError(f"--sort {spec!r}: the order must be asc or desc", "e.g. --sort f1:desc")
    key = text.strip().lower().replace("-", "_")
    key = SORT_ALIASES.get(key, key)
    known = set(ALL_METRICS) | set(ROW_SORT_KEYS) | set(config_keys)
    if key not in known:
        raise UsageError(f"cannot sort by {spec!r}",
                         f"use a metric ({', '.join(m.aliases[0] for m in ALL_METRIC_DEFS if m.aliases)}), "
                         "a config key (e.g. learning_rate), submitted, name or job_id; add :asc or :desc")
    if order is None:
        m = ALL_METRICS.get(key)
        descending = bool(m and m.better == "high")
    else:
        descending = order == "desc"
    return key, descending


def _sort_value(v: Any) -> tuple[int, Any]:
    if v is None:
        return (2, "")
    n = _num(v)
    return (0, n) if n is not None else (1, str(v))


def sort_comparison(cmp: Comparison, spec: str) -> Comparison:
    """Sort rows (and groups, by their means) in place; runs without the value go last."""
    key, desc = resolve_sort(spec, {k for r in cmp.runs for k in r.config})

    configs = {r.shown_id: r.config for r in cmp.runs}

    def row_value(row: dict[str, Any]) -> Any:
        if key in row:
            return row[key]
        return configs[row["job_id"]].get(key)

    def ordered(items: list[Any], value) -> list[Any]:
        have = [x for x in items if value(x) is not None]
        missing = [x for x in items if value(x) is None]
        return sorted(have, key=lambda x: _sort_value(value(x)), reverse=desc) + missing

    cmp.rows = ordered(cmp.rows, row_value)
    by_id = {r.shown_id: r for r in cmp.runs}
    cmp.runs = [by_id[row["job_id"]] for row in cmp.rows]

    def group_value(g: Group) -> Any:
        if key in ALL_METRICS:
            return g.mean(key)
        if key in g.config:
            return g.config[key]
        vals = [row_value(row) for row in cmp.rows if row["group"] == g.id]
        return vals[0] if vals else None

    cmp.groups = ordered(cmp.groups, group_value)
    return cmp
