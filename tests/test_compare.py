"""compare: metrics side by side, seed groups as mean ± std, the winner, efficiency, sort, filters, CSV,
JSON, plots. Crafted registry rows for the edge cases (shaped like ``api.collect`` stores them), the
shared real training for the rest."""

from __future__ import annotations

import csv
import io
import json
import math
import time

import pytest

from crackops.compare import (compare_runs, filter_runs, final_attempts, parse_since, parse_where, reduce,
                              resolve_sort, value_matches)
from crackops.errors import UsageError
from crackops.registry import Registry, Run
from helpers import T0, collected, invoke, make_run, register


def acct(cpu=0.5, mem=0.13, tim=0.04, hints=("asked 16 GB, peak 2.1 GB: --mem 4G would do",)) -> dict:
    return {"elapsed_s": 600.0, "timelimit_s": 14400.0, "alloc_cpus": 8, "req_mem_mb": 16384.0,
            "max_rss_mb": 2150.0, "total_cpu_s": 2400.0, "cpu_eff": cpu, "mem_eff": mem, "time_eff": tim,
            "hints": list(hints)}


def sweep(with_accounting: bool = True) -> list[Run]:
    """Three learning rates x two seeds; lr 0.003 wins, lr 0.0003 loses clearly."""
    spec = {0.001: [(6, 4), (5, 3)], 0.003: [(2, 2), (3, 2)], 0.0003: [(12, 8), (18, 12)]}
    runs, i = [], 0
    for lr, per_seed in spec.items():
        for seed, (fn, fp) in enumerate(per_seed, 1):
            i += 1
            runs.append(make_run(f"{100 + i}", metrics=collected(fn, fp, fingerprint=f"split-seed{seed}"),
                                 name=f"lr{lr}-s{seed}", learning_rate=lr, seed=seed, submitted_at=T0 + i,
                                 backend="slurm" if with_accounting else "local",
                                 accounting=acct() if with_accounting else None))
    return runs


# ------------------------------------------------------------------------------------------- API

