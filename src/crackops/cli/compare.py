"""compare: runs side by side, seed groups reduced to mean ± std, the winner, efficiency."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from crackops import api, output
from crackops.cli.app import command
from crackops.compare import (ALL_METRICS, EFFICIENCY, EXTRA_ROW_KEYS, ACCOUNTING_KEYS, METRICS,
                              Comparison, compare_runs, filter_runs)
from crackops.errors import UsageError
from crackops.output import out
from crackops.output import format_metric as fmt, format_stat as fmt_stat
from crackops.registry import Run

BEST = " [bold green]★ best[/bold green]"


AUTO_WHEN_NONE = {"bn_momentum"}  # None means "chosen by crackops at run time"


def fmt_config(v: Any, key: str = "") -> str:
    if v is None:
        return "auto" if key in AUTO_WHEN_NONE else "-"
    return f"{v:g}" if isinstance(v, float) else str(v)


def short_duration(seconds: float) -> str:
    """4:00:00 -> 4h, 1-00:00:00 -> 1d, 0:30:00 -> 30m; anything else as output.duration."""
    s = int(round(seconds))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{s // n}{unit}"
    return output.duration(s)


def _eff(row: dict[str, Any], key: str) -> str:
    s = fmt(ALL_METRICS[key], row.get(key))
    return s + "?" if key in (row.get("implausible") or ()) else s


def _time_used(row: dict[str, Any]) -> str:
    v = row.get("time_eff")
    if v is None:
        return "-"
    s = _eff(row, "time_eff")
    if row.get("timelimit_s"):
        s += f" of {short_duration(row['timelimit_s'])}"
    return s


@dataclass
class Col:
    header: str
    cells: list[str]
    justify: str = "right"
    style: str | None = None
    drop: int = 0          # 0: always shown; otherwise hidden first (1) to last when the terminal is narrow
    name: str | None = None  # what the hint calls it when hidden (default: the header)

    def cell_width(self) -> int:
        return max((Text.from_markup(c).cell_len for c in self.cells), default=0)

    def width(self, wrap_header: bool = True) -> int:
        """Content width: the widest cell, and the header's longest word (or all of it)."""
        head = max((len(w) for w in self.header.split()), default=0) if wrap_header else len(self.header)
        return max(self.cell_width(), head)


def fit_table(title: str, cols: list[Col], width: int | None = None) -> tuple[Table, list[str]]:
    """A table of ``cols`` that fits ``width`` (the terminal): headers wrap before anything else,
    then the least important columns are left out; a number is never wrapped or cut. Returns the
    table and the names of the columns it left out."""
    width = width or out.width
    shown = list(cols)
    hidden: list[str] = []

    def total(wrap: bool) -> int:
        return sum(c.width(wrap) + 3 for c in shown) + 1   # padding and a border per column, one more border

    for c in sorted((c for c in cols if c.drop), key=lambda c: c.drop):
        if total(True) <= width:
            break
        shown.remove(c)
        hidden.append(c.name or c.header)
    widths = [c.width(True) for c in shown]
    slack = width - total(True)
    for i, c in enumerate(shown):  # unwrap headers, left to right, while there is room
        extra = c.width(False) - widths[i]
        if 0 < extra <= slack:
            widths[i] += extra
            slack -= extra
    t = Table(header_style="bold", title=title)
    for c, w in zip(shown, widths):  # fixed widths: rich neither squeezes nor truncates them
        t.add_column(c.header, justify=c.justify, style=c.style, width=w)
    for i in range(len(cols[0].cells) if cols else 0):
        t.add_row(*[c.cells[i] for c in shown])
    return t, hidden


# what goes first when the terminal is narrow (lower goes first)
DROP_ORDER = {"test_roc_auc": 1, "test_precision": 2, "wall_time_s": 3, "epochs_run": 4, "test_recall": 5,
              "time_eff": 6, "mem_eff": 7, "cpu_eff": 8, "name": 9, "test_f1": 10, "group": 11}


