"""Trivial job functions for the sweep tests (module-level, importable through PYTHONPATH)."""

from __future__ import annotations

import os
import time

from crackops.job import _run


def nap(config):
    """Sleeps a little (CRACKOPS_TEST_NAP seconds, default 1.5): long enough to overlap."""
    def body(cfg, out_dir):
        time.sleep(float(os.environ.get("CRACKOPS_TEST_NAP", "1.5")))
        return cfg.seed

    return _run(config, body)


def sleep_long(config):
    def body(cfg, out_dir):
        time.sleep(300)

    return _run(config, body)
