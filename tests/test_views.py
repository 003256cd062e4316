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
    assert "metrics (crack" not in res.stdout                  # its numbers are no result
    assert "is INCOMPLETE: artifacts corrupt: predictions_test.csv" in " ".join(res.output.split())
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


# ---------------------------------------------------------------------------------------------- point 8

BANNER = """\
2026-12-03 09:01:02.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
2026-12-03 09:01:02.234567: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1733216462.123456   12345 cuda_executor.cc:1015] successful NUMA node read from SysFS had negative value (-1)
/venv/lib/python3.11/site-packages/keras/src/trainers/data_adapters/py_dataset_adapter.py:121: UserWarning: Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor.
  self._warn_if_super_not_called()
"""
FAILURE = """\
Traceback (most recent call last):
  File "/app/crackops/job.py", line 177, in run
    result = body(config, out_dir)
  File "/app/crackops/ml/train.py", line 330, in train
    images, labels = _decode(split, config.image_size)
ValueError: image_size 7 is too small for the model
"""


def failed_run(crackops_dirs, job_id="f1", log=BANNER + FAILURE + BANNER, state="FAILED",
               reason="ValueError: image_size 7 is too small for the model"):
    err = crackops_dirs["logs"] / f"cnn_crack_{job_id}.err"
    err.parent.mkdir(parents=True, exist_ok=True)
    err.write_text(log)
    run = make_run(job_id, state=state, reason=reason, out_dir=crackops_dirs["out"] / job_id)
    run.log_err = str(err)
    register([run])
    return run


def test_failure_tail_keeps_the_traceback_and_drops_the_banner(tmp_path):
    from crackops.artifacts import failure_tail

    p = tmp_path / "x.err"
    p.write_text(BANNER + FAILURE + BANNER)
    t = failure_tail(p, 15)
    assert t.splitlines() == FAILURE.splitlines()
    p.write_text(BANNER + "slurmstepd: error: *** JOB 77 ON n1 CANCELLED AT 2026-12-03T09:10:00 DUE TO TIME LIMIT ***\n")
    assert failure_tail(p).splitlines() == ["slurmstepd: error: *** JOB 77 ON n1 CANCELLED AT "
                                            "2026-12-03T09:10:00 DUE TO TIME LIMIT ***"]
    p.write_text(BANNER + "slurmstepd: error: Detected 1 oom_kill event in StepId=78.batch.\n")
    assert "oom_kill" in failure_tail(p)
    p.write_text("just some words\nand more\n")                   # nothing explains: the raw tail
    assert failure_tail(p) == "just some words\nand more"


def test_status_collect_report_and_wait_show_the_failure_not_the_banner(crackops_dirs, tmp_path):
    failed_run(crackops_dirs)
    for args in (["status", "f1"], ["collect", "f1"], ["wait", "f1", "--poll", "0.1"]):
        res = invoke(*args)
        out = res.output
        assert "ValueError: image_size 7 is too small" in out, (args, out)
        assert "oneDNN" not in out and "cpu_feature_guard" not in out and "UserWarning" not in out, (args, out)
        assert out.count("Traceback (most recent call last)") == 1, (args, out)
    res = invoke("collect", "f1")
    assert res.exit_code == 4 and res.output.count("image_size 7 is too small") == 1, res.output  # said once
    page = tmp_path / "r.html"
    assert invoke("report", "f1", "-o", page).exit_code == 0
    html = page.read_text()
    assert "ValueError: image_size 7 is too small" in html and "oneDNN" not in html


def test_a_completed_resumed_run_shows_no_err_tail(crackops_dirs, tmp_path):
    from crackops.report.html import build_report

    run = failed_run(crackops_dirs, "c1", log=BANNER, state="COMPLETED", reason="resumed after a requeue")
    run.metrics = collected(3, 2)
    html = build_report([run])
    assert "last lines of" not in html and "oneDNN" not in html


# ---------------------------------------------------------------------------------------------- point 10

