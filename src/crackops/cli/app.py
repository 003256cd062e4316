"""The typer app and the one place where domain errors become messages and exit codes."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from typing import Any, Callable, Iterator

import typer
from typer.core import TyperGroup

from crackops import __version__, interrupts
from crackops.errors import EXIT_USAGE, CrackopsError
from crackops.output import err

#: click's ``UsageError`` (an unknown option or command, a missing value, a value of the wrong type),
#: reached through the public ``typer.BadParameter``, which derives from it
CLICK_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]


@contextlib.contextmanager
def one_line_usage_errors(group_ctx: Any = None) -> Iterator[None]:
    """A usage mistake (``--bogus``, ``--sort`` without a value, ``--epochs many``) told as every other
    mistake is: one ``error:`` line and a ``hint:`` line on stderr, exit 2, instead of click's box."""
    try:
        yield
    except CLICK_USAGE_ERROR as e:
        ctx = getattr(e, "ctx", None)
        if ctx is not None:
            path = ctx.command_path
        elif group_ctx is not None:   # an error parsing a command's own options carries no context
            path = " ".join(filter(None, (group_ctx.command_path, group_ctx.invoked_subcommand)))
        else:
            path = "crackops"
        msg = e.format_message().rstrip(".")  # type: ignore[attr-defined]
        report_error(CrackopsError(msg[:1].lower() + msg[1:], f"{path} --help lists what it takes"))
        raise typer.Exit(EXIT_USAGE) from None


class CrackopsGroup(TyperGroup):
    """The ``crackops`` command group: usage errors of the group and of every command (parsed in
    ``invoke``) become one line (see :func:`one_line_usage_errors`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with one_line_usage_errors(ctx):
            return super().invoke(ctx)


app = typer.Typer(
    cls=CrackopsGroup,
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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"crackops {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print crackops' version and exit.")) -> None:
    pass


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
