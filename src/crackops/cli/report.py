"""report: a self-contained HTML page about one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crackops import output
from crackops.cli.app import command
from crackops.errors import UsageError
from crackops.output import out


def default_report_name(job_ids: list[str]) -> str:
    if len(job_ids) == 1:
        return f"report-{job_ids[0]}.html"
    if len(job_ids) <= 3:
        return "report-" + "_".join(job_ids) + ".html"
    return f"report-{job_ids[0]}-and-{len(job_ids) - 1}-more.html"


@command("report", epilog=(
    "Examples:\n\n  crackops report 1234\n\n  crackops report 1234 1235 1236 -o sweep.html\n\n"
    "  crackops report L251125-101500-a3f1 --max-errors 100"))
def report(
    job_ids: Annotated[list[str], typer.Argument(help="The runs to report on.")],
    out_file: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="The HTML file to write (default: report-JOB_ID.html in this folder).")] = None,
    max_errors: Annotated[int, typer.Option(
        help="At most this many misclassified test images per run in the grid.")] = 48,
) -> None:
    """Write one self-contained HTML file (images embedded, opens offline) about runs: config,
    metrics, confusion matrices, training curves, Slurm efficiency, and the test images each model
    got wrong, missed cracks first. With several runs, a comparison comes first. Prints the path."""
    from crackops.cli.compare import load_runs
    from crackops.report.html import write_report

    if max_errors < 0:
        raise UsageError(f"--max-errors {max_errors} must be 0 or more", "e.g. --max-errors 48")
    ids = list(dict.fromkeys(job_ids))
    path = out_file or Path(default_report_name(ids))
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist", "create it, or pass -o FILE in an existing folder")
    if path.expanduser().is_dir():
        raise UsageError(f"{path} is a folder", f"pass a file name, e.g. -o {path / default_report_name(ids)}")
    runs = load_runs(ids)
    order = {j: i for i, j in enumerate(ids)}
    runs.sort(key=lambda r: order.get(r.shown_id, order.get(r.job_id, 0)))
    written = write_report(runs, path, max_errors=max_errors)
    out.print(str(written), markup=False, highlight=False, soft_wrap=True)
    unfinished = [r.job_id for r in runs if not r.terminal]
    if unfinished:
        output.warn(f"still running: {', '.join(unfinished)}; the report shows what there is so far")
    output.hint(f"open it in a browser: xdg-open {written}")
