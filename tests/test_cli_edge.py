"""The CLI edge: ``crackops --version``, and usage mistakes (unknown options, missing values, bad
types, unknown commands) told in one ``error:`` line and a ``hint:``, like every other mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crackops import __version__
from helpers import invoke


def test_version_prints_one_line():
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout == f"crackops {__version__}\n"


@pytest.mark.parametrize("args,fragment,path", [
    (["status", "--bogus"], "no such option: --bogus", "status"),
    (["compare", "--sort"], "option '--sort' requires an argument", "compare"),
    (["compare", "--stat", "x"], "no such option: --stat", "compare"),
    (["submit", "--epochs", "many"], "invalid value for '--epochs'", "submit"),
    (["nosuch"], "no such command 'nosuch'", ""),
    (["data", "synth", "--bogus"], "no such option: --bogus", "data synth"),
    (["collect"], "missing argument", "collect"),
])
def test_usage_mistakes_are_one_line_with_a_hint(args, fragment, path):
    res = invoke(*args)
    out = res.output
    assert res.exit_code == 2, out
    assert "╭" not in out and "Usage:" not in out and "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].startswith("error: ") and fragment in lines[0], out
    assert lines[1].startswith("hint: ") and f"{path} --help".strip() in lines[1], out
    assert len(lines) == 2, out


def test_usage_mistake_in_a_real_process_goes_to_stderr():
    p = subprocess.run([sys.executable, "-m", "crackops", "status", "--bogus"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines()[0] == "error: no such option: --bogus"
