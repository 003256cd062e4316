"""Tiny job functions for the Slurm integration tests (module-level, so submitit can pickle them;
the tests register this module to be pickled by value because tests/ is not importable in a job).

Each goes through ``crackops.job._run`` like the real training job, so ``out/<job_id>/status.json``
is written exactly as in production."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from crackops.config import TrainConfig
from helpers import make_artifacts   # pickled by value with this module (tests register both)


def hello(config: TrainConfig):
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        print(f"hello from job {os.environ.get('SLURM_JOB_ID')} out={out_dir}", flush=True)
        print("a line on stderr", file=sys.stderr, flush=True)
        (out_dir / "env.txt").write_text("\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                                                    if k.startswith("SLURM_")))
        return {"ok": True}

    return _run(config, body)


def burn(config: TrainConfig):
    """Keeps one CPU busy and holds ~150 MB for a few seconds: accounting gets MaxRSS/TotalCPU."""
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        block = bytearray(150 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        t = time.time()
        n = 0
        while time.time() - t < 4:
            n += 1
        print(f"burned {n} loops", flush=True)
        return n

    return _run(config, body)


def boom(config: TrainConfig):
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        print("about to fail", flush=True)
        raise ValueError("synthetic failure for the test")

    return _run(config, body)


def sleepy(config: TrainConfig):
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        print("sleeping", flush=True)
        time.sleep(float(os.environ.get("CRACKOPS_TEST_SLEEP", "600")))
        return None

    return _run(config, body)


def submit_child(config: TrainConfig):
    """Runs inside a Slurm job and submits another job through the backend."""
    from crackops.backends.base import Submission
    from crackops.backends.slurm import SlurmBackend
    from crackops.config import Resources
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        logs = Path(os.environ["CRACKOPS_LOGS"])
        child_cfg = TrainConfig(out_root=cfg.out_root)
        sub = Submission(config=child_cfg, resources=Resources(cpus=1, mem="1G", time="5:00"),
                         logs_dir=logs, fn=hello)
        done = SlurmBackend().submit(sub)
        (out_dir / "child.txt").write_text(done.job_id)
        print(f"submitted child {done.job_id}", flush=True)
        return done.job_id

    return _run(config, body)


def sleep_then_artifacts(config: TrainConfig):
    """Sleeps ``CRACKOPS_TEST_SLEEP`` seconds (default 20), then leaves every file of a finished
    training (``helpers.make_artifacts``: PNGs, metrics.txt, best.h5, predictions, the manifest)."""
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        print("sleeping", flush=True)
        time.sleep(float(os.environ.get("CRACKOPS_TEST_SLEEP", "20")))
        make_artifacts(out_dir, job_id=out_dir.name, test_accuracy=0.9)
        print("artifacts written", flush=True)
        return None

    return _run(config, body)


def dropout_then_artifacts(config: TrainConfig):
    """:func:`sleep_then_artifacts`, first writing the dropout it was given to ``dropout.txt``
    (which pickle a task ran: a sweep's runs differ in their config only)."""
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        (out_dir / "dropout.txt").write_text(repr(cfg.dropout))
        time.sleep(float(os.environ.get("CRACKOPS_TEST_SLEEP", "20")))
        make_artifacts(out_dir, job_id=out_dir.name, test_accuracy=0.9)
        return None

    return _run(config, body)


def hog(config: TrainConfig):
    """Holds ``CRACKOPS_TEST_HOG_MB`` megabytes, every page written (resident, so a cgroup memory
    limit counts them), for two seconds, then ends: needs that much memory, whatever it asked."""
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        mb = int(os.environ.get("CRACKOPS_TEST_HOG_MB", "0"))
        block = b"\x01" * (mb * 1024 * 1024)   # filled: every page is touched
        print(f"holding {len(block) // (1024 * 1024)} MB", flush=True)
        time.sleep(2)
        (out_dir / "held.txt").write_text(str(mb))
        return mb

    return _run(config, body)


def killed_writing_artifacts(config: TrainConfig):
    """Writes the seed's files, then is SIGKILLed inside the manifest's atomic write (after the
    temporary file, before the rename): what a node crash or the OOM killer does at the worst moment."""
    import signal

    from crackops import contract
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        make_artifacts(out_dir, job_id=out_dir.name)
        (out_dir / contract.MANIFEST).unlink()          # the training writes the manifest last: not yet

        def replace_then_die(src, dst):
            if Path(dst).name == contract.MANIFEST:
                print(f"killed while writing {dst}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)

        real_replace = os.replace
        os.replace = replace_then_die
        contract.write_json_atomic(out_dir / contract.MANIFEST, {"status": "completed", "metrics": {}})
        return None

    return _run(config, body)


def slow_once(config: TrainConfig):
    """Sleeps far past any test's time limit, unless it continues an earlier run (``resume_from``,
    set by crackops rerun): then it ends at once."""
    from crackops.job import _run

    def body(cfg, out_dir: Path):
        if not cfg.resume_from:
            print("sleeping past the time limit", flush=True)
            time.sleep(900)
        print(f"continuing {cfg.resume_from}", flush=True)
        return None

    return _run(config, body)