@pytest.mark.procs
def test_wait_into_a_file_prints_a_line_per_state_and_epoch_as_they_happen(tmp_path, monkeypatch):
    """``crackops wait JOB > log 2>&1`` (not a terminal): lines appear while the run goes on."""
    import os
    import subprocess
    from pathlib import Path

    # the local runner imports the job's module by name: the tests folder on its path
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    import sys
    import time as _time

    from crackops import api
    from crackops.config import Resources, TrainConfig

    run = api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="1G", time="5"),
                     fn=__import__("jobs").epochs_slowly, check_data=False)
    log = tmp_path / "wait.log"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "crackops", "wait", run.job_id, "--poll", "0.2"],
                             stdout=f, stderr=subprocess.STDOUT)
        seen_early = ""
        deadline = _time.monotonic() + 60
        while p.poll() is None and _time.monotonic() < deadline:
            if not seen_early and " epoch " in log.read_text():
                seen_early = log.read_text()
            _time.sleep(0.1)
        p.wait(timeout=60)
    assert p.returncode == 0, log.read_text()
    assert " epoch " in seen_early and "COMPLETED" not in seen_early      # said while it ran
    lines = log.read_text().splitlines()
    assert sum(f"{run.job_id} RUNNING epoch " in ln for ln in lines) >= 2, lines   # one line per epoch seen
    assert any(ln.endswith(f"{run.job_id} COMPLETED") for ln in lines), lines
    assert "\r" not in log.read_text() and "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━" not in lines[0]  # no bar


# ---------------------------------------------------------------------------------------------- point 4

def acc_run(job_id, acc, n=60, **config):
    m = {"test_accuracy": acc, "test_f1": acc, "test_fn": round((1 - acc) * n / 2), "test_n": n}
    return make_run(job_id, metrics=m, submitted_at=T0 + int(job_id[1:]), **config)


def test_a_lead_of_one_and_a_half_images_with_two_seeds_is_not_called_real():
    """The issue's case: 2.5 pp (1.5 images of 60) with 2 seeds, one pair agreeing exactly."""
    from crackops.compare import compare_runs

    runs = [acc_run("r1", 0.9, learning_rate=1e-3, seed=1), acc_run("r2", 0.9, learning_rate=1e-3, seed=2),
            acc_run("r3", 53 / 60, learning_rate=3e-4, seed=1), acc_run("r4", 52 / 60, learning_rate=3e-4, seed=2)]
    register_sweep("lr2", runs, {"learning_rate": [1e-3, 3e-4]})
    v = compare_runs(runs).verdict
    assert v["delta"] == pytest.approx(0.025) and v["real"] is False and "within the noise" in v["text"]
    assert v["noise"] > 0.05                                  # 60 test images: at least ±5 pp
    data = json.loads(invoke("compare", "--sweep", "lr2", "--json").stdout)
    assert data["verdict"]["real"] is False and data["effects"][0]["matters"] is False


def test_single_runs_are_not_enough_runs_to_know():
    from crackops.compare import compare_runs

    far = compare_runs([acc_run("r1", 0.95, n=1000, learning_rate=1e-3), acc_run("r2", 0.80, n=1000, learning_rate=3e-4)])
    assert far.verdict["real"] is None and "not enough runs to know" in far.verdict["text"]
    near = compare_runs([acc_run("r1", 0.90, learning_rate=1e-3), acc_run("r2", 0.89, learning_rate=3e-4)])
    assert near.verdict["real"] is False and "not a clear winner" in near.verdict["text"]
    one_side = compare_runs([acc_run("r1", 0.95, n=1000, learning_rate=1e-3, seed=1),
                             acc_run("r2", 0.96, n=1000, learning_rate=1e-3, seed=2),
                             acc_run("r3", 0.70, n=1000, learning_rate=3e-4, seed=1)])
    assert one_side.verdict["kind"] == "group" and one_side.verdict["real"] is None
    assert "not enough runs to know" in one_side.verdict["text"] and "g2" in one_side.verdict["text"]


def test_many_seeds_and_a_big_test_set_make_a_clear_winner():
    from crackops.compare import compare_runs

    runs = [acc_run(f"r{i}", 0.95 + 0.002 * i, n=2000, learning_rate=1e-3, seed=i) for i in range(1, 5)]
    runs += [acc_run(f"r{i}", 0.90 + 0.002 * i, n=2000, learning_rate=3e-4, seed=i) for i in range(5, 9)]
    v = compare_runs(runs).verdict
    assert v["real"] is True and "beyond the noise" in v["text"]