def test_seed_groups_mean_std_and_winner():
    cmp = compare_runs(sweep())
    assert cmp.differing == ["learning_rate", "seed"]
    assert [g.id for g in cmp.groups] == ["g1", "g2", "g3"]
    g1, g2, g3 = cmp.groups
    assert g1.config == {"learning_rate": 0.001} and g1.seeds == [1, 2] and g1.n == g1.n_runs == 2
    acc = g1.stats["test_accuracy"]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(0.91) and acc["std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert g2.stats["test_fn"]["mean"] == pytest.approx(2.5) and g2.stats["test_fn"]["std"] == pytest.approx(math.sqrt(0.5))
    assert cmp.best_group == "g2" and cmp.best == "103"   # 96 % beats 95 %
    assert {r["job_id"]: r["group"] for r in cmp.rows}["106"] == "g3"
    v = cmp.verdict
    assert v["kind"] == "group" and v["best"] == "g2" and v["runner_up"] == "g1"
    assert v["delta"] == pytest.approx(0.955 - 0.91)
    # 4.5 pp with 2 seeds a side on 100 test images: the noise (seed spread pooled over the groups,
    # at least the test sets' ±5 pp) covers it
    assert v["real"] is False and "within the noise" in v["text"] and v["noise"] > 0.05
    d = cmp.to_dict()
    assert {"runs", "differing_config", "warnings", "best", "groups", "best_group", "verdict", "hints"} <= set(d)
    assert d["groups"][1]["label"] == "learning_rate=0.003"
    json.dumps(d)  # JSON-able as is
    # seeds split the data differently: warned, and the warning says why
    assert any("different test splits" in w and "seed also picks" in w for w in cmp.warnings)


def test_efficiency_joined_per_run_and_hints():
    runs = sweep()
    runs[0].accounting = None  # a local run among Slurm runs: blank efficiency
    runs[0].backend = "local"
    cmp = compare_runs(runs)
    rows = {r["job_id"]: r for r in cmp.rows}
    assert rows["101"]["cpu_eff"] is None and rows["101"]["accounted"] is False
    assert rows["102"]["cpu_eff"] == 0.5 and rows["102"]["mem_eff"] == 0.13 and rows["102"]["time_eff"] == 0.04
    assert rows["102"]["max_rss_mb"] == 2150.0 and rows["102"]["req_mem_mb"] == 16384.0
    assert cmp.hints == [
        "102, 103, 104, 105 and 1 more: --mem 4G would do (102: asked 16 GB, peak 2.1 GB)",
        "across 5 completed Slurm runs: peak memory 2.1 GB of 16 GB asked; elapsed 0:10:00 of 4:00:00 allowed",
        "a request that would have fitted all 5: --mem 4G --time 0:15:00 --cpus 5",   # 4 CPUs busy of 8
    ]
    one = compare_runs(sweep()[:1])
    assert one.hints == ["101: asked 16 GB, peak 2.1 GB: --mem 4G would do"]
    assert cmp.groups[1].stats["cpu_eff"]["mean"] == pytest.approx(0.5)


def test_one_run():
    cmp = compare_runs([make_run("1", metrics=collected(3, 2))])
    assert cmp.differing == [] and cmp.best is None and cmp.best_group is None and cmp.verdict is None
    assert not cmp.replicated and len(cmp.groups) == 1 and cmp.groups[0].label == "same config"
    assert cmp.rows[0]["test_accuracy"] == pytest.approx(0.95) and cmp.warnings == []


def test_no_differing_config_same_seed():
    runs = [make_run("1", metrics=collected(3, 2)), make_run("2", metrics=collected(4, 4), submitted_at=T0 + 1)]
    cmp = compare_runs(runs)
    assert cmp.differing == [] and cmp.best == "1"
    assert len(cmp.groups) == 1 and cmp.groups[0].n == 2 and cmp.best_group is None
    assert cmp.verdict["kind"] == "run" and cmp.verdict["real"] is False   # 3 images on 100: noise
    assert "within the noise of 100 test images" in cmp.verdict["text"]
    assert cmp.warnings == []  # same split fingerprint


def test_failed_run_shown_not_counted():
    runs = sweep(with_accounting=False)
    runs[1] = make_run("102", state="FAILED", reason="exit code 1: ValueError in the data pipeline",
                       learning_rate=0.001, seed=2, submitted_at=T0 + 2)
    cmp = compare_runs(runs)
    row = {r["job_id"]: r for r in cmp.rows}["102"]
    assert row["state"] == "FAILED" and row["test_accuracy"] is None and "ValueError" in row["reason"]
    g1 = cmp.groups[0]
    assert g1.n_runs == 2 and g1.n == 1 and g1.stats["test_accuracy"]["std"] is None
    assert any("no metrics for 102" in w for w in cmp.warnings)
    assert cmp.best == "103"


def test_tie_breaks_f1_then_missed_cracks():
    # same accuracy; F1 differs (fewer FN at equal errors -> higher recall and F1)
    a = make_run("1", metrics=collected(fn=1, fp=5), dropout=0.3)
    b = make_run("2", metrics=collected(fn=5, fp=1), dropout=0.5)
    assert compare_runs([b, a]).best == "1"
    # same accuracy and F1: fewer missed cracks
    c, d = collected(2, 2), collected(2, 2)
    c["test_fn"] = 3
    cmp = compare_runs([make_run("3", metrics=c, dropout=0.1), make_run("4", metrics=d, dropout=0.2)])
    assert cmp.best == "4"


def test_different_data_warned():
    runs = [make_run("1", metrics=collected(3, 2, fingerprint="A")),
            make_run("2", metrics=collected(3, 2, fingerprint="B"), data_dir="/data/other")]
    cmp = compare_runs(runs)
    assert cmp.differing == ["data_dir"]
    assert any("different test splits" in w and "data_dir differ" in w for w in cmp.warnings)
    same = [make_run("1", metrics=collected(3, 2, fingerprint="A")), make_run("2", metrics=collected(3, 2, fingerprint="B"))]
    assert any("changed on disk" in w for w in compare_runs(same).warnings)


def test_implausible_efficiency_flagged():
    runs = [make_run("1", metrics=collected(3, 2), accounting=acct(cpu=3.2), backend="slurm"),
            make_run("2", metrics=collected(3, 2), accounting={**acct(mem=1.3), "implausible": ["mem_eff"]},
                     backend="slurm", seed=2)]
    cmp = compare_runs(runs)
    assert any("implausible" in w and "1 cpu_eff 320%" in w and "2 mem_eff 130%" in w for w in cmp.warnings)
    assert cmp.groups[0].stats["cpu_eff"]["n"] == 1 and cmp.groups[0].stats["mem_eff"]["mean"] == 0.13
    register(runs)
    res = invoke("compare")
    assert res.exit_code == 0 and "320%?" in res.stdout and "130%?" in res.stdout, res.output


def test_sort():
    cmp = compare_runs(sweep(), sort="f1")
    f1 = [r["test_f1"] for r in cmp.rows]
    assert f1 == sorted(f1, reverse=True)
    assert [r.job_id for r in cmp.runs] == [r["job_id"] for r in cmp.rows]
    assert [g.id for g in cmp.groups] == ["g2", "g1", "g3"]
    fns = [r["test_fn"] for r in compare_runs(sweep(), sort="missed").rows]
    assert fns == sorted(fns)
    lrs = [r["config"]["learning_rate"] for r in compare_runs(sweep(), sort="learning_rate:desc").rows]
    assert lrs == sorted(lrs, reverse=True)
    assert compare_runs(sweep(), sort="acc:asc").rows[0]["job_id"] == "106"
    runs = sweep()
    runs[0].metrics = None
    assert compare_runs(runs, sort="acc").rows[-1]["job_id"] == "101"   # no value: last either way
    assert compare_runs(runs, sort="acc:asc").rows[-1]["job_id"] == "101"
    assert resolve_sort("wall") == ("wall_time_s", False) and resolve_sort("auc") == ("test_roc_auc", True)
    with pytest.raises(UsageError, match="cannot sort by"):
        resolve_sort("nonsense")
    with pytest.raises(UsageError, match="asc or desc"):
        resolve_sort("f1:up")


def test_filters():
    runs = sweep()
    runs.append(make_run("107", state="FAILED", name="broken", submitted_at=T0 - 10 * 86400))
    assert [r.job_id for r in filter_runs(runs, states=["failed"])] == ["107"]
    assert len(filter_runs(runs, states=["COMPLETED,FAILED"])) == 7
    assert [r.job_id for r in filter_runs(runs, name="lr0.003-*")] == ["103", "104"]
    assert [r.job_id for r in filter_runs(runs, where=["learning_rate=0.0003"])] == ["105", "106"]
    assert [r.job_id for r in filter_runs(runs, where=["learning_rate=3e-4", "seed!=1"])] == ["106"]
    assert len(filter_runs(runs, where=["cache=true", "max_images=none", "data_dir=/data/*"])) == 7
    assert len(filter_runs(runs, since=T0 - 86400)) == 6
    with pytest.raises(UsageError, match="no run has a config value"):
        filter_runs(runs, where=["lr=0.1"])
    with pytest.raises(UsageError, match="unknown state"):
        filter_runs(runs, states=["DONE"])
    with pytest.raises(UsageError, match="not KEY=VALUE"):
        parse_where(["learning_rate"])


def test_parse_since_and_values():
    now = T0
    assert parse_since("3d", now) == now - 3 * 86400 and parse_since("12h", now) == now - 12 * 3600
    assert parse_since("2025-11-24") == time.mktime((2025, 11, 24, 0, 0, 0, 0, 0, -1))
    assert parse_since("2025-11-24 13:30") == time.mktime((2025, 11, 24, 13, 30, 0, 0, 0, -1))
    assert parse_since("today", now) <= now and now - parse_since("yesterday", now) <= 2 * 86400
    with pytest.raises(UsageError, match="cannot read --since"):
        parse_since("last tuesday")
    assert value_matches(0.001, "1e-3") and not value_matches(0.001, "0.01") and not value_matches(1, "x")
    assert value_matches(True, "yes") and value_matches(False, "0") and value_matches(None, "null")
    r = reduce([1, 2, None, "x", float("nan")])
    assert r["n"] == 2 and r["mean"] == 1.5 and r["std"] == pytest.approx(math.sqrt(0.5))
    assert reduce([]) == {"mean": None, "std": None, "n": 0, "min": None, "max": None}


# ------------------------------------------------------------------------------------------- CLI

def test_cli_sweep_groups_winner_efficiency():
    register(sweep())
    res = invoke("compare")
    assert res.exit_code == 0, res.output
    out = res.stdout
    for frag in ("test acc", "95% CI", "missed cracks", "ROC AUC", "CPU eff", "mem eff", "used",
                 "learning_rate", "configs (mean ± std", "95.5 ± 0.7%", "g2 ★ best", "best config: g2",
                 "4% of 4h", "lr0.0003-s2"):
        assert frag in out, (frag, out)
    assert "--mem 4G would do (101: asked 16 GB, peak 2.1 GB)" in res.stderr
    assert "would have fitted all 6: --mem 4G --time 0:15:00 --cpus 5" in res.stderr
    assert "different test splits" in res.stderr


def test_cli_json_csv_and_flags():
    register(sweep(with_accounting=False))
    res = invoke("compare", "--json", "--sort", "acc")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["best"] == "103" and d["best_group"] == "g2" and d["runs"][0]["job_id"] == "103"
    assert [g["n"] for g in d["groups"]] == [2, 2, 2]
    res = invoke("compare", "--csv", "--where", "learning_rate=0.003")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["job_id"] for r in rows] == ["103", "104"]
    assert rows[0]["config.seed"] == "1" and rows[0]["best"] == "True" and rows[0]["cpu_eff"] == ""
    assert float(rows[1]["test_accuracy"]) == pytest.approx(0.95)
    res = invoke("compare", "--json", "--state", "COMPLETED", "--name", "lr0.001-*", "--since", "2000-01-01")
    assert [r["job_id"] for r in json.loads(res.stdout)["runs"]] == ["101", "102"]
    res = invoke("compare", "--name", "nothing-*")
    assert res.exit_code == 0 and "no runs to compare match these filters" in res.stderr
    for args, frag in ((["--json", "--csv"], "pick one"), (["--sort", "bogus"], "cannot sort by"),
                       (["--since", "soon"], "cannot read --since"), (["--where", "nope=1"], "no run has"),
                       (["--plot", "x.jpg"], "PNG")):
        res = invoke("compare", *args)
        assert res.exit_code == 2 and "Traceback" not in res.output and frag in res.output, (args, res.output)


