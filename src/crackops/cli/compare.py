"""compare: runs side by side, seed groups reduced to mean ± std, the winner, efficiency."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from crackops import api, output
from crackops.cli.app import command
from crackops.compare import (ALL_METRICS, EFFICIENCY, EFFICIENCY_COLUMNS, EXTRA_ROW_KEYS, ACCOUNTING_KEYS, METRICS,
                              Comparison, Metric, compare_runs, filter_runs)
from crackops.errors import UsageError
from crackops.output import out
from crackops.registry import Run

BEST = " [bold green]★ best[/bold green]"
EFF_LIMITS = {"cpu_eff": 1.05, "mem_eff": 1.5, "time_eff": 1.2}   # above: implausible, shown with '?'


def fmt(m: Metric, v: Any) -> str:
    if v is None:
        return "-"
    if m.kind == "pct":
        s = output.pct(v, 1 if m.key == "test_accuracy" else 0)
        lim = EFF_LIMITS.get(m.key)
        return s + "?" if lim is not None and (v < 0 or v > lim) else s
    if m.kind == "dur":
        return output.duration(v)
    if m.kind == "int":
        return f"{v:.0f}" if isinstance(v, (int, float)) else str(v)
    return output.num(v, 3)


def fmt_config(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else ("-" if v is None else str(v))


def fmt_stat(m: Metric, st: dict[str, Any]) -> str:
    mean, std = st.get("mean"), st.get("std")
    if mean is None:
        return "-"
    if std is None:
        return fmt(m, mean) if m.kind != "int" else f"{mean:.0f}"
    if m.kind == "pct":
        return f"{mean * 100:.1f} ± {std * 100:.1f}%"
    if m.kind == "dur":
        return f"{output.duration(mean)} ± {output.duration(std)}"
    if m.kind == "int":
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.3f} ± {std:.3f}"


def _time_used(row: dict[str, Any]) -> str:
    v = row.get("time_eff")
    if v is None:
        return "-"
    s = fmt(EFFICIENCY[2], v)
    if row.get("timelimit_s"):
        s += f" of {output.duration(row['timelimit_s'])}"
    return s


def comparison_table(cmp: Comparison) -> Table:
    """One row per run: state, test metrics, efficiency (Slurm runs), the config values that differ."""
    t = Table(header_style="bold", title="runs (test metrics; crack = positive class)")
    t.add_column("job id", no_wrap=True)
    t.add_column("name")
    t.add_column("state", no_wrap=True)
    grouped = cmp.replicated
    if grouped:
        t.add_column("group")
    shown = [m for m in METRICS if m.key != "best_epoch"]
    for m in shown:
        t.add_column(m.label if m.key != "epochs_run" else "epochs (best)", justify="right")
    eff = cmp.has_accounting
    if eff:
        for _, label in EFFICIENCY_COLUMNS:
            t.add_column(label, justify="right", style="magenta")
    for k in cmp.differing:
        t.add_column(k, style="cyan", justify="right")
    for row in cmp.rows:
        cells = []
        for m in shown:
            if m.key == "epochs_run" and row.get("epochs_run") is not None:
                be = row.get("best_epoch")
                cells.append(f"{row['epochs_run']}" + (f" ({be})" if be is not None else ""))
            else:
                cells.append(fmt(m, row.get(m.key)))
        if eff:
            cells += [fmt(EFFICIENCY[0], row.get("cpu_eff")), fmt(EFFICIENCY[1], row.get("mem_eff")), _time_used(row)]
        mark = BEST if row["job_id"] == cmp.best else ""
        t.add_row(row["job_id"] + mark, row["name"] or "-", output.state(row["state"]),
                  *([row["group"] or "-"] if grouped else []), *cells,
                  *[fmt_config(row["config"].get(k)) for k in cmp.differing])
    return t


def groups_table(cmp: Comparison) -> Table:
    """One row per config (runs differing only in seed): mean ± std over the seeds, and n."""
    t = Table(header_style="bold", title="configs (mean ± std over seeds; n = runs with metrics)")
    t.add_column("group", no_wrap=True)
    for k in cmp.group_differing:
        t.add_column(k, style="cyan", justify="right")
    t.add_column("n", justify="right")
    cols = [m for m in METRICS if m.key not in ("epochs_run", "best_epoch")]
    for m in cols:
        t.add_column(m.label, justify="right")
    t.add_column("epochs", justify="right")
    eff = cmp.has_accounting
    if eff:
        for m in EFFICIENCY[:2]:
            t.add_column(m.label, justify="right", style="magenta")
    for g in cmp.groups:
        mark = BEST if g.id == cmp.best_group else ""
        n = f"{g.n}" if g.n == g.n_runs else f"{g.n} of {g.n_runs}"
        cells = [fmt_stat(m, g.stats[m.key]) for m in cols]
        cells.append(fmt_stat(ALL_METRICS["epochs_run"], g.stats["epochs_run"]))
        if eff:
            cells += [fmt_stat(m, g.stats[m.key]) for m in EFFICIENCY[:2]]
        t.add_row(g.id + mark, *[fmt_config(g.config.get(k)) for k in cmp.group_differing], n, *cells)
    return t


def load_runs(job_ids: list[str] | None, registry: api.Registry | None = None) -> list[Run]:
    """The runs (all when no ids), states refreshed, finished runs collected if nobody did yet."""
    reg = registry or api.Registry()
    runs = api.status(job_ids, registry=reg).runs
    todo = [r for r in runs if r.state == "COMPLETED" and r.metrics is None]
    for r in todo:  # reading a manifest is cheap
        try:
            api.collect(r.job_id, registry=reg)
        except api.StateError:
            pass
    return reg.list(job_ids=[r.job_id for r in runs]) if todo else runs


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
    out.print(comparison_table(cmp))
    if cmp.replicated:
        out.print(groups_table(cmp))
    if cmp.verdict:
        out.print(f"[bold]{cmp.verdict['text']}.[/bold]", soft_wrap=True)
    for h in cmp.hints:
        output.hint(f"hint: {h}")
    if cmp.differing:
        output.hint("cyan columns: the config values that differ between these runs")
    else:
        output.hint("these runs share every config value")
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
