"""Is a lead real? The noise of test accuracies from the seed spread and the test set's size together.

A test accuracy measured on ``N`` images varies by ``p(1-p)/N`` (binomial) from the test set alone;
runs with other seeds vary by the seed spread, which a few seeds estimate badly (two runs can agree
to 0.0 pp by chance). So the variance of one run is taken as the larger of the two: the pooled
within-point seed variance (over every group with two or more runs) and the binomial variance of
its test set. A lead is real when it exceeds two standard errors of the difference of the means;
with a single run on one side the seed spread is unknown, and the verdict says there are not enough
runs to know. ``compare`` (best config or run), ``compare --sweep`` (which settings matter) and the
grid points shared by several sweeps all use this one definition, so they never contradict.

Pure: no I/O. Groups are :class:`crackops.compare.Group` (``n``, ``stats``, ``mean``, ``config``).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from crackops.fmt import as_number as _num

METRIC = "test_accuracy"


def pp(x: float) -> str:
    return f"{x * 100:.1f} pp"


def rank_key(acc: Any, f1: Any, fn: Any) -> tuple[float, float, float]:
    """Higher is better: test accuracy, then F1, then fewer missed cracks."""
    a, f, m = _num(acc), _num(f1), _num(fn)
    return (a if a is not None else -1.0, f if f is not None else -1.0, -(m if m is not None else math.inf))


def group_rank(g: Any) -> tuple[float, float, float]:
    return rank_key(g.mean("test_accuracy"), g.mean("test_f1"), g.mean("test_fn"))


def binomial_variance(p: float | None, n: Any) -> float | None:
    """The variance of an accuracy ``p`` measured on ``n`` test images (None when n is unknown)."""
    n = _num(n)
    if p is None or not n:
        return None
    return max(p * (1 - p), 1.0 / n) / n   # never 0 at 0 % or 100 %: at least one image's worth


def pooled_seed_variance(groups: list[Any], metric: str = METRIC) -> tuple[float | None, int]:
    """The within-group (seed) variance of ``metric`` pooled over groups with 2+ runs, and its dof."""
    parts = [(g.stats[metric]["std"] ** 2, g.stats[metric]["n"]) for g in groups
             if (g.stats.get(metric) or {}).get("std") is not None]
    dof = sum(n - 1 for _, n in parts)
    return (sum(v * (n - 1) for v, n in parts) / dof if dof > 0 else None), dof


def run_variance(g: Any, pooled: float | None, metric: str = METRIC) -> float | None:
    """One run's variance in group ``g``: the larger of the seed variance and its test set's."""
    binom = binomial_variance(g.mean(metric), (g.stats.get("test_n") or {}).get("mean"))
    if pooled is None:
        return None
    return max(pooled, binom or 0.0)


def difference_noise(a: Any, b: Any, pooled: float | None, metric: str = METRIC) -> float | None:
    """Two standard errors of the difference of the means of groups ``a`` and ``b`` (None: unknown)."""
    va, vb = run_variance(a, pooled, metric), run_variance(b, pooled, metric)
    if va is None or vb is None or not a.n or not b.n:
        return None
    return 2 * math.sqrt(va / a.n + vb / b.n)


def judge(delta: float, a: Any, b: Any, pooled: float | None) -> tuple[bool | None, float | None, str]:
    """Whether ``a``'s lead of ``delta`` over ``b`` is real, the noise, and why, in words."""
    if a.n < 2 or b.n < 2 or pooled is None:
        single = [g.id for g in (a, b) if g.n < 2]
        return None, None, ("not enough runs to know: " + (f"a single run in {' and '.join(single)}, so "
                            if single else "") + "the seed spread is unknown; add seeds")
    noise = difference_noise(a, b, pooled)
    spread = f"seed spread {pp(math.sqrt(pooled))} per run, at least the test set's"
    if delta > noise:
        return True, noise, f"beyond the noise (±{pp(noise)}: {spread})"
    return False, noise, f"within the noise (±{pp(noise)}: {spread}): not a clear winner"


def group_verdict(ranked: list[Any], groups: list[Any]) -> dict[str, Any]:
    """The best group against the runner-up (``ranked``: groups with metrics, best first)."""
    a, b = ranked[0], ranked[1]
    acc_a, acc_b = a.mean(METRIC), b.mean(METRIC)
    delta = acc_a - acc_b
    pooled, _dof = pooled_seed_variance(groups)
    real, noise, why = judge(delta, a, b, pooled)
    sd_a = a.stats[METRIC]["std"]
    text = (f"best config: {a.id} ({a.label}), test accuracy {acc_a:.2%}"
            + (f" ± {pp(sd_a)}" if sd_a is not None else "") + f" over n={a.n}; {pp(delta)} ahead of "
            f"{b.id} ({b.label}, {acc_b:.2%}, n={b.n}); {why}")
    fn_a, fn_b = a.mean("test_fn"), b.mean("test_fn")
    if fn_a is not None and fn_b is not None:
        text += f". Missed cracks {fn_a:.1f} vs {fn_b:.1f} on average"
    return {"kind": "group", "best": a.id, "runner_up": b.id, "metric": METRIC, "value": acc_a,
            "runner_up_value": acc_b, "delta": delta, "noise": noise, "real": real, "text": text}


