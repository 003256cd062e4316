"""Module-level job functions for backend tests (pickled by reference: keep them importable)."""

from __future__ import annotations

import time

from crackops.job import _run


def succeed(config):
    def body(cfg, out_dir):
        print(f"hello from job {cfg.job_id}", flush=True)
        (out_dir / "touched.txt").write_text("ok")
        return 42

    return _run(config, body)


def fail(config):
    def body(cfg, out_dir):
        print("about to fail", flush=True)
        raise ValueError("deliberate failure for the test")

    return _run(config, body)


def sleep_long(config):
    def body(cfg, out_dir):
        print("sleeping", flush=True)
        time.sleep(300)

    return _run(config, body)


def spawn_and_sleep(config):
    """Starts a child that ignores SIGTERM (as a stuck data loader would), then sleeps."""
    import subprocess
    import sys

    def body(cfg, out_dir):
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
        (out_dir / "child.pid").write_text(str(child.pid))
        print("sleeping", flush=True)
        time.sleep(300)

    return _run(config, body)
