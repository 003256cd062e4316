"""Every listing command's human table, ``--json`` and ``--csv`` (where offered) list the same runs
with the same values: all three come from one row model (``crackops.cli.rows`` for run listings,
``crackops.compare.make_row`` for compare). Crafted runs, no training."""

from __future__ import annotations

import csv
import io
import json

import pytest

from crackops.metrics import BY_KEY
from helpers import T0, collected, invoke, make_run, register
from test_views import register_sweep

ACC = BY_KEY["test_accuracy"]


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the first rich table in ``text``: {header: cell}, wrapped headers and cells joined."""
    heads: list[list[str]] = []
    rows: list[list[list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("┃"):
            cells = [c.strip() for c in line.strip("┃").split("┃")]
            heads = [h + [c] for h, c in zip(heads, cells)] if heads else [[c] for c in cells]
        elif line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if rows and not cells[0]:                     # a wrapped cell's next line
                rows[-1] = [r + [c] for r, c in zip(rows[-1], cells)]
            else:
                rows.append([[c] for c in cells])
        elif line.startswith("└") and rows:
            break
    names = [" ".join(p for p in h if p) for h in heads]
    return [dict(zip(names, (" ".join(p for p in r if p) for r in row))) for row in rows]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def runs():
    rs = [make_run("501", metrics=collected(3, 2), name="a", learning_rate=1e-3, seed=1),
          make_run("502", metrics=collected(5, 4), name="b", learning_rate=3e-4, seed=1, submitted_at=T0 + 1),
          make_run("503", metrics=collected(4, 2), name="c", learning_rate=1e-3, seed=2, submitted_at=T0 + 2),
          make_run("504", state="FAILED", reason="ValueError: x", name="d", learning_rate=3e-4, seed=2,
                   submitted_at=T0 + 3),
          make_run("505", state="CANCELLED", name="e", learning_rate=3e-4, seed=3, submitted_at=T0 + 4)]
    register_sweep("fmt", rs, {"learning_rate": [1e-3, 3e-4]}, seeds=(1, 2, 3))
    return rs


def formats(*args, csv_offered=True):
    human, js = invoke(*args), invoke(*args, "--json")
    assert human.exit_code == 0 and js.exit_code == 0, (human.output, js.output)
    cs = invoke(*args, "--csv") if csv_offered else None
    if cs is not None:
        assert cs.exit_code == 0, cs.output
    return table_rows(human.stdout), json.loads(js.stdout), (csv_rows(cs.stdout) if cs is not None else None)


def check_run_rows(table, data, csv_data, id_key="ref"):
    assert [t["job id"] for t in table] == [d[id_key] for d in data]
    assert [t["state"].split()[0] for t in table] == [d["state"] for d in data]
    assert [t["test acc"] for t in table] == [ACC.format(d["test_accuracy"], detail=True) for d in data]
    assert [t["name"] for t in table] == [d["name"] or "-" for d in data]
    if csv_data is not None:
        assert [c[id_key] for c in csv_data] == [d[id_key] for d in data]
        assert [c["state"] for c in csv_data] == [d["state"] for d in data]
        assert [float(c["test_accuracy"]) if c["test_accuracy"] else None for c in csv_data] == \
            [d["test_accuracy"] for d in data]


@pytest.mark.parametrize("args", [("status", "--no-refresh"), ("status",), ("status", "--sweep", "fmt", "--no-refresh")])
def test_status_formats_agree(runs, args):
    table, data, csv_data = formats(*args)
    if isinstance(data, dict):   # status --sweep: the sweep and its runs
        data = data["runs"]
    assert len(table) == 5
    check_run_rows(table, data, csv_data)


def test_wait_formats_agree(runs):
    ids = ["501", "502", "503"]
    human, js = invoke("wait", *ids, "--poll", "0.1"), invoke("wait", *ids, "--poll", "0.1", "--json")
    assert human.exit_code == js.exit_code == 0, human.output
    check_run_rows(table_rows(human.stdout), json.loads(js.stdout), None)


@pytest.mark.parametrize("args", [("compare",), ("compare", "--sweep", "fmt"), ("compare", "--no-group"),
                                  ("compare", "--state", "COMPLETED", "--sort", "f1")])
def test_compare_formats_agree(runs, args):
    table, data, csv_data = formats(*args)
    rows = data["runs"]
    assert len(table) == len(rows) == len(csv_data) > 0
    assert [t["job id"].replace(" ★ best", "") for t in table] == [r["job_id"] for r in rows] == \
        [c["job_id"] for c in csv_data]
    assert [t["state"] for t in table] == [r["state"] for r in rows] == [c["state"] for c in csv_data]
    acc = BY_KEY["test_accuracy"]
    assert [t["test acc"] for t in table] == [acc.format(r["test_accuracy"]) for r in rows]
    assert [float(c["test_accuracy"]) if c["test_accuracy"] else None for c in csv_data] == \
        [r["test_accuracy"] for r in rows]
    best = [t["job id"].replace(" ★ best", "") for t in table if "★ best" in t["job id"]]
    assert best == ([data["best"]] if data["best"] else []) == [c["job_id"] for c in csv_data if c["best"] == "True"]
    for k in data["shown_config"]:
        assert [t[k] for t in table] == [format(r["config"][k], "g") if isinstance(r["config"][k], float)
                                         else str(r["config"][k]) for r in rows]


def test_profiles_formats_agree():
    table, data, _ = formats("profiles", csv_offered=False)
    assert [t["profile"] for t in table] == [p["name"] for p in data]
    assert [t["CPUs"] for t in table] == [str(p["cpus"]) for p in data]


def test_sweeps_listing_formats_agree(runs):
    register_sweep("fmt2", [make_run("601", metrics=collected(2, 2), submitted_at=T0 + 50)],
                   {"learning_rate": [1e-3]}, seeds=(1,))
    table, data, _ = formats("sweeps", "--no-refresh", csv_offered=False)
    assert [t["sweep"] for t in table] == [d["name"] for d in data] == ["fmt", "fmt2"]
    assert [t["runs"] for t in table] == [str(d["runs"]) for d in data] == ["5", "1"]
    for key in ("done", "failed", "running", "pending", "cancelled"):
        assert [t[key] for t in table] == [str(d["counts"][key]) for d in data]


def test_wait_sweep_formats_agree():
    register_sweep("fin", [make_run("701", metrics=collected(2, 2)),
                           make_run("702", metrics=collected(3, 2), submitted_at=T0 + 1)],
                   {"learning_rate": [1e-3]}, seeds=(1, 2))
    human = invoke("wait", "--sweep", "fin", "--poll", "0.1")
    js = invoke("wait", "--sweep", "fin", "--poll", "0.1", "--json")
    assert human.exit_code == js.exit_code == 0, human.output
    check_run_rows(table_rows(human.stdout), json.loads(js.stdout)["runs"], None)