def run_verdict(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The best single run against the runner-up (compare rows): the test sets' noise is known, the
    seed spread is not (one run each), so a lead beyond the first is still "not enough runs"."""
    delta = a[METRIC] - b[METRIC]
    va, vb = binomial_variance(a[METRIC], a.get("test_n")), binomial_variance(b[METRIC], b.get("test_n"))
    noise = None if va is None or vb is None else 2 * math.sqrt(va + vb)
    n_test = _num(a.get("test_n"))
    if noise is None:
        real, why = None, "test set size unknown: not enough to know"
    elif delta > noise:
        real, why = None, (f"beyond the noise of {int(n_test)} test images (±{pp(noise)}), but with one run "
                           "each the seed spread is unknown: not enough runs to know; run more seeds")
    else:
        real, why = False, (f"within the noise of {int(n_test)} test images (±{pp(noise)}): "
                            "not a clear winner; run more seeds")
    text = (f"best run: {a['job_id']}" + (f" ({a['name']})" if a.get("name") else "")
            + f", test accuracy {a[METRIC]:.2%}; {pp(delta)} ahead of {b['job_id']} "
            f"({b[METRIC]:.2%}); {why}")
    return {"kind": "run", "best": a["job_id"], "runner_up": b["job_id"], "metric": METRIC,
            "value": a[METRIC], "runner_up_value": b[METRIC], "delta": delta,
            "noise": noise, "real": real, "text": text}


def key_effects(grid: dict[str, list[Any]], groups: list[Any], metric: str = METRIC) -> list[dict[str, Any]]:
    """For each grid key with several values: the mean ``metric`` per value (over the other keys
    and the seeds), the spread between the best and worst value, and whether that spread beats the
    noise (two standard errors of the difference; a run's variance as in :func:`run_variance`, at
    the sweep's mean accuracy and test set size)."""
    pooled, _dof = pooled_seed_variance(groups, metric)
    scored_groups = [g for g in groups if g.mean(metric) is not None]
    sigma2 = None
    if pooled is not None and scored_groups:
        p = statistics.fmean(g.mean(metric) for g in scored_groups)
        ns = [n for n in ((g.stats.get("test_n") or {}).get("mean") for g in scored_groups) if n]
        binom = binomial_variance(p, statistics.fmean(ns)) if ns else None
        sigma2 = max(pooled, binom or 0.0)
    out = []
    for key, values in grid.items():
        if len(values) < 2:
            continue
        per: list[dict[str, Any]] = []
        for v in values:
            gs = [g for g in scored_groups if key in g.config and g.config.get(key) == v]
            n = sum(g.stats[metric]["n"] for g in gs)
            m = statistics.fmean(g.mean(metric) for g in gs) if gs else None
            per.append({"value": v, "mean": m, "n": n})
        scored = [x for x in per if x["mean"] is not None]
        if len(scored) < 2:
            out.append({"key": key, "values": per, "spread": None, "noise": None, "matters": None,
                        "text": f"{key}: not enough finished runs"})
            continue
        hi = max(scored, key=lambda x: x["mean"])
        lo = min(scored, key=lambda x: x["mean"])
        spread = hi["mean"] - lo["mean"]
        noise = 2 * math.sqrt(sigma2 * (1 / hi["n"] + 1 / lo["n"])) if sigma2 is not None else None
        matters = None if noise is None else spread > noise
        best = hi["value"]
        if matters is None:
            text = f"{key}: best {best} (+{spread:.2%}); not enough runs to know (one seed per point)"
        elif matters:
            text = f"{key} matters: {best} is best, {spread:.2%} over the worst value (noise ±{noise:.2%})"
        else:
            text = f"{key} does not clearly matter: spread {spread:.2%} within the noise (±{noise:.2%})"
        out.append({"key": key, "values": per, "best": best, "spread": spread, "noise": noise,
                    "matters": matters, "text": text})
    out.sort(key=lambda e: -(e["spread"] or 0))
    return out


def reconcile(verdict: dict[str, Any] | None, effects: list[dict[str, Any]],
              groups: list[Any]) -> dict[str, Any] | None:
    """A sweep's verdict that agrees with its "which settings matter" lines: a lead called real
    while no setting in which the two grid points differ clearly matters becomes "not a clear winner"."""
    if not verdict or verdict.get("kind") != "group" or verdict.get("real") is not True:
        return verdict
    by_id = {g.id: g for g in groups}
    a, b = by_id.get(verdict["best"]), by_id.get(verdict["runner_up"])
    if a is None or b is None:
        return verdict
    differ = {k for k in set(a.config) | set(b.config) if a.config.get(k) != b.config.get(k)}
    if any(e.get("matters") for e in effects if e["key"] in differ):
        return verdict
    keys = ", ".join(sorted(differ)) or "no grid key"
    verdict = dict(verdict, real=False)
    verdict["text"] = verdict["text"].replace(
        "beyond the noise", "beyond the noise between these two points, but over the whole sweep "
        f"{keys} does not clearly matter (below): not a clear winner;", 1)
    return verdict