def comparison_columns(cmp: Comparison) -> list[Col]:
    rows = cmp.rows
    cols = [Col("job id", [r["job_id"] + (BEST if r["job_id"] == cmp.best else "") for r in rows], "left"),
            Col("name", [r["name"] or "-" for r in rows], "left", drop=DROP_ORDER["name"]),
            Col("state", [output.state(r["state"]) for r in rows], "left")]
    if cmp.replicated:
        cols.append(Col("group", [r["group"] or "-" for r in rows], "left", drop=DROP_ORDER["group"]))
    for m in METRICS:
        if m.key == "best_epoch":
            continue
        if m.key == "epochs_run":
            cells = [("-" if r.get("epochs_run") is None else
                      f"{r['epochs_run']}" + (f" ({r['best_epoch']})" if r.get("best_epoch") is not None else ""))
                     for r in rows]
            cols.append(Col("epochs (best)", cells, drop=DROP_ORDER["epochs_run"], name="epochs"))
        else:
            cols.append(Col(m.label, [fmt(m, r.get(m.key)) for r in rows], drop=DROP_ORDER.get(m.key, 0)))
    if cmp.has_accounting:
        cols += [Col("CPU eff", [_eff(r, "cpu_eff") for r in rows], style="magenta", drop=DROP_ORDER["cpu_eff"]),
                 Col("mem eff", [_eff(r, "mem_eff") for r in rows], style="magenta", drop=DROP_ORDER["mem_eff"]),
                 Col("time used", [_time_used(r) for r in rows], style="magenta", drop=DROP_ORDER["time_eff"])]
    cols += [Col(k, [fmt_config(r["config"].get(k), k) for r in rows], style="cyan") for k in cmp.differing]
    return cols


def group_columns(cmp: Comparison) -> list[Col]:
    gs = cmp.groups
    cols = [Col("group", [g.id + (BEST if g.id == cmp.best_group else "") for g in gs], "left")]
    cols += [Col(k, [fmt_config(g.config.get(k), k) for g in gs], style="cyan") for k in cmp.group_differing]
    cols.append(Col("n", [f"{g.n}" if g.n == g.n_runs else f"{g.n} of {g.n_runs}" for g in gs]))
    for m in METRICS:
        if m.key == "best_epoch":
            continue
        cols.append(Col(m.label if m.key != "epochs_run" else "epochs", [fmt_stat(m, g.stats[m.key]) for g in gs],
                        drop=DROP_ORDER.get(m.key, 0)))
    if cmp.has_accounting:
        cols += [Col(m.label, [fmt_stat(m, g.stats[m.key]) for g in gs], style="magenta", drop=DROP_ORDER[m.key])
                 for m in EFFICIENCY[:2]]
    return cols


def comparison_table(cmp: Comparison, width: int | None = None) -> Table:
    """One row per run: state, test metrics, efficiency (Slurm runs), the config values that differ."""
    return fit_table("runs (test metrics; crack = positive class)", comparison_columns(cmp), width)[0]


def groups_table(cmp: Comparison, width: int | None = None) -> Table:
    """One row per config (runs differing only in seed): mean ± std over the seeds, and n."""
    return fit_table("configs (mean ± std over seeds; n = runs with metrics)", group_columns(cmp), width)[0]


def load_runs(job_ids: list[str] | None, registry: api.Registry | None = None) -> list[Run]:
    """The runs (all when no ids), states refreshed, finished runs collected if nobody did yet."""
    reg = registry or api.Registry()
    runs = api.status(job_ids, registry=reg).runs
    todo = [r for r in runs if r.state == "COMPLETED" and r.metrics is None]
    for r in todo:  # reading a manifest is cheap
        try:
            api.collect(r.shown_id, registry=reg)
        except api.StateError:
            pass
    return reg.list(job_ids=[r.shown_id for r in runs]) if todo else runs


def load_comparison(job_ids: list[str] | None, **filters: Any) -> Comparison:
    sort = filters.pop("sort", None)
    group = filters.pop("group", True)
    return compare_runs(filter_runs(load_runs(job_ids), **filters), sort=sort, group=group)


CSV_BASE = ["job_id", "name", "backend", "state", "group", "seed", "best", "best_group"]


def write_csv(cmp: Comparison, stream=None) -> None:
    """One row per run: ids, metrics, efficiency and the differing config values (config.KEY)."""
    stream = stream or sys.stdout
    metric_keys = [m.key for m in METRICS] + list(EXTRA_ROW_KEYS) + [m.key for m in EFFICIENCY]
    cols = CSV_BASE + metric_keys + list(ACCOUNTING_KEYS) + [f"config.{k}" for k in cmp.differing] + ["reason"]
    w = csv.writer(stream, lineterminator="\n")
    w.writerow(cols)
    for row in cmp.rows:
        vals = {**row, "best": row["job_id"] == cmp.best,
                "best_group": bool(cmp.best_group) and row["group"] == cmp.best_group,
                **{f"config.{k}": row["config"].get(k) for k in cmp.differing}}
        w.writerow(["" if vals.get(c) is None else vals.get(c) for c in cols])
    stream.flush()


