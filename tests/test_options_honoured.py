"""Every option a command accepts is honoured or refused, never ignored.

Walks the typer command tree (the ``crackops`` app and its sub-apps): each parameter of each
command's function must be read in its body (an option nothing reads is silently ignored, as
``compare --sweep NAME --csv`` once was). Behavioural tests for the combinations that were ignored
are in ``test_views.py`` (compare --sweep with --csv, --plot and the filters)."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
import typer


def commands(app: typer.Typer, prefix: str = ""):
    for info in app.registered_commands:
        fn = info.callback
        fn = getattr(fn, "__wrapped__", fn)   # handle_errors' wrapper
        yield (prefix + (info.name or fn.__name__)).strip(), fn
    for group in app.registered_groups:
        yield from commands(group.typer_instance, prefix + (group.name or "") + " ")


def all_commands():
    from crackops.cli import app

    return sorted(commands(app), key=lambda c: c[0])


def unread_parameters(fn) -> list[str]:
    """The parameters of ``fn`` its body never reads."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    func = tree.body[0]
    params = [a.arg for a in func.args.args + func.args.kwonlyargs]
    read = {n.id for stmt in func.body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [p for p in params if p not in read]


def test_the_walk_finds_every_command():
    names = {n for n, _ in all_commands()}
    assert {"submit", "status", "collect", "compare", "report", "wait", "sweep", "data synth", "data check"} <= names


@pytest.mark.parametrize("name,fn", all_commands(), ids=[n for n, _ in all_commands()])
def test_every_option_of_every_command_is_read(name, fn):
    assert unread_parameters(fn) == [], f"crackops {name}: options never read (ignored): {unread_parameters(fn)}"


def test_the_check_finds_an_ignored_option():
    def cmd(job_ids: list[str], as_csv: bool = False, plot: str | None = None) -> None:
        if job_ids:
            print(plot)

    assert unread_parameters(cmd) == ["as_csv"]


def dropped_by_early_returns(fn) -> dict[int, list[str]]:
    """{line: parameters} for each ``return`` in ``fn`` whose path (the statements run before it on
    the way there, the conditions taken, the return itself) never reads those parameters: an exit
    that drops options, as ``compare``'s ``--sweep`` branch once dropped ``--csv`` and ``--plot``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    func = tree.body[0]
    params = [a.arg for a in func.args.args + func.args.kwonlyargs]

    def reads(*nodes) -> set[str]:
        return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}

    out: dict[int, list[str]] = {}

    def visit(stmts: list[ast.stmt], seen: set[str]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Return):
                missing = [p for p in params if p not in seen | reads(stmt)]
                if missing:
                    out[stmt.lineno] = missing
                return
            if isinstance(stmt, ast.If):
                visit(stmt.body, seen | reads(stmt.test))
                visit(stmt.orelse, seen | reads(stmt.test))
            elif isinstance(stmt, (ast.For, ast.While)):
                visit(stmt.body, seen | reads(stmt.iter if isinstance(stmt, ast.For) else stmt.test))
            elif isinstance(stmt, (ast.With, ast.Try)):
                visit(stmt.body, seen | (reads(*stmt.items) if isinstance(stmt, ast.With) else set()))
            seen = seen | reads(stmt)

    visit(func.body, set())
    return out


@pytest.mark.parametrize("name,fn", all_commands(), ids=[n for n, _ in all_commands()])
def test_no_early_return_drops_an_option(name, fn):
    assert dropped_by_early_returns(fn) == {}, f"crackops {name}: a branch returns without these options"


def test_the_early_return_check_finds_the_old_compare_sweep_branch():
    def compare(job_ids=None, sweep=None, as_json=False, as_csv=False, plot=None):
        if as_json and as_csv:
            raise ValueError
        if sweep:
            return print(sweep, as_json)
        print(job_ids, as_json, as_csv, plot)

    assert dropped_by_early_returns(compare) == {5: ["job_ids", "plot"]}


def test_submit_dry_run_honours_out_name_and_retries(tmp_path):
    """--out, --name and --retries with --dry-run: in the plan (they were dropped), --retries checked."""
    import json

    from helpers import assert_clean_error, invoke, make_crafted_dataset

    data = tmp_path / "d"
    make_crafted_dataset(data, n=12)
    (data / "positive" / "conflict.jpg").unlink()   # a label conflict: submit refuses it (issue 25)
    res = invoke("submit", "--data", data, "--dry-run", "--out", tmp_path / "elsewhere", "--name", "n1",
                 "--retries", "2", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["config"]["out_root"] == str(tmp_path / "elsewhere") and plan["name"] == "n1" and plan["retries"] == 2
    assert_clean_error(invoke("submit", "--data", data, "--dry-run", "--retries", "-1"), 2, "--retries")
    res = invoke("sweep", "--data", data, "--grid", "dropout=0.2,0.4", "--dry-run", "--retries", "1", "--out", "o")
    assert res.exit_code == 0 and "up to 1 retries" in " ".join(res.output.split()), res.output
