"""Disk faults at submit: a read-only out folder, an unwritable logs folder, a full disk. Each is
refused before anything starts, with one line and exit code 2, and the registry records nothing.

Root writes through ``chmod``, so the faults are real filesystems: a read-only tmpfs and a 1 MB
tmpfs (``mount`` needs CAP_SYS_ADMIN; without it these tests skip and say why)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest

import jobs
from crackops import api
from crackops.backends.local import LocalBackend
from crackops.backends.slurm import SlurmBackend
from crackops.config import Resources, TrainConfig
from crackops.errors import EXIT_USAGE, UsageError
from crackops.paths import MIN_FREE_MB, check_writable_dir
from crackops.registry import Registry
from helpers import assert_clean_error, invoke

SMALL = Resources(cpus=1, mem="1G", time="5")


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """``mount -t tmpfs -o OPTIONS`` on ``path`` for the with-block; a skip where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {p.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(d: Path) -> None:
    """Write into ``d`` until its filesystem says no space is left."""
    with open(d / "filler", "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


@pytest.fixture
def started(monkeypatch):
    """Counts what reached a backend: any submit here is a job that would fail hours later."""
    calls = []

    def record(self, sub):
        calls.append(sub)
        raise AssertionError("a backend was asked to submit")

    monkeypatch.setattr(LocalBackend, "submit", record)
    monkeypatch.setattr(SlurmBackend, "submit", record)
    monkeypatch.setattr(SlurmBackend, "submit_array", lambda self, subs, parallelism=None, folder_id=None: record(self, subs))
    return calls


@pytest.fixture
def data(tmp_path):
    from crackops.data.synth import synthesize

    d = tmp_path / "data"
    synthesize(d, n_per_class=12, size=32, seed=1, workers=1)
    return d


def _one_line(res, *fragments):
    assert_clean_error(res, EXIT_USAGE, *fragments)
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert lines[0].startswith("error:") and all(l.startswith(("error:", "hint:")) for l in lines), res.output
    assert "nothing was submitted" in res.output


# ------------------------------------------------------------------ read-only out, read-only logs

@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_read_only_out_folder_is_refused_at_submit(tmp_path, data, started, backend):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        res = invoke("submit", "--data", data, "--backend", backend, "--out", ro / "out", "--logs", tmp_path / "logs")
        _one_line(res, "out folder", str(ro / "out"), "read-only file system", "--out")
    assert started == [] and Registry().list() == []


@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_read_only_logs_folder_is_refused_at_submit(tmp_path, data, started, backend):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        res = invoke("submit", "--data", data, "--backend", backend, "--out", tmp_path / "out", "--logs", ro)
        _one_line(res, "logs folder", str(ro), "read-only file system", "--logs")
    assert started == [] and Registry().list() == []


def test_logs_folder_that_is_a_file_is_refused(tmp_path, data, started):
    f = tmp_path / "logs.txt"
    f.write_text("not a folder\n")
    _one_line(invoke("submit", "--data", data, "--logs", f), "logs folder", "is a file")
    assert started == [] and Registry().list() == []


# ------------------------------------------------------------------ full disk, too little free space

@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_full_disk_is_refused_at_submit(tmp_path, data, started, backend, monkeypatch):
    monkeypatch.setenv("CRACKOPS_MIN_FREE_MB", "0")   # only the write probe: the disk is really full
    with tmpfs(tmp_path / "full", "size=1m") as full:
        (full / "out").mkdir()
        fill(full)
        res = invoke("submit", "--data", data, "--backend", backend, "--out", full / "out")
        _one_line(res, "cannot write in the out folder", "no space left on device")
        assert sorted(p.name for p in full.iterdir()) == ["filler", "out"]   # the probe left nothing
        assert list((full / "out").iterdir()) == []
    assert started == [] and Registry().list() == []


def test_too_little_free_space_is_refused_with_the_threshold(tmp_path, data, started):
    with tmpfs(tmp_path / "small", "size=1m") as small:
        res = invoke("submit", "--data", data, "--logs", small)
        _one_line(res, "logs folder", "MB free, less than the", f"{MIN_FREE_MB} MB", "CRACKOPS_MIN_FREE_MB")
    assert started == [] and Registry().list() == []


def test_threshold_follows_the_environment(tmp_path, monkeypatch):
    """No mount needed: a threshold above any disk refuses, 0 turns the free-space check off."""
    monkeypatch.setenv("CRACKOPS_MIN_FREE_MB", str(10**12))
    with pytest.raises(UsageError, match="less than the 1000000000000 MB"):
        check_writable_dir(tmp_path / "a", "out folder", "--out")
    monkeypatch.setenv("CRACKOPS_MIN_FREE_MB", "0")
    assert check_writable_dir(tmp_path / "a", "out folder", "--out") == tmp_path / "a"
    assert list((tmp_path / "a").iterdir()) == []        # the probe is gone
    for bad in ("-1", "nan", "inf", "lots"):
        monkeypatch.setenv("CRACKOPS_MIN_FREE_MB", bad)
        with pytest.raises(UsageError, match="CRACKOPS_MIN_FREE_MB"):
            check_writable_dir(tmp_path / "a", "out folder", "--out")


# ------------------------------------------------------------------ the Python API, sweeps, resume

def test_api_submit_refuses_before_the_local_job_starts(tmp_path):
    """The real local backend: without the check, the job starts and the run is recorded."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        with pytest.raises(UsageError, match="read-only file system") as e:
            api.submit(TrainConfig(data_dir="x"), SMALL, fn=jobs.succeed, check_data=False, out_root=ro)
        assert e.value.exit_code == EXIT_USAGE
    assert Registry().list() == []
    jobs_dir = Path(os.environ["CRACKOPS_HOME"]) / "jobs"
    assert not jobs_dir.exists() or list(jobs_dir.iterdir()) == []      # no job spec, no process


@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_sweep_is_refused_before_any_run(tmp_path, data, started, backend):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        res = invoke("sweep", "--data", data, "--backend", backend, "--grid", "learning_rate=0.001,0.0003",
                     "--out", ro)
        _one_line(res, "out folder", "read-only file system")
    assert started == [] and Registry().list() == [] and Registry().list_sweeps() == []


def test_resume_is_refused_when_its_out_folder_became_read_only(tmp_path, monkeypatch):
    from helpers import make_run, register

    resumed = []
    monkeypatch.setattr(LocalBackend, "resume", lambda self, run: resumed.append(run) or {"pid": 1})
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        run = make_run("L1", state="CANCELLED", out_dir=str(ro / "L1"))
        run.log_out = str(tmp_path / "logs" / "cnn_crack_L1.out")
        register([run])
        with pytest.raises(UsageError, match="out folder .* read-only file system"):
            api.resume("L1")
    assert resumed == [] and Registry().get("L1").state == "CANCELLED"
    api.resume("L1")                      # the same run on a writable folder: resumed (the check is the cause)
    assert len(resumed) == 1
