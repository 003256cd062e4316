"""What several commands print the same way: option help texts, the run listing, the failure
tail, the retried reruns, the scheduler-down error. Commands import it; it imports no command."""

from __future__ import annotations

from crackops import output
from crackops.backends import help_text
from crackops.cli import rows
from crackops.errors import BackendError
from crackops.output import err, out

BACKEND_HELP = help_text()  # built from the backends' registry (crackops.backends.REGISTRY)
HOST_HELP = ("Remote backends: the cluster's login node (a host name, an alias of your client's configuration, "
             "user@host); also a profile's [resources] host.")
RETRIES_HELP = ("Rerun automatically, up to N times, when the run ends OUT_OF_MEMORY (memory x1.5, capped by "
                "the partition's limit), TIMEOUT, NODE_FAIL or PREEMPTED (never after a Python exception), each "
                "attempt continuing the last backup; done by the next crackops status / wait / sweep status, "
                "once, whichever crackops process gets there first. [default: 0]")


def print_retried(plans) -> None:
    """One line per rerun that ``--retries`` submitted during a refresh (stderr)."""
    for p in plans:
        err.print(f"retried [bold]{p.job_id}[/bold] ({output.state(p.state)}) as [bold]{p.new_job_id}[/bold]: {p.why}")


def print_runs(runs, as_json: bool = False, as_csv: bool = False) -> None:
    """A run listing (status, wait) in the format asked, from the one row model (``cli.rows``)."""
    data = [rows.run_row(r) for r in runs]
    if as_json:
        output.print_json(data)
    elif as_csv:
        rows.write_csv(rows.RUN_FIELDS, data)
    else:
        out.print(rows.table(rows.RUN_FIELDS, data))


def _unread_results_hint(runs, compare_cmd: str) -> None:
    """Completed runs show no test accuracy until their results are read (status never opens
    artifacts: it stays fast); say which command reads them."""
    n = sum(1 for r in runs if r.state == "COMPLETED" and r.metrics is None)
    if n:
        output.hint(f"{n} completed run{'s' if n != 1 else ''} not read yet (test acc -): {compare_cmd} "
                    "reads and compares them, crackops collect JOB_ID reads one")


def print_failure_tail(run, lines: int = 15, text: str | None = None) -> None:
    """What a run that did not complete left in its ``.err`` log that says why (stderr), not the
    TensorFlow start-up banner; nothing for a COMPLETED run."""
    from crackops.artifacts import failure_tail

    if run.state == "COMPLETED":
        return
    t = failure_tail(run.log_err, lines) if text is None else text
    if t:
        err.print(f"[bold]last lines of {run.log_err}:[/bold]")
        err.print(t, markup=False, highlight=False)


def raise_if_scheduler_down(down: str | None) -> None:
    """``status`` (one run, all runs or a sweep) exits 5 when the controller did not answer; what it
    printed before is the last known state."""
    if down:
        raise BackendError(f"{down}: unfinished runs show their last known state",
                           "running jobs go on and end normally once it is back; new submissions fail until "
                           "then (check: scontrol ping)")
