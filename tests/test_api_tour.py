"""examples/api_tour.py runs as a user would run it: a fresh process with its own state, out and
logs dirs, real (tiny) trainings, every step of the tour printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.tf
def test_api_tour(tmp_path):
    env = {**os.environ, "CRACKOPS_HOME": str(tmp_path / "home"), "CRACKOPS_OUT": str(tmp_path / "out"),
           "CRACKOPS_LOGS": str(tmp_path / "logs"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    report = tmp_path / "tour.html"
    p = subprocess.run([sys.executable, str(REPO / "examples" / "api_tour.py"), "--report", str(report)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    out = p.stdout
    for step in ("submitted ", "artifacts ok=True", "compare: best", "report: ", "predict: 6 of 6 photos"):
        assert step in out, out
    assert "groups [('g1', 2)]" in out and "over seeds [1, 2]" in out, out   # one config, two seeds
    import re
    accs = [float(a) for a in re.findall(r"test accuracy ([0-9.]+)%, ", out)]
    assert len(accs) == 2 and min(accs) >= 80.0, out                         # the models learned
    assert report.is_file() and "comparison" in report.read_text()
    assert len(list((tmp_path / "out").iterdir())) == 2
