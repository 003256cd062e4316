"""The commands people run all the time must start fast: no TensorFlow behind status, compare, --help."""

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
heavy = [m for m in ("tensorflow", "keras", "torch", "jax") if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("args,code", [(["--help"], 0), (["status"], 0), (["status", "--json"], 0), (["compare"], 0),
                                       (["profiles"], 0), (["submit", "--help"], 0), (["collect", "nope"], 3)])
def test_no_tensorflow(args, code):
    p = subprocess.run([sys.executable, "-c", CHECK.format(args=args)], capture_output=True, text=True)
    assert "HEAVY:" in p.stdout, p.stderr
    assert f"EXIT:{code}" in p.stdout, (p.stdout, p.stderr)
    assert p.stdout.strip().splitlines()[-1] == "HEAVY:", p.stdout
