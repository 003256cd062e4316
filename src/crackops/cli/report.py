"""report: a self-contained HTML page about one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crackops import api, output
from crackops.cli.app import command
from crackops.errors import UsageError
from crackops.output import out


@command("report", epilog=(
    "Examples:\n\n  crackops report 1234\n\n  crackops report 1234 1235 1236 -o sweep.html\n\n"
    "  crackops report L251125-101500-a3f1 --max-errors 100\n\n  crackops report --sweep lr-bs"))
def report(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="The runs to report on.")] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="Every run of this sweep (last attempts).")] = None,
    out_file: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="The HTML file to write (default: report-JOB_ID.html in this folder).")] = None,
    max_errors: Annotated[int, typer.Option(
        help="At most this many misclassified test images per run in the grid.")] = 48,
) -> None:
    """Write one self-contained HTML file (images embedded, opens offline) about runs: config,
    metrics, confusion matrices, training curves, Slurm efficiency, and the test images each model
    got wrong, missed cracks first. With several runs, a comparison comes first. Prints the path."""
    if sweep:
        if job_ids:
            raise UsageError("give job ids or --sweep, not both", f"crackops report --sweep {sweep}")
        job_ids = api.sweep_job_ids(sweep)
        out_file = out_file or Path(f"report-{sweep}.html")
    if not job_ids:
        raise UsageError("no runs given", "pass job ids, or --sweep NAME")
    rep = api.report(job_ids, out_file, max_errors=max_errors)
    out.print(str(rep.path), markup=False, highlight=False, soft_wrap=True)
    if rep.unfinished:
        output.warn(f"still running: {', '.join(rep.unfinished)}; the report shows what there is so far")
    output.hint(f"open it in a browser: xdg-open {rep.path}")
