"""With a umask of 000, nothing crackops creates is writable by group or others (issue 25, point 9):
out folders, artifacts, logs, the registry, the local job's files. The process umask gains 022 where
crackops starts creating (the command, a submission, the job), so modes are at most 0755 / 0644."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import jobs
from crackops import api, contract
from crackops.config import Resources, TrainConfig
from helpers import make_artifacts


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


def _writable_by_others(*roots: Path) -> list[str]:
    bad = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in [""] + dirnames + filenames:
                p = Path(dirpath, n)
                mode = p.lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & (stat.S_IWGRP | stat.S_IWOTH):
                    bad.append(f"{oct(stat.S_IMODE(mode))} {p}")
    return bad


def test_the_job_writes_nothing_group_or_world_writable(umask_000, tmp_path, control):
    from crackops.job import _run

    cfg = TrainConfig(data_dir="unused", job_id="um1", out_root=str(tmp_path / "out"))

    def body(c, out_dir):
        make_artifacts(out_dir, job_id="um1")
        contract.write_json_atomic(out_dir / "extra.json", {"a": 1})
        (out_dir / "sub").mkdir()
        return None

    _run(cfg, body)
    out = tmp_path / "out" / "um1"
    assert (out / contract.MANIFEST).is_file() and (out / contract.STATUS_FILE).is_file()
    assert _writable_by_others(tmp_path / "out") == []
    assert stat.S_IMODE((out / "extra.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "sub").stat().st_mode) == 0o755


def test_a_local_run_under_umask_000_leaves_nothing_writable_by_others(umask_000, crackops_dirs):
    run = api.submit(TrainConfig(data_dir="unused", epochs=1), Resources(cpus=1, mem="1G", time="5"),
                     fn=jobs.finished, check_data=False)
    done = api.wait_until_done([run.job_id], poll_s=0.2, timeout_s=90)
    assert done[0].state == "COMPLETED" and done[0].metrics is not None
    assert Path(run.out_dir, contract.MANIFEST).is_file()
    assert _writable_by_others(crackops_dirs["out"], crackops_dirs["logs"], crackops_dirs["home"]) == []


def test_a_stricter_umask_stays_stricter():
    old = os.umask(0o077)
    try:
        assert contract.tighten_umask() == 0o077
    finally:
        os.umask(old)