def test_the_sweep_verdict_never_contradicts_which_settings_matter():
    """Best and runner-up points differ in both keys; neither key matters over the whole sweep (an
    interaction): the verdict must not call the lead real."""
    means = {(1e-3, 16): 0.95, (3e-4, 32): 0.93, (1e-3, 32): 0.90, (3e-4, 16): 0.90}
    runs, i = [], 0
    for (lr, bs), m in means.items():
        for k, off in enumerate((-0.01, 0.0, 0.01)):
            i += 1
            runs.append(acc_run(f"r{i}", m + off, n=10000, learning_rate=lr, batch_size=bs, seed=k))
    register_sweep("inter", runs, {"learning_rate": [1e-3, 3e-4], "batch_size": [16, 32]}, seeds=(0, 1, 2))
    from crackops.compare import compare_runs

    assert compare_runs(runs).verdict["real"] is True            # the two points alone: beyond their noise
    data = json.loads(invoke("compare", "--sweep", "inter", "--json").stdout)
    assert [e["matters"] for e in data["effects"]] == [False, False]
    assert data["verdict"]["real"] is False and "does not clearly matter" in data["verdict"]["text"]
    res = invoke("compare", "--sweep", "inter")
    assert "not a clear winner" in " ".join(res.stdout.split())


# ---------------------------------------------------------------------------------------------- point 7

BOOKKEEPING = [dict(backup_minutes=10, resume_from=None, data_dir="/data/concrete", max_images=None, max_attempts=3),
               dict(backup_minutes=0, resume_from="/x/out/L1", data_dir="/data/sample", max_images=150, max_attempts=1),
               dict(backup_minutes=5, resume_from=None, data_dir="/data/concrete", max_images=None, max_attempts=3)]


def many_key_runs():
    """Runs that differ in six settings and in every bookkeeping key, two seeds each."""
    settings = [dict(learning_rate=1e-3, batch_size=32, image_size=64, epochs=5, dropout=0.3, augment="off"),
                dict(learning_rate=3e-4, batch_size=64, image_size=96, epochs=8, dropout=0.2, augment="geometric"),
                dict(learning_rate=1e-3, batch_size=64, image_size=150, epochs=10, dropout=0.4, augment="full")]
    runs = []
    for i, (s, b) in enumerate(zip(settings, BOOKKEEPING)):
        for seed in (1, 2):
            runs.append(make_run(f"L261203-0900{i}{seed}-ab{i}c", metrics=collected(3 + i + seed, 2 + i, n=160),
                                 name=f"a-rather-long-run-name-{i}-{seed}", submitted_at=T0 + 10 * i + seed,
                                 seed=seed, **s, **{**b, "backup_minutes": b["backup_minutes"] + seed}))
    return runs


@pytest.mark.parametrize("width", [120, 160, 220])
def test_compare_tables_fit_and_keep_test_accuracy_whole(width):
    from rich.console import Console

    from crackops.cli.compare import comparison_columns, fit_table, group_columns
    from crackops.compare import compare_runs

    cmp = compare_runs(many_key_runs())
    for title, cols in (("runs", comparison_columns(cmp)), ("groups", group_columns(cmp))):
        table, hidden = fit_table(title, cols, width)
        con = Console(width=width, record=True)
        con.print(table)
        text = con.export_text()
        assert max(len(ln) for ln in text.splitlines()) <= width, text
        assert "…" not in text, text
        for key in ("backup_minutes", "resume_from", "data_dir", "max_images", "max_attempts"):
            assert key not in text and key not in hidden, (key, text)
    for r in cmp.rows:   # every run's test accuracy, whole
        assert f"{r['test_accuracy'] * 100:.1f}%" in comparison_text(cmp, 120)


def comparison_text(cmp, width):
    from rich.console import Console

    from crackops.cli.compare import comparison_columns, fit_table

    con = Console(width=width, record=True)
    con.print(fit_table("runs", comparison_columns(cmp), width)[0])
    return con.export_text()


def test_bookkeeping_keys_are_no_difference_but_stay_in_json_and_csv():
    from crackops.compare import compare_runs

    cmp = compare_runs(many_key_runs())
    assert len(cmp.groups) == 3 and all(g.n == 2 for g in cmp.groups)     # backup_minutes split no group
    assert cmp.verdict["kind"] == "group"
    for key in ("backup_minutes", "resume_from", "max_attempts", "data_dir", "max_images"):
        assert key in cmp.differing and key not in cmp.shown_differing
        assert key not in cmp.verdict["text"]
    assert "resume_from=None" not in cmp.verdict["text"] and "learning_rate=" in cmp.verdict["text"]
    register(many_key_runs())
    data = json.loads(invoke("compare", "--json").stdout)
    assert "backup_minutes" in data["differing_config"] and "backup_minutes" not in data["shown_config"]
    head = invoke("compare", "--csv").stdout.splitlines()[0].split(",")
    assert "config.backup_minutes" in head and "config.data_dir" in head
    res = invoke("compare")
    assert "also differ, not shown" in res.output and "backup_minutes" in res.output


