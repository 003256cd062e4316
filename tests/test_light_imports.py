"""The commands people run all the time must start fast: no TensorFlow (nor MLflow, TensorBoard) behind
status, compare, --help."""

import subprocess
import sys

import pytest

CHECK = """
import sys
from crackops.cli import app
try:
    code = app({args!r}, standalone_mode=False)   # typer returns the exit code here
except SystemExit as e:
    code = e.code
print("EXIT:" + str(code or 0))
heavy = [m for m in ("tensorflow", "keras", "torch", "jax", "mlflow", "tensorboard") if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("args,code", [(["--help"], 0), (["status"], 0), (["status", "--json"], 0), (["compare"], 0),
                                       (["profiles"], 0), (["submit", "--help"], 0), (["collect", "nope"], 3),
                                       (["export", "mlflow", "--help"], 0), (["tensorboard", "--help"], 0),
                                       (["tensorboard", "--print"], 3)])
def test_no_tensorflow(args, code):
    p = subprocess.run([sys.executable, "-c", CHECK.format(args=args)], capture_output=True, text=True)
    assert "HEAVY:" in p.stdout, p.stderr
    assert f"EXIT:{code}" in p.stdout, (p.stdout, p.stderr)
    assert p.stdout.strip().splitlines()[-1] == "HEAVY:", p.stdout


def test_compare_and_report_stay_tensorflow_free(tmp_path):
    """compare (with its plot) and report on a finished run, in a fresh process: no TensorFlow.
    The run's files are crafted (``helpers.make_artifacts``): no training to wait for."""
    from helpers import collected, make_artifacts, make_run, register

    out = make_artifacts(tmp_path / "out" / "fake1", job_id="fake1")
    register([make_run("fake1", metrics=collected(5, 5), out_dir=out, name="crafted"),
              make_run("fake2", metrics=collected(9, 9), learning_rate=0.01, submitted_at=1_764_000_001.0)])
    code = (
        "import sys\n"
        "from crackops.cli import app\n"
        "for args in (['compare', '--plot', {plot!r}], ['compare', '--json'], ['report', 'fake1', '-o', {html!r}]):\n"
        "    try:\n"
        "        code = app(args, standalone_mode=False)\n"   # typer returns the exit code here
        "    except SystemExit as e:\n"
        "        code = e.code\n"
        "    assert not code, (args, code)\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    ).format(plot=str(tmp_path / "p.png"), html=str(tmp_path / "r.html"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "HEAVY:", p.stdout
    assert (tmp_path / "p.png").stat().st_size > 10_000 and "fake1" in (tmp_path / "r.html").read_text()
