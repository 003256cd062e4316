"""scripts/local-slurm.sh touches only the cluster SLURM_CONF names (no daemon is started or
stopped here: the clusters are empty folders, the script must refuse or find nothing to stop)."""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import EXIT_OTHER_CLUSTER, LOCAL_SLURM, local_slurm


def script(action, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("SLURM_CONF", "CRACKOPS_SLURM_DIR")}
    full.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(LOCAL_SLURM), action], capture_output=True, text=True, env=full, timeout=60)


def other_cluster(tmp_path, ours=False):
    conf = tmp_path / "other" / "etc" / "slurm.conf"
    conf.parent.mkdir(parents=True)
    mark = "# Written by crackops scripts/local-slurm.sh; edits are overwritten on start.\n" if ours else ""
    conf.write_text(mark + "ClusterName=other\n")
    return conf


def test_daemon_commands_refuse_a_cluster_slurm_conf_does_not_name(tmp_path):
    conf = other_cluster(tmp_path)          # a site's cluster, not one this script made
    default = tmp_path / "default"          # stands for the project's default cluster
    for action in ("stop-dbd", "start-dbd", "stop-ctld", "start-ctld", "stop"):
        p = script(action, SLURM_CONF=conf, CRACKOPS_SLURM_DIR=default)
        assert p.returncode == EXIT_OTHER_CLUSTER, (action, p.returncode, p.stderr)
        assert "SLURM_CONF" in p.stderr and "refusing" in p.stderr
    # without CRACKOPS_SLURM_DIR the default folder is not it either
    p = script("stop-dbd", SLURM_CONF=conf)
    assert p.returncode == EXIT_OTHER_CLUSTER, p.stderr
    assert not default.exists()


def test_slurm_conf_of_a_cluster_the_script_made_selects_its_folder(tmp_path):
    conf = other_cluster(tmp_path, ours=True)
    p = script("env", SLURM_CONF=conf)
    assert p.stdout.strip() == f"export SLURM_CONF={conf}", p.stdout
    # a stale pid file of another program: nothing is signalled, nothing else touched
    run = conf.parent.parent / "run"
    run.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (run / "slurmdbd.pid").write_text(str(sleeper.pid))
        p = script("stop-dbd", SLURM_CONF=conf)
        if os.geteuid() == 0:
            assert p.returncode == 0, p.stderr
            assert not (run / "slurmdbd.pid").exists()      # its own stale pid file, cleaned
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_tests_helper_skips_instead_of_touching_another_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(other_cluster(tmp_path)))
    monkeypatch.delenv("CRACKOPS_SLURM_DIR", raising=False)
    with pytest.raises(pytest.skip.Exception, match="refusing"):
        local_slurm("stop-dbd")
