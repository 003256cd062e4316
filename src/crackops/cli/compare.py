"""compare: collected runs side by side."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from crackops import api, output
from crackops.cli.app import command
from crackops.compare import METRIC_COLUMNS, Comparison, compare_runs
from crackops.output import out

PCT_KEYS = {"train_accuracy", "test_accuracy"}


def comparison_table(cmp: Comparison) -> Table:
    t = Table(header_style="bold", title="runs compared (test metrics; crack = positive class)")
    t.add_column("job id", no_wrap=True)
    t.add_column("name")
    t.add_column("state")
    for _, label in METRIC_COLUMNS:
        t.add_column(label, justify="right")
    for k in cmp.differing:
        t.add_column(k, style="cyan", justify="right")
    for row in cmp.rows:
        cells = []
        for key, _ in METRIC_COLUMNS:
            v = row.get(key)
            if key in PCT_KEYS:
                cells.append(output.pct(v))
            elif key == "wall_time_s":
                cells.append(output.duration(v))
            else:
                cells.append(output.num(v))
        mark = " [bold green]★ best[/bold green]" if row["job_id"] == cmp.best else ""
        t.add_row(row["job_id"] + mark, row["name"] or "-", output.state(row["state"]), *cells,
                  *[output.num(row["config"].get(k)) for k in cmp.differing])
    return t


def load_comparison(job_ids: list[str] | None) -> Comparison:
    reg = api.Registry()
    runs = api.status(job_ids, registry=reg).runs
    for r in runs:  # collect finished runs nobody collected yet: reading a manifest is cheap
        if r.state == "COMPLETED" and r.metrics is None:
            try:
                api.collect(r.job_id, registry=reg)
            except api.StateError:
                pass
    runs = reg.list(job_ids=[r.job_id for r in runs])
    return compare_runs(runs)


@command("compare", epilog="Examples:\n\n  crackops compare\n\n  crackops compare 1234 1235 --json")
def compare(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to compare (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Rows as JSON.")] = False,
) -> None:
    """Compare runs: accuracy, precision/recall/F1, missed cracks, and the config values that differ."""
    cmp = load_comparison(job_ids)
    if as_json:
        output.print_json(cmp.to_dict())
    elif not cmp.rows:
        output.err.print("no runs to compare yet. Start some: crackops submit --data DIR  (or: crackops demo)")
    else:
        out.print(comparison_table(cmp))
        if cmp.differing:
            output.hint("cyan columns: the config values that differ between these runs")
        else:
            output.hint("these runs share every config value")
    for w in cmp.warnings:
        output.warn(w)
