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


def epochs_slowly(config):
    """Three "epochs" of 1 s, said on stdout as Keras says them."""
    def body(cfg, out_dir):
        for e in range(1, 4):
            print(f"Epoch {e}/3", flush=True)
            time.sleep(1.0)
        return 0

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


def oom_once(config):
    """Runs out of memory (MemoryError: the local runner records OUT_OF_MEMORY) unless it continues
    an earlier run (``resume_from``, set by crackops rerun), then succeeds."""
    def body(cfg, out_dir):
        if not cfg.resume_from:
            raise MemoryError("synthetic: needs more memory than it asked")
        (out_dir / "touched.txt").write_text("ok")
        return 1

    return _run(config, body)


def oom_always(config):
    def body(cfg, out_dir):
        raise MemoryError("synthetic: needs more memory than any rerun gets")

    return _run(config, body)


def oom_if_dropout_high(config):
    """OUT_OF_MEMORY on a first attempt with dropout above 0.15 (a sweep's grid point), else succeeds."""
    def body(cfg, out_dir):
        if cfg.dropout > 0.15 and not cfg.resume_from:
            raise MemoryError("synthetic: this grid point needs more memory")
        (out_dir / "touched.txt").write_text("ok")
        return 1

    return _run(config, body)


def finished(config):
    """Leaves every file of a finished training (``helpers.make_artifacts``), no TensorFlow."""
    from helpers import make_artifacts

    def body(cfg, out_dir):
        make_artifacts(out_dir, job_id=out_dir.name, test_accuracy=0.9)
        return None

    return _run(config, body)
