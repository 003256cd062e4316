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
from crackops.compare import ACCOUNTING_KEYS, EFFICIENCY, EXTRA_ROW_KEYS, METRICS, Comparison
from crackops.errors import UsageError
from crackops.output import out

BEST = " [bold green]★ best[/bold green]"


AUTO_WHEN_NONE = {"bn_momentum"}  # None means "chosen by crackops at run time"


def fmt_config(v: Any, key: str = "") -> str:
    if v is None:
        return "auto" if key in AUTO_WHEN_NONE else "-"
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class Col:
    header: str
    cells: list[str]
    justify: str = "right"
    style: str | None = None
    drop: int = 0          # 0: always shown; otherwise hidden first (1) to last when the terminal is narrow
    name: str | None = None  # what the hint calls it when hidden (default: the header)
    fold: bool = False     # may wrap onto several lines when nothing else is left to leave out (config values)

    def cell_width(self) -> int:
        return max((Text.from_markup(c).cell_len for c in self.cells), default=0)

    def width(self, wrap_header: bool = True) -> int:
        """Content width: the widest cell, and the header's longest word (or all of it)."""
        head = max((len(w) for w in self.header.split()), default=0) if wrap_header else len(self.header)
        return max(self.cell_width(), head)


FOLD_MIN = 6   # the narrowest a config column gets (its values wrap) before it is left out


def fit_table(title: str, cols: list[Col], width: int | None = None) -> tuple[Table, list[str]]:
    """A table of ``cols`` that fits ``width`` (the terminal): headers wrap before anything else,
    then the least important metric columns are left out, then config values wrap, then config
    columns are left out (the last first); a number is never wrapped or cut, and the columns with
    ``drop=0`` (job id, state, test accuracy) are always there. Returns the table and the names of
    the columns it left out."""
    width = width or out.width
    shown = list(cols)
    hidden: list[str] = []

    def total(wrap: bool, folded: bool = False) -> int:   # padding and a border per column, one more border
        return sum((min(c.width(wrap), FOLD_MIN) if folded and c.fold else c.width(wrap)) + 3 for c in shown) + 1

    droppable = sorted((c for c in cols if c.drop), key=lambda c: c.drop)
    for c in droppable:
        if total(True, folded=c.fold) <= width:
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
    for c, w in zip(shown, widths):  # fixed widths: rich neither squeezes nor truncates them ...
        if c.fold:   # ... unless there is still no room: then config values wrap, numbers and ids never
            t.add_column(c.header, justify=c.justify, style=c.style, min_width=min(w, FOLD_MIN), max_width=w,
                         overflow="fold")
        else:
            t.add_column(c.header, justify=c.justify, style=c.style, width=w, min_width=w)
    for i in range(len(cols[0].cells) if cols else 0):
        t.add_row(*[c.cells[i] for c in shown])
    return t, hidden


# besides the metrics' own ``drop`` (crackops.metrics): what goes first when the terminal is narrow
DROP_NAME, DROP_GROUP = 9, 11
DROP_CONFIG = 100   # config columns: after every metric, the last one first, when even wrapped they do not fit


def comparison_columns(cmp: Comparison) -> list[Col]:
    rows = cmp.rows
    cols = [Col("job id", [r["job_id"] + (BEST if r["job_id"] == cmp.best else "") for r in rows], "left"),
            Col("name", [r["name"] or "-" for r in rows], "left", drop=DROP_NAME),
            Col("state", [output.state(r["state"]) for r in rows], "left")]
    if cmp.replicated:
        cols.append(Col("group", [r["group"] or "-" for r in rows], "left", drop=DROP_GROUP))
    for m in METRICS + (EFFICIENCY if cmp.has_accounting else []):
        if m.column:
            cols.append(Col(m.row_header, [m.row_cell(r) for r in rows], drop=m.drop, name=m.label,
                            style="magenta" if m.source == "accounting" else None))
    keys = cmp.shown_differing
    cols += [Col(k, [fmt_config(r["config"].get(k), k) for r in rows], style="cyan", fold=True,
                 drop=DROP_CONFIG + len(keys) - i) for i, k in enumerate(keys)]
    return cols


def group_columns(cmp: Comparison) -> list[Col]:
    gs = cmp.groups
    cols = [Col("group", [g.id + (BEST if g.id == cmp.best_group else "") for g in gs], "left")]
    if any(g.sweep_id for g in gs):
        cols.append(Col("sweep", [str(g.sweep_id or "-") for g in gs], "left"))
    keys = cmp.group_differing
    cols += [Col(k, [fmt_config(g.config.get(k), k) for g in gs], style="cyan", fold=True,
                 drop=DROP_CONFIG + len(keys) - i) for i, k in enumerate(keys)]
    cols.append(Col("n", [f"{g.n}" if g.n == g.n_runs else f"{g.n} of {g.n_runs}" for g in gs]))
    for m in METRICS + (EFFICIENCY if cmp.has_accounting else []):
        if m.in_groups:
            cols.append(Col(m.label, [m.format_stat(g.stats[m.key]) for g in gs], drop=m.drop,
                            style="magenta" if m.source == "accounting" else None))
    return cols


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
        w.writerow(["" if vals.get(c) is None else
                    " ".join(f"{x:.6g}" for x in vals[c]) if isinstance(vals[c], (list, tuple)) else vals[c]
                    for c in cols])
    stream.flush()


