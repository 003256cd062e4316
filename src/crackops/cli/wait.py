"""wait: follow runs to their end (progress bars on a terminal, a line per change elsewhere)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from crackops import api, output
from crackops.cli.app import command
from crackops.cli.common import print_failure_tail, print_retried, print_runs
from crackops.errors import StateError, UsageError
from crackops.output import err
from crackops.registry import Run


def warn_once(rep: api.StatusReport, said: set[str]) -> None:
    """A poll's warnings (the scheduler or the host did not answer: states as last known), each
    said once while waiting, not at every poll."""
    for w in rep.warnings:
        if w not in said:
            said.add(w)
            output.warn(w)


def wait_with_lines(job_ids: list[str], poll_s: float = 2.0, timeout_s: float | None = None) -> list[Run]:
    """Wait for runs, saying one plain line on stderr per run whose state or epoch changed (for a log
    file, nohup, tmux logging, CI: no progress bar redrawn in place, nothing held back until the end)."""
    import time

    seen: dict[str, tuple] = {}
    said: set[str] = set()

    def show(rep: api.StatusReport) -> None:
        print_retried(rep.retried)
        warn_once(rep, said)
        for r in rep.runs:
            ep = api.epoch_progress(r)
            now = (r.state, r.attempt, ep)
            if seen.get(r.shown_id) != now:
                seen[r.shown_id] = now
                err.print(f"{time.strftime('%H:%M:%S')} {r.shown_id} {r.state}"
                          + (f" (attempt {r.attempt})" if r.attempt and r.attempt > 1 else "")
                          + (f" epoch {ep[0]}/{ep[1]}" if ep and not r.terminal else ""),
                          markup=False, highlight=False, soft_wrap=True)

    return api.wait_until_done(job_ids, poll_s=poll_s, timeout_s=timeout_s, on_report=show)


def wait_with_progress(job_ids: list[str], poll_s: float = 2.0, timeout_s: float | None = None) -> list[Run]:
    """Wait for runs, showing one progress bar per run (epochs) on stderr; the finished runs, collected.
    When stderr is not a terminal, one plain line per change instead (:func:`wait_with_lines`)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if not err.is_terminal:
        return wait_with_lines(job_ids, poll_s, timeout_s)

    with Progress(TextColumn("{task.fields[job]}"), TextColumn("{task.fields[state]}"), BarColumn(),
                  TextColumn("{task.fields[epoch]}"), TimeElapsedColumn(), console=err,
                  transient=False) as prog:
        tasks: dict[str, Any] = {}   # added at the first report: an error before it prints nothing else
        said: set[str] = set()

        def show(rep: api.StatusReport) -> None:
            print_retried(rep.retried)
            warn_once(rep, said)
            for r in rep.runs:
                if r.shown_id not in tasks and r.job_id not in tasks:   # a rerun of one waited for
                    tasks[r.shown_id] = prog.add_task("", total=1, job=r.shown_id, state="", epoch="")
                    if r.continues in tasks:
                        prog.update(tasks[r.continues], state=f"rerun as {r.shown_id}", epoch="")
                ep = api.epoch_progress(r)
                total = ep[1] if ep else 1
                completed = total if r.terminal else (ep[0] - 1 if ep else 0)
                prog.update(tasks.get(r.shown_id, tasks.get(r.job_id)), total=total, completed=completed, state=output.state(r.state),
                            epoch=f"epoch {ep[0]}/{ep[1]}" if ep else "")

        return api.wait_until_done(job_ids, poll_s=poll_s, timeout_s=timeout_s, on_report=show)


@command("wait", epilog="Examples:\n\n  crackops wait 1234 1235\n\n  crackops wait 1234 --timeout 3600\n\n"
                        "  crackops wait --sweep lr-bs --json")
def wait(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to wait for.")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between checks.")] = 2.0,
    timeout: Annotated[Optional[float], typer.Option(help="Give up after this many seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="Wait for every run of this sweep.")] = None,
) -> None:
    """Wait until runs finish, with a progress display (into a file or pipe: one line per state or
    epoch change). A run that is rerun (crackops rerun, or --retries, which this command submits when
    due) is followed to its last attempt. Exit status 0 only if all (last attempts) COMPLETED."""
    if sweep:
        if job_ids:
            raise UsageError("give job ids or --sweep, not both", f"crackops wait --sweep {sweep}")
        from crackops.cli.sweep import wait_for_sweep

        return wait_for_sweep(sweep, poll, timeout, as_json)
    if not job_ids:
        raise UsageError("no runs given", "pass job ids, or --sweep NAME")
    if as_json:
        runs = api.wait_until_done(job_ids, poll_s=poll, timeout_s=timeout)
    else:
        runs = wait_with_progress(job_ids, poll, timeout)
    print_runs(runs, as_json)
    bad = [r for r in runs if r.state != "COMPLETED"]
    if not as_json:
        for r in bad[:3]:
            print_failure_tail(r, 10)
    if bad:
        raise StateError(f"{len(bad)} run(s) did not complete: " + ", ".join(f"{r.shown_id} {r.state}" for r in bad),
                         f"see why: crackops status {bad[0].shown_id}")
