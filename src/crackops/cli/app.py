"""The typer app and the one place where domain errors become messages and exit codes."""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, Callable

import typer

from crackops import interrupts
from crackops.errors import CrackopsError
from crackops.output import err

app = typer.Typer(
    name="crackops",
    help=(
        "Run, track and compare the concrete-crack CNN on Slurm or on this machine.\n\n"
        "Quick start:  crackops demo\n\n"
        "Typical loop:  crackops submit --data DIR  ->  crackops status  ->  crackops collect JOB_ID"
        "  ->  crackops compare"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


#: Ctrl-C before anything was handed to a scheduler (once a job is, the command finishes: see
#: ``crackops.interrupts``).
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted: nothing more was submitted (runs submitted before keep running; see crackops status)"


def _printable(text: str) -> str:
    """``text`` safe to print as one line of markup: messages quote user input (a job id, a path),
    whose control characters would start new lines and whose ``[...]`` rich would read as markup."""
    from rich.markup import escape

    return escape("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)))


def report_error(e: CrackopsError) -> None:
    err.print(f"[bold red]error:[/bold red] {_printable(e.message)}", soft_wrap=True)
    if e.hint:
        err.print(f"[dim]hint: {_printable(e.hint)}[/dim]", soft_wrap=True)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrackopsError as e:
            report_error(e)
            raise typer.Exit(e.exit_code) from None
        except sqlite3.DatabaseError as e:   # damage SQLite found past the registry's header check
            from crackops import registry

            if not registry.is_corruption(e):
                raise
            ce = registry.corrupt_error(registry.default_path(), str(e))
            report_error(ce)
            raise typer.Exit(ce.exit_code) from None
        except KeyboardInterrupt:
            interrupts.ignore()   # a second Ctrl-C changes nothing (and prints no traceback)
            interrupts.said_interrupted()
            err.print(INTERRUPTED, soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        app.command(*args, **kwargs)(handle_errors(fn))
        return fn

    return deco


def mount(sub: typer.Typer, name: str, help: str) -> None:
    """Add a sub-app, routing its commands' errors through ``handle_errors`` too."""
    for info in sub.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_crackops_wrapped", False):
            info.callback = handle_errors(info.callback)
            info.callback._crackops_wrapped = True  # type: ignore[attr-defined]
    app.add_typer(sub, name=name, help=help)
