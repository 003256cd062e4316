"""The commands people run all the time must start fast: no TensorFlow behind status, compare, --help."""

import subprocess
import sys

import pytest

CHECK = """
import sys
from crackops.cli import app
try:
    app({args!r}, standalone_mode=False)
except SystemExit:
    pass
heavy = [m for m in ("tensorflow", "keras", "torch", "jax") if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--help"], ["status"], ["status", "--json"], ["compare"], ["profiles"],
                                  ["submit", "--help"], ["collect", "nope"]])
def test_no_tensorflow(args):
    p = subprocess.run([sys.executable, "-c", CHECK.format(args=args)], capture_output=True, text=True)
    assert "HEAVY:" in p.stdout, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "HEAVY:", p.stdout
