"""Views that must tell the truth (issue 21): what ``compare``, ``collect``, ``report``, ``status`` and
``wait`` print matches what was asked and what the run left behind."""

from __future__ import annotations

import csv
import io
import json

import pytest

from helpers import T0, collected, invoke, make_run, register, text


def register_sweep(name: str, runs: list, grid: dict, seeds=(1, 2)):
    """Record a crafted sweep ``name`` with ``runs`` as its members; returns the registry."""
    from crackops.registry import Registry, Sweep

    sid = "S-" + name
    for r in runs:
        r.sweep_id = sid
    reg = Registry()
    reg.add_sweep(Sweep(sweep_id=sid, name=name, backend="local", grid=grid, seeds=list(seeds),
                        base_config={}, resources={}, created_at=T0), runs)
    return reg


def grid_runs(prefix: str, *, epochs: int = 10, lrs=(1e-3, 3e-4), seeds=(1, 2), errors=None, t0=T0):
    """One COMPLETED run per learning rate and seed, with made-up test metrics (n=100)."""
    runs = []
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(seeds):
            fn = (errors or {}).get((lr, seed), 5 + i * 10 + j)
            runs.append(make_run(f"{prefix}{i}{j}", metrics=collected(fn, 2), learning_rate=lr, seed=seed,
                                 epochs=epochs, submitted_at=t0 + 10 * len(runs), name=f"{prefix}-{i}-{j}"))
    return runs


# ---------------------------------------------------------------------------------------------- point 1

def test_compare_sweep_honours_csv_plot_and_filters(tmp_path):
    register_sweep("lr", grid_runs("a"), {"learning_rate": [1e-3, 3e-4]})
    res = invoke("compare", "--sweep", "lr", "--csv")
    assert res.exit_code == 0, text(res)
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert sorted(r["job_id"] for r in rows) == ["a00", "a01", "a10", "a11"]
    assert "config.learning_rate" in rows[0] and "─" not in res.stdout     # CSV, not a rich table

    png = tmp_path / "cmp.png"
    res = invoke("compare", "--sweep", "lr", "--plot", png)
    assert res.exit_code == 0, text(res)
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in text(res)

    res = invoke("compare", "--sweep", "lr", "--where", "learning_rate=0.001", "--json")
    assert res.exit_code == 0, text(res)
    data = json.loads(res.stdout)
    assert sorted(r["job_id"] for r in data["runs"]) == ["a00", "a01"] and data["sweep"]["name"] == "lr"
    res = invoke("compare", "--sweep", "lr", "--name", "a-1-*", "--json")
    assert sorted(r["job_id"] for r in json.loads(res.stdout)["runs"]) == ["a10", "a11"]
    res = invoke("compare", "--sweep", "lr", "--state", "FAILED")
    assert res.exit_code == 0 and "no runs to compare match these filters" in text(res)
    res = invoke("compare", "--sweep", "lr", "--no-group")
    assert res.exit_code == 2 and "--no-group does not apply to --sweep" in res.output


def test_two_sweeps_without_a_shared_grid_point_say_why():
    register_sweep("short", grid_runs("s", epochs=2), {"learning_rate": [1e-3, 3e-4]})
    register_sweep("long", grid_runs("l", epochs=3, t0=T0 + 100), {"learning_rate": [1e-3, 3e-4]})
    res = invoke("compare", "--sweep", "short", "--sweep", "long", "--json")
    assert res.exit_code == 0, text(res)
    data = json.loads(res.stdout)
    assert data["across_sweeps"] == []
    reason = data["across_sweeps_reason"]
    assert "share no grid point" in reason and "epochs" in reason and "short: 2" in reason and "long: 3" in reason
    res = invoke("compare", "--sweep", "short", "--sweep", "long")
    assert res.exit_code == 0 and f"no grid point lined up across the sweeps: {reason}" in " ".join(res.stdout.split())


def test_two_sweeps_sharing_points_give_no_reason():
    register_sweep("one", grid_runs("o"), {"learning_rate": [1e-3, 3e-4]})
    register_sweep("two", grid_runs("t", t0=T0 + 100), {"learning_rate": [1e-3, 3e-4]})
    data = json.loads(invoke("compare", "--sweep", "one", "--sweep", "two", "--json").stdout)
    assert len(data["across_sweeps"]) == 2 and data["across_sweeps_reason"] is None
    res = invoke("compare", "--sweep", "one", "--sweep", "two", "--csv")
    assert res.exit_code == 0 and len(list(csv.DictReader(io.StringIO(res.stdout)))) == 8


# ---------------------------------------------------------------------------------------------- point 2

def test_report_card_shows_the_interval_compare_shows(tmp_path):
    from crackops.compare import compare_runs
    from crackops.metrics import BY_KEY
    from crackops.report.html import build_report

    run = make_run("ci1", metrics=collected(6, 4, n=160), out_dir=tmp_path / "ci1")
    ci = compare_runs([run]).rows[0]["test_accuracy_ci95"]
    assert ci is not None
    shown = BY_KEY["test_accuracy_ci95"].format(ci, detail=True)
    page = build_report([run])
    card = page.split("test accuracy, 95 % interval")[0].rsplit('<div class="v">', 1)[1]
    assert shown in card and not card.startswith("-"), card


# ---------------------------------------------------------------------------------------------- point 3

def test_cut_predictions_make_collect_say_incomplete_and_the_report_says_no_grid(tmp_path, crackops_dirs):
    from helpers import make_artifacts

    out = make_artifacts(crackops_dirs["out"] / "pr1", job_id="pr1")
    register([make_run("pr1", out_dir=out)])
    res = invoke("collect", "pr1")
    assert res.exit_code == 0, text(res)
    assert "predictions_test.csv" in res.stdout
    preds = out / "predictions_test.csv"
    preds.write_bytes(preds.read_bytes()[:100])
    res = invoke("collect", "pr1", "--json")
    data = json.loads(res.stdout)
    assert res.exit_code == 6 and data["state"] == "INCOMPLETE", text(res)
    assert "predictions_test.csv" in data["reason"] and "cut short" in data["reason"], data["reason"]
    res = invoke("collect", "pr1")
    assert "INCOMPLETE" in res.stdout and "corrupt: the last line" in " ".join(res.stdout.split())
    page = (tmp_path / "r.html")
    assert invoke("report", "pr1", "-o", page).exit_code == 0
    html = page.read_text()
    assert "every one of" not in html and "does not match this run" in html


@pytest.mark.parametrize("damage,why", [
    (lambda rows: rows[:-1], "99 rows for the manifest's 100 test images"),                   # a whole row lost
    (lambda rows: [r.replace(",0.900000", ",0.100000") if r.startswith("/x/p7.") else r for r in rows],
     "6 missed cracks"),                                                                    # errors disagree
    (lambda rows: rows[:3] + ["/x/q.jpg,one,0.5"] + rows[3:], "does not parse"),
])
def test_predictions_must_match_the_manifest(tmp_path, damage, why):
    from crackops import artifacts
    from helpers import make_artifacts

    out = make_artifacts(tmp_path / "p")
    assert artifacts.verify(out).ok
    p = out / "predictions_test.csv"
    head, *rows = p.read_text().splitlines()
    p.write_text("\n".join([head, *damage(rows)]) + "\n")
    rep = artifacts.verify(out)
    assert not rep.ok and why in rep.corrupt["predictions_test.csv"], rep.corrupt
