"""A real ``mlflow server`` for the tracking tests and benchmarks/tracking.py: a SQLite backend
store and a local artifact root in a folder of its own, on a free port of 127.0.0.1, ended (its
whole process group, which this module started) by ``stop``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    uri: str
    proc: subprocess.Popen
    root: Path
    log: Path

    def requests(self) -> int:
        """HTTP requests the server logged so far (uvicorn's access log: one line per request)."""
        return sum('HTTP/1.1" ' in line for line in self.log.read_text(errors="replace").splitlines())


def problem() -> str | None:
    """Why no server can be started here, or None."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        return "mlflow is not installed (pip install -e '.[test]' or '.[mlflow]')"
    if not _mlflow_exe():
        return "the mlflow command is not on PATH (mlflow-skinny has no server: install mlflow)"
    return None


def _mlflow_exe() -> str | None:
    exe = Path(sys.executable).parent / "mlflow"
    return str(exe) if exe.exists() else shutil.which("mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, timeout_s: float = 120.0) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "server.log"
    cmd = [_mlflow_exe(), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts")]
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=root, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return Server(uri=uri, proc=proc, root=root, log=log)
        except OSError:
            time.sleep(0.3)
    stop(Server(uri=uri, proc=proc, root=root, log=log))
    raise RuntimeError(f"mlflow server did not answer in {timeout_s:.0f} s: {log.read_text()[-2000:]}")


def stop(server: Server) -> None:
    """End the server's process group (started by ``start`` in a session of its own)."""
    if server.proc.poll() is None:
        try:
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(5)
        except ProcessLookupError:
            pass
