"""resume, rerun."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from crackops import api, output
from crackops.cli.app import command
from crackops.errors import StateError
from crackops.output import err, out


@command("resume", epilog="Examples:\n\n  crackops resume L251125-101500-a3f1")
def resume(
    job_id: Annotated[str, typer.Argument(help="A local run that was cancelled or killed.")],
    force: Annotated[bool, typer.Option("--force", help="Resume even a run that failed with an exception.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Continue a cancelled or killed local run from its last epoch-end backup (same job id)."""
    run = api.resume(job_id, force=force)
    if as_json:
        output.print_json(run.to_dict())
        return
    out.print(run.job_id)
    err.print(f"resumed [bold]{run.job_id}[/bold]: {run.reason}")
    output.hint(f"next: crackops wait {run.job_id}")


@command("rerun", epilog=(
    "Examples:\n\n  crackops rerun 1234\n\n  crackops rerun --failed\n\n  crackops rerun --failed --sweep lr-bs\n\n"
    "  crackops rerun 1234 --time 8:00:00\n\n  crackops rerun 1234 --mem 24G\n\n"
    "  crackops rerun --failed --mem-factor 2 --dry-run"))
def rerun(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to rerun.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every run that failed, timed out, ran out of memory, "
                                         "lost its node or was preempted, and was not rerun yet.")] = False,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="Only the failed runs of this sweep "
                                                 "(implies --failed); the reruns join the sweep.")] = None,
    mem: Annotated[Optional[str], typer.Option("--mem", help="The new runs' memory, e.g. 24G, whatever the cause "
                                               "(refused above the partition's limit).")] = None,
    mem_factor: Annotated[float, typer.Option(help="OUT_OF_MEMORY: multiply the memory by this (capped by the "
                                              "partition's MaxMemPerNode / MaxMemPerCPU / largest node; "
                                              "locally by the machine's memory).")] = 1.5,
    max_mem: Annotated[Optional[str], typer.Option(help="OUT_OF_MEMORY: never ask for more than this, e.g. 64G.")] = None,
    time_limit: Annotated[Optional[str], typer.Option("--time", help="New time limit (default: the same).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rerun runs that failed with a Python exception too.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be rerun; submit nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rerun runs by why they ended: OUT_OF_MEMORY with more memory, TIMEOUT / NODE_FAIL / PREEMPTED
    from their last backup, a Python exception only with --force. Each new run continues the old one
    (same function, same sweep); each run is rerun once, even by several crackops at a time."""
    plans = api.rerun(job_ids or [], failed=failed, sweep=sweep, mem_factor=mem_factor, mem=mem,
                      time_limit=time_limit, max_mem=max_mem, force=force, dry_run=dry_run)
    if as_json:
        output.print_json([p.to_dict() for p in plans])
    else:
        t = Table(header_style="bold")
        for c in ("job id", "state", "rerun as", "what"):
            t.add_column(c)
        for p in plans:
            new = p.new_job_id or ("(dry run)" if p.action == "rerun" else "refused")
            t.add_row(p.job_id, output.state(p.state), new, p.why)
        out.print(t)
        if not plans:
            err.print("nothing to rerun")
    refused = [p for p in plans if p.action == "refused"]
    if refused and len(refused) == len(plans) and not failed:
        raise StateError(f"{refused[0].job_id}: {refused[0].why}" if len(refused) == 1
                         else f"{len(refused)} runs refused", "see the table above")