def test_data_source_keys_are_shown_when_they_are_the_only_difference():
    from crackops.compare import compare_runs

    runs = [make_run("d1", metrics=collected(3, 2), data_dir="/data/a"),
            make_run("d2", metrics=collected(4, 2), data_dir="/data/b", submitted_at=T0 + 1)]
    cmp = compare_runs(runs)
    assert cmp.shown_differing == ["data_dir"] and "data_dir" in comparison_text(cmp, 200)


def test_plot_legend_names_the_key_that_differs():
    from crackops.compare import compare_runs
    from crackops.report.plots import _units

    runs = [make_run(f"L261203-09000{i}-abcd", metrics=collected(3 + i, 2), name="a-very-long-descriptive-run-name",
                     learning_rate=lr, submitted_at=T0 + i, **BOOKKEEPING[i])
            for i, lr in enumerate((1e-3, 3e-4))]
    units = _units(compare_runs(runs))
    assert [u["label"].split(": ", 1)[1].split(" (")[0] for u in units] == ["learning_rate=0.001", "learning_rate=0.0003"]
    seeded = [r for r in many_key_runs() if r.config["learning_rate"] == 1e-3]
    for r in seeded:   # two settings differ, and the bookkeeping: the legend names both settings
        r.config.update(batch_size=32, image_size=64, epochs=5, dropout=0.3)
    grouped = _units(compare_runs(seeded))
    assert [u["label"] for u in grouped] == ["g1: augment=off", "g2: augment=full"], grouped
    wide = _units(compare_runs(many_key_runs()))   # six settings differ: on two lines, learning_rate among them
    assert all("learning_rate=" in u["label"] and "backup" not in u["label"] for u in wide), wide


# ---------------------------------------------------------------------------------------------- point 12

def test_notes_txt_is_skipped_for_one_reason_however_it_is_passed(tmp_path):
    from crackops.data.scan import list_class_files
    from crackops.ml.predict import check_images, list_images

    (tmp_path / "a").mkdir()
    notes = tmp_path / "a" / "notes.txt"
    notes.write_text("taken on site 3\n")
    in_folder = dict(list_images([tmp_path / "a"]))[str(notes)]
    named = dict(list_images([notes]))[str(notes)]
    assert named is None                                   # named explicitly: its content is tried ...
    named = check_images([str(notes)])[str(notes)]         # ... and it is skipped for the same reason
    assert in_folder == named == "not an image file (extension '.txt'; accepted: jpg, jpeg, png, bmp, gif)"
    _, rejected = list_class_files(tmp_path / "a", "positive")   # training's scan says the same
    assert [r.reason for r in rejected] == [named]


def test_a_local_submit_says_its_resources_are_not_enforced(tmp_path):
    from crackops.backends import get_backend

    assert get_backend("local").enforces_resources is False and get_backend("slurm").enforces_resources is True
    from helpers import make_crafted_dataset

    data = tmp_path / "d"
    make_crafted_dataset(data, n=12)
    (data / "positive" / "conflict.jpg").unlink()   # a label conflict: submit refuses it (issue 25)
    res = invoke("submit", "--data", data, "--epochs", "1", "--name", "res")
    assert res.exit_code == 0, res.output
    job = res.stdout.strip()
    assert "(local, 4 CPU / 16G / 4:00:00, not enforced locally)" in res.output
    invoke("cancel", job)
    res = invoke("status", job, "--no-refresh")
    assert "4:00:00, not enforced locally, profile default" in " ".join(res.output.split())


def test_a_probability_rounded_onto_the_threshold_is_not_a_disagreement(tmp_path):
    """0.4999996 is a missed crack for the job (p < 0.5) and is written as 0.500000."""
    from crackops import artifacts
    from helpers import make_artifacts

    out = make_artifacts(tmp_path / "p")
    p = out / "predictions_test.csv"
    p.write_text(p.read_text().replace("/x/p0.jpg,1,0.100000", "/x/p0.jpg,1,0.500000"))
    assert artifacts.verify(out).ok
