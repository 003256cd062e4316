"""report: the self-contained HTML run report, over crafted runs and the shared real training, and
rendered in headless Chromium."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from crackops.report.html import build_report, misclassified
from helpers import collected, invoke, make_run, register

CHROMIUM = Path("/usr/bin/chromium")


def write_predictions(out_dir: Path, rows: list[tuple[str, int, float]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "predictions_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "prob_crack"])
        for r in rows:
            w.writerow([r[0], r[1], f"{r[2]:.6f}"])


def make_images(root: Path, names: list[str]) -> list[str]:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(names):
        p = root / n
        Image.new("RGB", (64, 48), (40 * i % 255, 120, 160)).save(p)
        paths.append(str(p))
    return paths


def self_contained(html: str) -> bool:
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    return all(r.startswith(("data:", "#")) for r in refs)


# ------------------------------------------------------------------------------------------- crafted

def test_misclassified_false_negatives_first(tmp_path):
    imgs = make_images(tmp_path / "img", [f"{i}.png" for i in range(7)])
    write_predictions(tmp_path / "run", [
        (imgs[0], 1, 0.95),   # right
        (imgs[1], 1, 0.40),   # missed crack
        (imgs[2], 0, 0.70),   # false alarm
        (imgs[3], 1, 0.05),   # missed crack, more confidently
        (imgs[4], 0, 0.10),   # right
        (imgs[5], 0, 0.99),   # false alarm, more confidently
        (imgs[6], 1, 0.50),   # on the threshold: a crack
    ])
    wrong, n = misclassified(tmp_path / "run")
    assert n == 7
    assert [(Path(w.path).name, w.kind) for w in wrong] == [
        ("3.png", "missed crack"), ("1.png", "missed crack"), ("5.png", "false alarm"), ("2.png", "false alarm")]
    assert misclassified(tmp_path / "nothing") == ([], 0)


def test_report_crafted_runs_edge_cases(tmp_path):
    imgs = make_images(tmp_path / "img", ["a.png", "b.png"])
    ok_dir = tmp_path / "out" / "300"
    write_predictions(ok_dir, [(imgs[0], 1, 0.2), (imgs[1], 0, 0.9), (str(tmp_path / "gone.png"), 1, 0.1)])
    err = tmp_path / "cnn_crack_301.err"
    err.write_text("Traceback (most recent call last):\nMemoryError: cannot allocate <16 GB>\n")
    ok = make_run("300", metrics={**collected(2, 1), "test_n": 3}, out_dir=str(ok_dir), name="crafted-ok", backend="slurm",
                  accounting={"elapsed_s": 600, "timelimit_s": 14400, "alloc_cpus": 8, "req_mem_mb": 16384,
                              "max_rss_mb": 2150, "total_cpu_s": 2400, "cpu_eff": 0.5, "mem_eff": 0.131,
                              "time_eff": 0.042, "hints": ["asked 16 GB, peak 2.1 GB: --mem 4G would do"]})
    failed = make_run("301", state="FAILED", reason="exit code 1", out_dir=str(tmp_path / "out" / "301"),
                      learning_rate=0.01, submitted_at=ok.submitted_at + 1)
    failed.log_err = str(err)
    html = build_report([ok, failed])
    assert self_contained(html)
    assert "comparison" in html and 'id="run-300"' in html and 'id="run-301"' in html
    assert "MemoryError: cannot allocate &lt;16 GB&gt;" in html          # the failure's log tail, escaped
    assert "asked 16 GB, peak 2.1 GB: --mem 4G would do" in html and "50%" in html
    assert "image not found" in html                                      # a moved image: a tile, no crash
    assert html.count("data:image/jpeg;base64,") == 2
    assert html.index("missed crack</div>") < html.index("false alarm</div>")
    assert "no Slurm accounting for this run (it ran on local, which does not measure it)" in html
    one = build_report([make_run("302")])                              # completed, never collected
    assert "crackops collect 302" in one and self_contained(one)
    live = build_report([make_run("303", state="RUNNING")])
    assert "still RUNNING" in live and "last lines of" not in live


def test_report_cli_errors(tmp_path):
    res = invoke("report", "999")
    assert res.exit_code == 3 and "unknown job id" in res.output and "Traceback" not in res.output
    register([make_run("310", metrics=collected(1, 1))])
    res = invoke("report", "310", "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert res.exit_code == 2 and "does not exist" in res.output
    res = invoke("report", "310", "--max-errors", "-1")
    assert res.exit_code == 2


# ------------------------------------------------------------------------------------------- real run

def test_report_real_run(registered_trained_run, tmp_path, monkeypatch):
    from crackops.artifacts import read_manifest

    monkeypatch.chdir(tmp_path)
    res = invoke("report", "trained1")
    assert res.exit_code == 0, res.output
    path = Path(res.stdout.strip())
    assert path == tmp_path / "report-trained1.html" and path.is_file()
    html = path.read_text()
    assert self_contained(html)
    test = read_manifest(registered_trained_run.out_dir)["metrics"]["test"]
    assert "run trained1" in html and f"{test['accuracy'] * 100:.2f}%" in html
    wrong, n = misclassified(registered_trained_run.out_dir, test["threshold"])
    assert n == test["n"] and len(wrong) == test["errors"]
    assert html.count('class="tile fn"') == min(test["fn"], 48)
    assert html.count("data:image/jpeg;base64,") == min(test["errors"], 48)
    if test["fn"] and test["fp"]:
        assert html.index('class="tile fn"') < html.index('class="tile fp"')
    assert html.count("data:image/png;base64,") >= 1                     # the training curves

    # with a second run: the comparison comes first, the default name says both
    register([make_run("320", metrics=collected(9, 9, fingerprint="other"), learning_rate=0.01,
                       submitted_at=registered_trained_run.submitted_at + 1)])
    res = invoke("report", "trained1", "320")
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report-trained1_320.html").read_text()
    assert html.index('id="compare"') < html.index('id="run-trained1"') < html.index('id="run-320"')
    assert "different test splits" in html


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.browser
def test_report_renders_in_chromium(registered_trained_run, tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("CRACKOPS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from PIL import Image, ImageStat

    from crackops.artifacts import read_manifest

    report = tmp_path / "r.html"
    res = invoke("report", "trained1", "-o", str(report))
    assert res.exit_code == 0, res.output
    test = read_manifest(registered_trained_run.out_dir)["metrics"]["test"]

    dom = _chromium(["--dump-dom", report.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>crackops report: run trained1</title>" in dom.stdout
    assert "run trained1" in dom.stdout and f"{test['accuracy'] * 100:.2f}%" in dom.stdout
    assert f">{test['fn']}<small>missed crack</small>" in dom.stdout.replace(",", "")

    shot = tmp_path / "r.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", report.as_uri()], tmp_path)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        assert max(ImageStat.Stat(im.convert("L")).stddev) > 20            # not a blank page
    keep = os.environ.get("CRACKOPS_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