def test_cli_failed_run_among_them(tmp_path):
    runs = sweep(with_accounting=False)[:2]
    runs.append(make_run("109", state="FAILED", reason="out of memory", learning_rate=0.01, submitted_at=T0 + 9))
    register(runs)
    res = invoke("compare", "--plot", str(tmp_path / "c.png"))
    assert res.exit_code == 0, res.output
    assert "FAILED" in res.stdout and "109" in res.stdout and "no metrics for 109" in res.stderr
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_plot_grouped_png(tmp_path):
    from PIL import Image

    from crackops.report.plots import compare_figure

    runs = sweep()
    hist = {r.job_id: {"history": {"loss": [0.7, 0.4, 0.3], "val_loss": [0.8, 0.5, 0.45],
                                   "accuracy": [0.6, 0.8, 0.9], "val_accuracy": [0.55, 0.75, 0.85]},
                       "best_epoch": 3} for r in runs}
    p = compare_figure(compare_runs(runs), tmp_path / "g.png", hist)
    with Image.open(p) as im:
        assert im.format == "PNG" and im.size == (1300, 860)


# ------------------------------------------------------------------------------------------- real run

def test_real_run_compare_and_plot(registered_trained_run, tmp_path):
    from PIL import Image

    from crackops.report.plots import load_histories

    m = registered_trained_run
    other = make_run("200", metrics=collected(10, 10, fingerprint="other"), learning_rate=0.01, name="crafted",
                     submitted_at=m.submitted_at + 1)
    register([other])
    res = invoke("compare", "--json", "--plot", str(tmp_path / "real.png"))
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    row = next(r for r in d["runs"] if r["job_id"] == "trained1")
    test = registered_trained_run_manifest(m)["metrics"]["test"]
    assert row["test_accuracy"] == pytest.approx(test["accuracy"]) and row["test_fn"] == test["fn"]
    assert row["epochs_run"] >= 1 and row["best_epoch"] >= 1 and row["wall_time_s"] > 0
    assert "learning_rate" in d["differing_config"]
    assert any("different test splits" in w for w in d["warnings"])
    with Image.open(tmp_path / "real.png") as im:
        assert im.format == "PNG"
    cmp = compare_runs(Registry().list())
    assert set(load_histories(cmp)) == {"trained1"}   # the crafted run has no manifest: no curves, no crash