def print_human(cmp: Comparison) -> None:
    table, hidden = fit_table("runs (test metrics; crack = positive class)", comparison_columns(cmp))
    out.print(table)
    if cmp.replicated:
        gtable, ghidden = fit_table("configs (mean ± std over seeds; n = runs with metrics)", group_columns(cmp))
        out.print(gtable)
        hidden += [h for h in ghidden if h not in hidden]
    if cmp.verdict:
        out.print(f"[bold]{cmp.verdict['text']}.[/bold]", soft_wrap=True)
    for h in cmp.hints:
        output.hint(f"hint: {h}")
    if cmp.differing:
        output.hint("cyan columns: the config values that differ between these runs")
    else:
        output.hint("these runs share every config value")
    if hidden:
        output.hint(f"terminal too narrow: left out {', '.join(hidden)} (widen it, or use --json / --csv)")
    if not cmp.has_accounting:
        output.hint("CPU/memory efficiency comes from Slurm accounting: none for these runs (local runs have none)")


@command("compare", epilog=(
    "Examples:\n\n  crackops compare\n\n  crackops compare 1234 1235 --json\n\n"
    "  crackops compare --state COMPLETED --sort f1 --since 2d\n\n"
    "  crackops compare --name 'lr-*' --where image_size=64 --plot compare.png\n\n"
    "  crackops compare --csv > runs.csv"))
def compare(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to compare (default: all).")] = None,
    sort: Annotated[Optional[str], typer.Option(
        "--sort", help="Order by a metric (acc, f1, recall, missed, fp, auc, wall, cpu, mem), a config key, "
                       "submitted, name or job_id. Metrics sort best first; add :asc or :desc.")] = None,
    state: Annotated[Optional[list[str]], typer.Option(
        "--state", help="Only runs in this state, e.g. COMPLETED (repeatable, or comma-separated).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Only runs whose name matches this glob, e.g. 'lr-*'.")] = None,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="Only runs submitted since DATE: 2025-11-24, '2025-11-24 13:00', today, yesterday, 3d, 12h.")] = None,
    where: Annotated[Optional[list[str]], typer.Option(
        "--where", help="Only runs whose config has KEY=VALUE (or KEY!=VALUE; repeatable), e.g. learning_rate=0.001.")] = None,
    no_group: Annotated[bool, typer.Option("--no-group", help="Do not reduce runs that differ only in seed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as JSON: runs, groups, best, verdict, warnings.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="One CSV row per run to stdout.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also save a PNG: loss and accuracy curves, and bar charts of the test metrics.")] = None,
) -> None:
    """Compare runs: which configuration is best, by how much, at what cost. Test accuracy,
    precision/recall/F1 for cracks, missed cracks, false alarms, ROC AUC, epochs, wall time, CPU and
    memory efficiency (Slurm), and only the config values that differ. Runs that differ only in
    seed are grouped as mean ± std."""
    if as_json and as_csv:
        raise UsageError("--json and --csv both print to stdout", "pick one")
    if plot is not None:
        _check_plot_path(plot)
    cmp = load_comparison(job_ids, states=state, name=name, since=since, where=where, sort=sort,
                          group=not no_group)
    if as_json:
        output.print_json(cmp.to_dict())
    elif as_csv:
        write_csv(cmp)
    elif not cmp.rows:
        output.err.print("no runs to compare" + (" match these filters" if (state or name or since or where) else
                         " yet. Start some: crackops submit --data DIR  (or: crackops demo)"))
    else:
        print_human(cmp)
    if plot is not None and cmp.rows:
        from crackops.report.plots import compare_figure

        path = compare_figure(cmp, plot)
        output.err.print(f"plot: {path}")
    for w in cmp.warnings:
        output.warn(w)


def _check_plot_path(p: Path) -> None:
    if p.suffix.lower() != ".png":
        raise UsageError(f"--plot {p}: the plot is a PNG file", f"e.g. --plot {p.with_suffix('.png').name}")
    if not p.expanduser().resolve().parent.is_dir():
        raise UsageError(f"--plot {p}: folder {p.expanduser().resolve().parent} does not exist",
                         "create it, or pick a path in an existing folder")
