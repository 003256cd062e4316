"""Every test gets its own state dir, out dir and logs dir: nothing touches ~/.crackops."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def crackops_dirs(tmp_path, monkeypatch):
    home, out, logs = tmp_path / "home", tmp_path / "out", tmp_path / "logs"
    monkeypatch.setenv("CRACKOPS_HOME", str(home))
    monkeypatch.setenv("CRACKOPS_OUT", str(out))
    monkeypatch.setenv("CRACKOPS_LOGS", str(logs))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("COLUMNS", "200")
    return {"home": home, "out": out, "logs": logs}


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