def registered_trained_run_manifest(run: Run) -> dict:
    from crackops.artifacts import read_manifest

    return read_manifest(run.out_dir)


def test_plot_many_runs_features_the_best(tmp_path):
    from crackops.report.plots import MAX_BARS, _featured, _units, compare_figure

    runs = [make_run(str(400 + i), metrics=collected(i % 9, 1), learning_rate=0.001 * (i + 1), submitted_at=T0 + i)
            for i in range(MAX_BARS + 8)]
    cmp = compare_runs(runs)
    featured = _featured(_units(cmp))
    assert len(featured) == MAX_BARS and cmp.best in {u["id"] for u in featured}
    assert all(u["stats"]["test_fn"]["mean"] <= 5 for u in featured)   # the 8 worst (fn 6..8) left grey
    assert compare_figure(cmp, tmp_path / "many.png", {}).stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------- how sure

def test_wilson_interval_matches_known_values_and_stays_in_range():
    from crackops.metrics import wilson_interval

    lo, hi = wilson_interval(0.9985, 8000)        # 12 errors in 8,000: the full dataset's test set
    assert 0.9973 < lo < 0.9976 and 0.9991 < hi < 0.9993
    lo, hi = wilson_interval(0.5, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
    assert wilson_interval(1.0, 160)[1] == 1.0 and wilson_interval(1.0, 160)[0] < 0.98   # not zero-width
    assert wilson_interval(0.0, 10)[0] == 0.0


def test_every_run_shows_its_test_accuracy_interval():
    runs = [make_run("1", metrics=collected(1, 1, n=8000)), make_run("2", metrics=collected(40, 20, n=160)),
            make_run("3", state="FAILED")]
    cmp = compare_runs(runs)
    rows = {r["job_id"]: r for r in cmp.rows}
    lo1, hi1 = rows["1"]["test_accuracy_ci95"]
    lo2, hi2 = rows["2"]["test_accuracy_ci95"]
    assert lo1 <= rows["1"]["test_accuracy"] <= hi1 and hi1 - lo1 < 0.002     # 8,000 images: narrow
    assert hi2 - lo2 > 0.1                                                    # 160 images: wide
    assert rows["3"]["test_accuracy_ci95"] is None
    from crackops.cli.compare import write_csv

    buf = io.StringIO()
    write_csv(cmp, buf)
    (head, r1, *_rest) = list(csv.reader(io.StringIO(buf.getvalue())))
    cell = r1[head.index("test_accuracy_ci95")]
    assert len(cell.split()) == 2 and float(cell.split()[0]) == pytest.approx(lo1, rel=1e-5)
    from rich.console import Console

    from crackops.cli.compare import comparison_columns, fit_table

    table, hidden = fit_table("runs", comparison_columns(cmp), 250)
    con = Console(width=250, record=True)
    con.print(table)
    text = con.export_text()
    assert "95% CI" in text and f"{lo1 * 100:.2f}–{hi1 * 100:.2f}%" in text and not hidden


# ---------------------------------------------------------------------------------------------- across sweeps

def test_two_sweeps_line_up_the_grid_points_they_share():
    from crackops.compare import compare_runs

    def run(jid, sweep, lr, seed, fn):
        r = make_run(jid, metrics=collected(fn, 0, n=1000), learning_rate=lr, seed=seed)
        r.sweep_id = sweep
        return r

    # sweep A and B both ran lr 1e-3 (3 seeds each); B is clearly better there; lr 3e-4 only in A
    runs = ([run(f"a{i}", "SA", 1e-3, i, fn) for i, fn in enumerate((20, 22, 21))]
            + [run(f"b{i}", "SB", 1e-3, i, fn) for i, fn in enumerate((5, 6, 4))]
            + [run(f"c{i}", "SA", 3e-4, i, fn) for i, fn in enumerate((9, 10))]
            + [run(f"d{i}", "SB", 3e-4, i, fn) for i, fn in enumerate((9, 11))])
    cmp = compare_runs(runs)
    assert len(cmp.groups) == 4 and {g.sweep_id for g in cmp.groups} == {"SA", "SB"}   # kept apart by sweep
    pts = {p["label"]: p for p in cmp.across_sweeps}
    assert len(pts) == 2
    clear = next(p for p in pts.values() if p["delta"] > 0.01)
    assert clear["best_sweep"] == "SB" and clear["real"] is True and clear["noise"] < clear["delta"]
    tie = next(p for p in pts.values() if p is not clear)
    assert tie["real"] is False                                   # 9/10 vs 9/11 errors: seed noise
    assert json.loads(json.dumps(cmp.to_dict()))["across_sweeps"][0]["groups"][0]["n"] in (2, 3)
    # runs of one sweep (or none): nothing to line up, groups as before
    assert compare_runs([r for r in runs if r.sweep_id == "SA"]).across_sweeps == []
    assert all(g.sweep_id is None for g in compare_runs([r for r in runs if r.sweep_id == "SA"]).groups)


def test_compare_shows_the_final_attempt_of_a_rerun_chain():
    first = make_run("300", state="TIMEOUT", reason="time limit")
    second = make_run("301", state="TIMEOUT", reason="time limit", submitted_at=T0 + 10)
    second.continues, second.attempt = "300", 2
    final = make_run("302", metrics=collected(3, 2), submitted_at=T0 + 20)
    final.continues, final.attempt = "301", 3
    other = make_run("310", metrics=collected(4, 4), submitted_at=T0 + 30, dropout=0.5)
    runs = [first, second, final, other]
    kept, left_out = final_attempts(runs)
    assert [r.job_id for r in kept] == ["302", "310"] and [r.job_id for r in left_out] == ["300", "301"]
    register(runs)
    res = invoke("compare", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["job_id"] for r in data["runs"]] == ["302", "310"] and data["earlier_attempts"] == ["300", "301"]
    res = invoke("compare", "--all-attempts", "--json")
    assert [r["job_id"] for r in json.loads(res.stdout)["runs"]] == ["300", "301", "302", "310"]
    res = invoke("compare")
    assert res.exit_code == 0 and "300, 301" in res.output and "--all-attempts" in res.output, res.output
