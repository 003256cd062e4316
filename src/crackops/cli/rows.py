"""One row model per listing: the fields a listing shows, computed once per item. The rich table,
``--json`` and ``--csv`` are all built from these rows, so the formats cannot disagree on which
runs there are or what their values are (``tests/test_listing_formats.py`` checks).

A :class:`Field` names a row key (the JSON / CSV name), its table header and how its cell reads.
``status``, ``status --sweep`` and ``wait`` list runs with :data:`RUN_FIELDS`; ``compare``'s rows
come from :func:`crackops.compare.make_row` and its columns from the metric table.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

from rich.table import Table

from crackops import fmt, output
from crackops.metrics import BY_KEY


@dataclass(frozen=True)
class Field:
    key: str                                   # the row key: in --json and as the --csv column
    header: str                                # the table's column header
    cell: Callable[[dict[str, Any]], str]      # the table cell, from the whole row
    justify: str = "left"
    no_wrap: bool = False


def _state_cell(row: dict[str, Any]) -> str:
    return (output.state(row["state"]) + (f" (attempt {row['attempt']})" if (row.get("attempt") or 1) > 1 else "")
            + (" [yellow](code changed)[/yellow]" if row.get("code_changed") else ""))


_ACC = BY_KEY["test_accuracy"]

#: a run in ``status``, ``status --sweep`` and ``wait``
RUN_FIELDS = [
    Field("ref", "job id", lambda r: r["ref"], no_wrap=True),
    Field("name", "name", lambda r: r.get("name") or "-"),
    Field("backend", "backend", lambda r: r["backend"]),
    Field("state", "state", _state_cell, no_wrap=True),
    Field("elapsed_s", "elapsed", lambda r: fmt.duration(r.get("elapsed_s")), "right"),
    Field("test_accuracy", "test acc", lambda r: _ACC.format(r.get("test_accuracy"), detail=True), "right"),
    Field("submitted_at", "submitted", lambda r: fmt.when(r.get("submitted_at")), no_wrap=True),
]


def run_row(run: Any) -> dict[str, Any]:
    """A registry run as every run listing shows it: the run's own fields (as ``Run.to_dict``) and
    the ones the table derives (``test_accuracy``, ``code_changed``)."""
    return {**run.to_dict(), "test_accuracy": _ACC.value(run),
            "code_changed": bool((run.provenance or {}).get("code_changed"))}


def table(fields: list[Field], rows: Iterable[dict[str, Any]], **kwargs: Any) -> Table:
    t = Table(show_lines=False, header_style="bold", **kwargs)
    for f in fields:
        t.add_column(f.header, justify=f.justify, no_wrap=f.no_wrap)
    for r in rows:
        t.add_row(*[f.cell(r) for f in fields])
    return t


def write_csv(fields: list[Field], rows: Iterable[dict[str, Any]], stream: TextIO | None = None) -> None:
    """The rows as CSV, one column per field, raw values (numbers unformatted, None empty)."""
    stream = stream or sys.stdout
    w = csv.writer(stream, lineterminator="\n")
    w.writerow([f.key for f in fields])
    for r in rows:
        w.writerow(["" if r.get(f.key) is None else r.get(f.key) for f in fields])
    stream.flush()
