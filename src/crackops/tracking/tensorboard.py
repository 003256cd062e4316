"""TensorBoard over some runs' event files (``out/<job_id>/tensorboard/``): the ``--logdir_spec``
naming each run by its job id and name, and TensorBoard started on it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from crackops.contract import TENSORBOARD_DIR
from crackops.errors import NotFoundError, UsageError
from crackops.registry import Run

INSTALL_HINT = "pip install tensorboard  (or: pip install 'crackops[tensorboard]')"


@dataclass
class LogdirSpec:
    logdirs: list[tuple[str, str]]                          # (run name in TensorBoard, event folder)
    missing: list[str] = field(default_factory=list)        # runs without event files (made before, or with 0)

    @property
    def spec(self) -> str:
        """The value of ``tensorboard --logdir_spec``."""
        return ",".join(f"{name}:{path}" for name, path in self.logdirs)

    def to_dict(self) -> dict[str, Any]:
        return {"logdir_spec": self.spec, "runs": [{"name": n, "path": p} for n, p in self.logdirs],
                "missing": self.missing}


def run_label(run: Run) -> str:
    """``JOB_ID-NAME``, with the characters ``--logdir_spec`` splits on (``,`` and ``:``) and
    spaces replaced."""
    label = run.shown_id + (f"-{run.name}" if run.name else "")
    return re.sub(r"[,:\s]+", "_", label)


def logdir_spec(runs: Iterable[Run]) -> LogdirSpec:
    found: list[tuple[str, str]] = []
    missing: list[str] = []
    for r in runs:
        d = Path(r.out_dir) / TENSORBOARD_DIR if r.out_dir else None
        if d is not None and d.is_dir():
            found.append((run_label(r), str(d.resolve())))
        else:
            missing.append(r.shown_id)
    if not found:
        raise NotFoundError(f"no TensorBoard event files in {', '.join(missing[:10])}"
                            + (" ..." if len(missing) > 10 else ""),
                            "runs made before crackops wrote them, or with --tensorboard-every 0, have none")
    return LogdirSpec(found, missing)


def command(spec: LogdirSpec, *, host: str = "127.0.0.1", port: int = 6006) -> list[str]:
    """The command that starts TensorBoard on ``spec`` (an error naming the package when missing)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError("TensorBoard is not installed", f"{INSTALL_HINT}; or print the spec with --print and "
                                                         "run TensorBoard where it is installed")
    exe = shutil.which("tensorboard")
    base = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    return base + ["--logdir_spec", spec.spec, "--host", host, "--port", str(port)]


def serve(spec: LogdirSpec, *, host: str = "127.0.0.1", port: int = 6006) -> int:
    """Run TensorBoard in the foreground until it ends (Ctrl-C); its exit code."""
    proc = subprocess.Popen(command(spec, host=host, port=port))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)
        return 130
