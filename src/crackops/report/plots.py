"""Plots for compare and the HTML report (matplotlib, Agg, PNG). No TensorFlow.

``compare_figure``: the compared runs' loss and accuracy curves overlaid (one colour per config,
seeds of one config share it), and bar charts of the test metrics (mean ± std per config when a
config ran with several seeds). ``history_png``: one run's curves.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

from crackops import artifacts
from crackops.compare import Comparison
from crackops.metrics import METRICS

# the bars, from the metric table: (key, tick label)
RATE_METRICS = [(m.key, m.split_title) for m in METRICS if m.plot == "rate"]
COUNT_METRICS = [(m.key, m.title) for m in METRICS if m.plot == "count"]
MAX_BARS = 12      # coloured units (bars per metric, legend entries); beyond that the best, the rest grey
OTHERS = "#c8c8c8"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list[Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def load_histories(cmp: Comparison) -> dict[str, dict[str, Any]]:
    """job id -> {"history", "best_epoch"} from each run's manifest (runs without one are left out)."""
    out = {}
    for r in cmp.runs:
        m = artifacts.read_manifest(r.out_dir) if r.out_dir else None
        if m and m.get("history"):
            out[r.shown_id] = {"history": m["history"], "best_epoch": m.get("best_epoch")}
    return out


def _short(text: str, n: int = 38) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _legend(text: str, n: int = 44, lines: int = 3) -> str:
    """A legend label of at most ``lines`` lines of ``n`` characters, broken after a comma."""
    import textwrap

    wrapped = textwrap.wrap(text, n, break_long_words=True, break_on_hyphens=False)
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = _short(wrapped[-1] + " …", n)
    return "\n".join(wrapped)


def _units(cmp: Comparison) -> list[dict[str, Any]]:
    """What gets a colour and a bar: config groups when seeds were repeated, else single runs."""
    if cmp.replicated:
        return [{"id": g.id, "label": _legend(f"{g.id}: {g.label}"), "job_ids": g.job_ids, "n": g.n,
                 "best": g.id == cmp.best_group,
                 "stats": {k: g.stats[k] for k, _ in RATE_METRICS + COUNT_METRICS}} for g in cmp.groups]
    units = []
    for row in cmp.rows:
        shown = {k: row["config"].get(k) for k in cmp.shown_differing}   # what differs comes first
        label = row["job_id"] + (": " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in shown.items()) if shown else "")
        if row.get("name") and len(label) + len(row["name"]) + 3 <= 44:
            label += f" ({row['name']})"
        units.append({"id": row["job_id"], "label": _legend(label), "job_ids": [row["job_id"]],
                      "n": 1 if row.get("test_accuracy") is not None else 0, "best": row["job_id"] == cmp.best,
                      "stats": {k: {"mean": row.get(k), "std": None} for k, _ in RATE_METRICS + COUNT_METRICS}})
    return units


