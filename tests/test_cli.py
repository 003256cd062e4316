"""The CLI as users meet it: help, JSON output, and bad input answered in one line, never a traceback."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from crackops.registry import Registry, Run
from helpers import assert_clean_error, invoke


def make_data(root, n=10):
    from PIL import Image

    for k, cls in enumerate(("positive", "negative")):
        (root / cls).mkdir(parents=True)
        for i in range(n):   # distinct images: byte-identical ones across classes would be label conflicts
            Image.new("RGB", (32, 32), (i * 20, 100, 100 + 50 * k)).save(root / cls / f"{i}.jpg")
    return root


def test_help_lists_commands_with_examples():
    res = invoke("--help")
    assert res.exit_code == 0
    for cmd in ("submit", "status", "collect", "compare", "cancel", "logs", "wait", "demo", "data"):
        assert cmd in res.output
    res = invoke("submit", "--help")
    assert res.exit_code == 0 and "Examples" in res.output and "--dry-run" in res.output


def test_status_empty_and_json():
    res = invoke("status")
    assert res.exit_code == 0 and "no runs yet" in res.output
    res = invoke("status", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout) == []


def test_json_is_one_line_when_piped_and_indented_on_a_terminal(monkeypatch):
    """Scripts read one line (and 1,000 runs encode fast); a person at a terminal reads it indented."""
    import io

    from crackops import output

    data = {"runs": [{"job_id": "1", "state": "PENDING"}]}
    for tty, lines in ((False, 1), (True, 8)):
        buf = io.StringIO()
        buf.isatty = lambda tty=tty: tty
        monkeypatch.setattr(sys, "stdout", buf)
        output.print_json(data)
        assert buf.getvalue().count("\n") == lines
        assert json.loads(buf.getvalue()) == data


def test_status_says_which_command_reads_completed_runs_results():
    now = time.time()
    Registry().add(Run(job_id="L1", backend="local", state="COMPLETED", config={}, resources={},
                       submitted_at=now, out_dir="/nonexistent/L1"))
    res = invoke("status")
    assert res.exit_code == 0
    assert "1 completed run not read yet" in res.stderr and "crackops compare" in res.stderr
    Registry().add(Run(job_id="L2", backend="local", state="COMPLETED", config={}, resources={},
                       submitted_at=now + 1, out_dir="/nonexistent/L2", metrics={"test_accuracy": 0.9}))
    res = invoke("status", "L2", "L1")
    assert "1 completed run not read yet" in res.stderr


def test_status_json_lists_job_id_and_state():
    Registry().add(Run(job_id="L1", backend="local", state="COMPLETED", config={}, resources={},
                       submitted_at=time.time(), out_dir="/nonexistent/L1",
                       metrics={"test_accuracy": 0.975}))
    res = invoke("status", "--json")
    runs = json.loads(res.stdout)
    assert [(r["job_id"], r["state"]) for r in runs] == [("L1", "COMPLETED")]
    res = invoke("status")
    assert "L1" in res.output and "97.50%" in res.output


@pytest.mark.parametrize("args,code,fragments", [
    (["submit", "--data", "/no/such/dir"], 2, ["does not exist", "crackops data synth"]),
    (["submit", "--data", "/no/such/dir", "--epochs", "0"], 2, ["--epochs 0"]),
    (["submit", "--data", ".", "--learning-rate", "5"], 2, ["--learning-rate"]),
    (["submit", "--data", ".", "--cpus", "-1"], 2, ["--cpus -1"]),
    (["submit", "--data", ".", "--mem", "lots"], 2, ["cannot read memory"]),
    (["submit", "--data", ".", "--time", "forever"], 2, ["cannot read time"]),
    (["submit", "--data", ".", "--profile", "nope"], 3, ["unknown profile"]),
    (["submit", "--data", ".", "--backend", "cloud"], 2, ["unknown backend"]),
    (["submit", "--data", ".", "--sbatch", "novalue"], 2, ["KEY=VALUE"]),
    (["collect", "nope"], 3, ["unknown job id 'nope'"]),
    (["collect", "../../etc"], 2, ["invalid job id"]),
    (["status", "nope"], 3, ["unknown job id"]),
    (["logs", "nope"], 3, ["unknown job id"]),
    (["cancel", "nope"], 3, ["unknown job id"]),
])
def test_bad_input_is_one_clear_line(args, code, fragments):
    assert_clean_error(invoke(*args), code, *fragments)


def test_data_dir_problems(tmp_path):
    d = make_data(tmp_path / "d")
    shutil.rmtree(d / "negative")
    assert_clean_error(invoke("submit", "--data", str(d)), 2, "no negative/ folder")
    (d / "negative").mkdir()
    assert_clean_error(invoke("submit", "--data", str(d)), 2, "holds no images")
    f = tmp_path / "file"
    f.write_text("x")
    assert_clean_error(invoke("submit", "--data", str(f)), 2, "is not a folder")
    assert Registry().list() == []  # nothing recorded for refused submissions


def test_bad_input_leaves_recorded_runs_alone():
    Registry().add(Run(job_id="keep1", backend="local", state="COMPLETED", config={}, resources={},
                       submitted_at=time.time(), out_dir="/x/keep1"))
    invoke("submit", "--data", "/no/such/dir")
    invoke("collect", "../x")
    assert [r.job_id for r in Registry().list()] == ["keep1"]


def test_dry_run_submits_nothing(tmp_path):
    d = make_data(tmp_path / "d")
    res = invoke("submit", "--data", str(d), "--dry-run")
    assert res.exit_code == 0 and "crackops.backends.local_runner" in res.stdout
    assert Registry().list() == []


def test_collect_a_running_run_says_wait():
    Registry().add(Run(job_id="L2", backend="local", state="RUNNING", config={}, resources={},
                       submitted_at=time.time(), out_dir="/x/L2"))
    # no local state file: refresh reports it failed, so it is collectable and shows why
    res = invoke("collect", "L2")
    assert res.exit_code == 4 and "did not complete" in res.output


def test_profiles_json():
    res = invoke("profiles", "--json")
    prof = {p["name"]: p for p in json.loads(res.stdout)}
    assert prof["default"]["cpus"] == 4 and prof["default"]["mem"] == "16G" and prof["default"]["time"] == "4:00:00"


def test_errors_go_to_stderr_data_to_stdout(tmp_path):
    env = {**os.environ}
    p = subprocess.run([sys.executable, "-m", "crackops", "collect", "nope"], capture_output=True, text=True, env=env)
    assert p.returncode == 3 and p.stdout == "" and "unknown job id" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "crackops", "status", "--json"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and json.loads(p.stdout) == []