def across_sweeps_table(cmp: Comparison) -> Table:
    """One row per grid point that several sweeps ran: each sweep's mean ± std, the gap, the noise."""
    from crackops.metrics import BY_KEY

    acc = BY_KEY["test_accuracy"]
    t = Table(title="grid points shared by sweeps (test accuracy, mean ± std over seeds)", header_style="bold")
    for col in ("grid point", "per sweep", "best", "gap", "beats the seed noise?"):
        t.add_column(col, justify="right" if col == "gap" else "left")
    for p in cmp.across_sweeps:
        per = "  ".join(f"{g.get('sweep') or g.get('sweep_id')}: {acc.format_stat(g['test_accuracy'])} (n={g['n']})"
                        for g in p["groups"])
        t.add_row(p["label"], per, str(p["best_sweep"]), f"{p['delta'] * 100:.2f} pp",
                  {True: "yes", False: "no"}.get(p["real"], "unknown") + f" ({p['why']})")
    return t


def print_human(cmp: Comparison) -> None:
    table, hidden = fit_table("runs (test metrics; crack = positive class)", comparison_columns(cmp))
    out.print(table)
    if cmp.replicated:
        gtable, ghidden = fit_table("configs (mean ± std over seeds; n = runs with metrics)", group_columns(cmp))
        out.print(gtable)
        hidden += [h for h in ghidden if h not in hidden]
    if cmp.verdict:
        out.print(f"[bold]{cmp.verdict['text']}.[/bold]", soft_wrap=True)
    if cmp.across_sweeps:
        out.print(across_sweeps_table(cmp))
    elif cmp.across_sweeps_reason:
        out.print(f"no grid point lined up across the sweeps: {cmp.across_sweeps_reason}", soft_wrap=True)
    for h in cmp.hints:
        output.hint(f"hint: {h}")
    if cmp.shown_differing:
        output.hint("cyan columns: the config values that differ between these runs")
    if cmp.hidden_differing:
        output.hint(f"also differ, not shown (bookkeeping or where the data came from; in --json / --csv): "
                    f"{', '.join(cmp.hidden_differing)}")
    if not cmp.differing:
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
    sweep: Annotated[Optional[list[str]], typer.Option(
        "--sweep", help="One sweep: a row per grid point (mean ± std over seeds), the best, which keys matter. "
                        "Repeat it for several sweeps: the grid points they share, lined up.")] = None,
    all_attempts: Annotated[bool, typer.Option(
        "--all-attempts", help="Also the runs a rerun continues (default: only the final attempt of each).")] = False,
) -> None:
    """Compare runs: which configuration is best, by how much, at what cost. Test accuracy,
    precision/recall/F1 for cracks, missed cracks, false alarms, ROC AUC, epochs, wall time, CPU and
    memory efficiency (Slurm), and only the config values that differ. Runs that differ only in
    seed are grouped as mean ± std. A run continued by a rerun counts once, as its final attempt."""
    if as_json and as_csv:
        raise UsageError("--json and --csv both print to stdout", "pick one")
    effects = None
    if sweep:
        if job_ids:
            raise UsageError("give job ids or --sweep, not both", f"crackops compare --sweep {sweep[0]}")
        if no_group:
            raise UsageError("--no-group does not apply to --sweep: a sweep is compared by grid point",
                             "leave out --no-group (the runs table lists every run)")
        filters = dict(states=state, name=name, since=since, where=where, plot=plot, all_attempts=all_attempts)
        if len(set(sweep)) == 1:
            sc = api.get_sweep(sweep[0]).compare(sort=sort, **filters)
            cmp, effects, data = sc.comparison, sc.effects, sc.to_dict()
        else:
            cmp = api.compare_sweeps(sweep, sort=sort, **filters)
            data = cmp.to_dict()
    else:
        cmp = api.compare(job_ids, states=state, name=name, since=since, where=where, sort=sort,
                          group=not no_group, plot=plot, all_attempts=all_attempts)
        data = cmp.to_dict()
    if as_json:
        output.print_json(data)
    elif as_csv:
        write_csv(cmp)
    elif not cmp.rows:
        filtered = state or name or since or where
        output.err.print("no runs to compare" + (" match these filters" if filtered else
                         f" in sweep {sweep[0]}" if sweep else
                         " yet. Start some: crackops submit --data DIR  (or: crackops demo)"))
    else:
        print_human(cmp)
        if effects:
            from crackops.cli.sweep import print_effects

            print_effects(effects)
    if cmp.plot_path is not None:
        output.err.print(f"plot: {cmp.plot_path}")
    if cmp.earlier_attempts and not (as_json or as_csv):
        shown = ", ".join(cmp.earlier_attempts[:8]) + (f" and {len(cmp.earlier_attempts) - 8} more"
                                                       if len(cmp.earlier_attempts) > 8 else "")
        output.err.print(f"[dim]earlier attempts left out (continued by a rerun): {shown}; --all-attempts shows them[/dim]")
    for w in cmp.warnings:
        output.warn(w)