def _featured(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All units when they are few; else the best MAX_BARS with metrics, in their original order."""
    if len(units) <= MAX_BARS:
        return units
    from crackops.compare import rank_key

    def rank(u: dict[str, Any]) -> tuple[float, float, float]:
        st = u["stats"]
        return rank_key(st["test_accuracy"]["mean"], st["test_f1"]["mean"], st["test_fn"]["mean"])

    keep = {u["id"] for u in sorted((u for u in units if u["n"]), key=rank, reverse=True)[:MAX_BARS]}
    return [u for u in units if u["id"] in keep]


def compare_figure(cmp: Comparison, path: Path | str, histories: dict[str, dict[str, Any]] | None = None) -> Path:
    """Save the comparison figure as a PNG and return its path."""
    plt = _plt()
    from matplotlib.lines import Line2D

    histories = load_histories(cmp) if histories is None else histories
    units = _units(cmp)
    featured = _featured(units)   # what gets a colour, a bar and a legend entry: all, or the best MAX_BARS
    colors: dict[str, Any] = {u["id"]: OTHERS for u in units}
    colors.update(zip((u["id"] for u in featured), _colors(len(featured))))
    color_of_job = {j: colors[u["id"]] for u in units for j in u["job_ids"]}

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.6), dpi=100)
    (a_loss, a_acc), (a_rate, a_cnt) = axes
    # grey (not featured) curves first, thin, so the coloured ones stay on top
    for job_id, h in sorted(histories.items(), key=lambda kv: color_of_job.get(kv[0], OTHERS) != OTHERS):
        hist, c = h["history"], color_of_job.get(job_id, OTHERS)
        ep = list(range(1, len(hist.get("loss", [])) + 1))
        if hist.get("val_loss"):
            a_loss.plot(ep, hist["val_loss"], "-", color=c, lw=1.8, marker="o", ms=3)
        a_loss.plot(ep, hist.get("loss", []), ":", color=c, lw=1.2, alpha=0.8)
        if hist.get("val_accuracy"):
            a_acc.plot(ep, hist["val_accuracy"], "-", color=c, lw=1.8, marker="o", ms=3)
        if hist.get("accuracy"):
            a_acc.plot(ep, hist["accuracy"], ":", color=c, lw=1.2, alpha=0.8)
        be = h.get("best_epoch")
        if be and hist.get("val_loss") and be <= len(hist["val_loss"]):
            a_loss.plot([be], [hist["val_loss"][be - 1]], "*", color=c, ms=11, mec="black", mew=0.5)
    a_loss.set_title("loss (solid: validation, dotted: train; ★ best epoch)", fontsize=10)
    a_loss.set_xlabel("epoch")
    a_loss.set_ylabel("binary cross-entropy")
    if histories:
        a_loss.set_yscale("log")
    a_acc.set_title("accuracy (solid: validation, dotted: train)", fontsize=10)
    a_acc.set_xlabel("epoch")
    a_acc.set_ylabel("accuracy")
    for a in (a_loss, a_acc):
        a.grid(alpha=0.3)
        a.xaxis.get_major_locator().set_params(integer=True)
    if not histories:
        for a in (a_loss, a_acc):
            a.text(0.5, 0.5, "no training curves (no manifests)", ha="center", va="center",
                   transform=a.transAxes, color="grey")

    scored = [u for u in featured if u["n"]]
    _bars(a_rate, scored, colors, RATE_METRICS, rate=True)
    _bars(a_cnt, scored, colors, COUNT_METRICS, rate=False)
    what = "mean ± std over seeds" if cmp.replicated else "one bar per run"
    if len(scored) < len([u for u in units if u["n"]]):
        what += f", best {len(scored)} shown"
    a_rate.set_title(f"test metrics ({what}; ★ best)", fontsize=10)
    a_cnt.set_title(f"test errors ({what}): fewer is better", fontsize=10)

    handles = [Line2D([0], [0], color=colors[u["id"]], lw=6,
                      label=("★ " if u["best"] else "") + u["label"] + ("" if u["n"] else " (no metrics)"))
               for u in featured]
    if len(units) > len(featured):
        handles.append(Line2D([0], [0], color=OTHERS, lw=6, label=f"{len(units) - len(featured)} more (grey)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize=9, frameon=False)
    n_runs = len(cmp.rows)
    title = f"crackops compare: {n_runs} run{'s' if n_runs != 1 else ''}"
    if cmp.replicated:
        title += f" in {len(cmp.groups)} config{'s' if len(cmp.groups) != 1 else ''}"
    no_curves = [r["job_id"] for r in cmp.rows if r["job_id"] not in histories]
    if no_curves:
        title += f"  ({len(no_curves)} without curves: " + ", ".join(
            f"{r['job_id']} {r['state']}" for r in cmp.rows if r["job_id"] in no_curves[:3]) + \
            (" ..." if len(no_curves) > 3 else "") + ")"
    fig.suptitle(title, fontsize=12)
    lines_per_entry = max((h.get_label().count("\n") + 1 for h in handles), default=1)
    rows_legend = (len(handles) + 2) // 3 * lines_per_entry
    fig.tight_layout(rect=(0, 0.035 * rows_legend + 0.01, 1, 0.97))
    path = Path(path).expanduser()
    fig.savefig(path)
    plt.close(fig)
    return path.resolve()


def _bars(ax, units: list[dict[str, Any]], colors: dict[str, Any], metrics: list[tuple[str, str]], rate: bool) -> None:
    import numpy as np

    if not units:
        ax.text(0.5, 0.5, "no test metrics", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xticks([])
        return
    k = len(units)
    width = 0.8 / k
    x = np.arange(len(metrics))
    lows: list[float] = []
    labelled = []
    for i, u in enumerate(units):
        means = [u["stats"][m]["mean"] for m, _ in metrics]
        stds = [u["stats"][m]["std"] or 0.0 for m, _ in metrics]
        vals = [np.nan if v is None else v for v in means]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, vals, width * 0.92, yerr=stds if any(stds) else None, capsize=3, color=colors[u["id"]],
               edgecolor="black" if u["best"] else "none", linewidth=1.2 if u["best"] else 0,
               error_kw={"elinewidth": 1, "ecolor": "black"})
        lows += [v - s for v, s in zip(vals, stds) if not np.isnan(v)]
        labelled.append((pos, vals, stds))
    ax.set_xticks(x, [label for _, label in metrics])
    ax.grid(axis="y", alpha=0.3)
    if rate:
        low = min(lows) if lows else 0.0
        bottom = 0.0 if low < 0.3 else max(0.0, np.floor((low - 0.05) * 20) / 20)
        ax.set_ylim(bottom, 1.0 + (1.0 - bottom) * 0.12)
        ax.set_ylabel("score" + (f" (axis starts at {bottom:.2f})" if bottom > 0 else ""))
    else:
        ax.set_ylabel("test images")
        ax.set_ylim(0, None)
        top = ax.get_ylim()[1]
        ax.set_ylim(0, max(top * 1.12, 1))
    if k <= 6:  # values written inside the bars (rates) or above them (counts), clear of the error bars
        lo, hi = ax.get_ylim()
        for pos, vals, stds in labelled:
            for p, v, s in zip(pos, vals, stds):
                if np.isnan(v):
                    continue
                if rate:
                    if v - lo > 0.22 * (hi - lo):
                        ax.text(p, lo + 0.02 * (hi - lo), f"{v:.3f}", ha="center", va="bottom", fontsize=7,
                                rotation=90, color="white", fontweight="bold")
                else:
                    ax.text(p, v + s + 0.01 * (hi - lo), f"{v:.1f}".removesuffix(".0"), ha="center",
                            va="bottom", fontsize=8)


def history_png(history: dict[str, Sequence[float]], best_epoch: int | None, title: str = "") -> bytes:
    """One run's loss and accuracy curves as PNG bytes."""
    plt = _plt()
    ep = list(range(1, len(history.get("loss", [])) + 1))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    a1.plot(ep, history.get("loss", []), "o-", label="train loss", color="#1f77b4")
    if history.get("val_loss"):
        a1.plot(ep, history["val_loss"], "o-", label="validation loss", color="#ff7f0e")
    a1.set_ylabel("binary cross-entropy")
    a1.set_yscale("log")
    if history.get("accuracy"):
        a2.plot(ep, history["accuracy"], "o-", label="train accuracy", color="#1f77b4")
    if history.get("val_accuracy"):
        a2.plot(ep, history["val_accuracy"], "o-", label="validation accuracy", color="#ff7f0e")
    a2.set_ylabel("accuracy")
    for a in (a1, a2):
        a.set_xlabel("epoch")
        if best_epoch:
            a.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        a.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def figure_png(cmp: Comparison, histories: dict[str, dict[str, Any]] | None = None) -> bytes:
    """The compare figure as PNG bytes (for the HTML report)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = compare_figure(cmp, Path(d) / "compare.png", histories)
        return p.read_bytes()
