"""Talking to a remote crackops through the user's own OpenSSH client: pure helpers and a thin runner.

One multiplexed connection per host (``ControlMaster=auto``, ``ControlPersist=10m``, the socket in
the state dir): a second factor is typed once, at the first connection (which may prompt when a
terminal is attached); every later command is a cheap round trip through the master, in
``BatchMode`` (never a prompt). ``CRACKOPS_SSH_CONFIG``: an ssh config file passed as ``-F``
(otherwise the user's ``~/.ssh/config`` applies: ProxyJump, keys, agent).

Every remote argument is quoted (``shlex.quote``): the remote login shell sees words, not code.
A failure is one line (:func:`classify`): the host cannot be reached or the connection dropped
(ssh's exit 255), crackops missing on the host (127, "command not found"), or the remote
crackops' own ``error:`` line passed through with its exit code. The remote's ``--json`` stdout is
the protocol (:func:`parse_json`); ``rsync`` copies a remote folder back, only what is missing
(:func:`rsync_argv`, bytes moved from ``--stats``: :func:`parse_rsync_stats`).

No registry, no API: the ssh backend (``crackops.backends.ssh``) builds on this.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from crackops.errors import BackendError, CheckError, CrackopsError, NotFoundError, StateError, UsageError

#: how long the master connection outlives its last command
CONTROL_PERSIST = "10m"
#: seconds to connect (a host that does not answer fails in this time, not TCP's minutes)
CONNECT_TIMEOUT_S = int(os.environ.get("CRACKOPS_SSH_CONNECT_TIMEOUT", "15"))
#: the longest ControlPath a Unix socket takes (sun_path is 108 bytes; ssh appends a suffix while binding)
_MAX_SOCKET = 90

INSTALL_HINT = ("install it in the environment a non-interactive login uses there (e.g. pip install "
                "'crackops[cpu]' in a virtualenv put on PATH at the top of ~/.bashrc)")


def config_file() -> str | None:
    """The extra ssh config (``CRACKOPS_SSH_CONFIG``), or None: the user's own applies."""
    return os.environ.get("CRACKOPS_SSH_CONFIG") or None


def control_path(state: Path) -> str:
    """The master connections' socket pattern (``%C``: a hash of host, port, user), under the
    state dir, or a short private folder in the temp dir when that path is too long for a socket."""
    d = Path(state) / "ssh"
    if len(str(d)) + 41 > _MAX_SOCKET:
        digest = hashlib.sha1(str(state).encode()).hexdigest()[:10]
        d = Path(tempfile.gettempdir()) / f"crackops-ssh-{os.getuid()}-{digest}"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return str(d / "%C")


def ssh_options(ctl: str, config: str | None = None, *, batch: bool = True) -> list[str]:
    """The ssh options crackops adds to the user's: multiplexing, timeouts, no prompts when ``batch``."""
    opts = ["-o", "ControlMaster=auto", "-o", f"ControlPath={ctl}", "-o", f"ControlPersist={CONTROL_PERSIST}",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4"]
    if batch:
        opts += ["-o", "BatchMode=yes"]
    if config:
        opts = ["-F", config] + opts
    return opts


def remote_command(argv: Sequence[str]) -> str:
    """One shell line for the remote login shell, every word quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def ssh_argv(host: str, argv: Sequence[str] | None, ctl: str, config: str | None = None, *,
             batch: bool = True, tty: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """``ssh [options] -- HOST 'quoted argv'`` (``argv`` None: no command, e.g. ``-O exit``)."""
    cmd = ["ssh", *ssh_options(ctl, config, batch=batch), *(["-tt"] if tty else ["-T"]), *extra, "--", host]
    if argv is not None:
        cmd.append(remote_command(argv))
    return cmd


def rsync_argv(host: str, remote_dir: str, local_dir: str, ctl: str, config: str | None = None,
               exclude: Sequence[str] = (), files: Sequence[str] = ()) -> list[str]:
    """Copy ``remote_dir``'s content (or, with ``files``, those remote files) into ``local_dir``
    through the host's master connection: only files missing or changed here move (rsync's quick
    check), ``--partial`` keeps a cut transfer's part for the next try, ``--stats`` counts the bytes."""
    rsh = shlex.join(["ssh", *ssh_options(ctl, config, batch=True)])
    cmd = ["rsync", "-a", "--partial", "--stats", "--protect-args", "-e", rsh]
    cmd += [f"--exclude={e}" for e in exclude]
    sources = [f"{host}:{f}" for f in files] if files else [f"{host}:{remote_dir.rstrip('/')}/"]
    return cmd + ["--", *sources, f"{local_dir.rstrip('/')}/"]


_STAT_RE = {
    "bytes": re.compile(r"^Total bytes received:\s*([\d,.]+)", re.M),
    "files": re.compile(r"^Number of regular files transferred:\s*([\d,.]+)", re.M),
    "size": re.compile(r"^Total transferred file size:\s*([\d,.]+)", re.M),
}


def parse_rsync_stats(text: str) -> dict[str, int]:
    """``{"bytes": received over the wire, "files": files transferred, "size": their size}`` from
    rsync's ``--stats`` (missing numbers are left out)."""
    found = {}
    for key, rx in _STAT_RE.items():
        m = rx.search(text)
        if m:
            found[key] = int(re.sub(r"[,.]", "", m.group(1)))
    return found


# ------------------------------------------------------------------ failures, one line each
_DROPPED = ("connection closed", "closed by remote host", "broken pipe", "connection reset",
            "timeout, server", "not responding", "mux_client", "control socket")
_MISSING = ("command not found", "no such file or directory")


#: the remote crackops' exit codes, kept: the same error type here as there
_BY_EXIT = {2: UsageError, 3: NotFoundError, 4: StateError, 5: BackendError, 6: CheckError}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def classify(host: str, rc: int, stderr: str, what: str = "crackops") -> CrackopsError | None:
    """The error one ssh command's outcome means, or None when it succeeded.

    255: ssh itself failed (cannot reach the host, the login was refused, the connection dropped);
    127 or "command not found": ``what`` is not installed on the host; otherwise the remote
    crackops' own ``error:`` / ``hint:`` lines, passed through with its exit code."""
    if rc == 0:
        return None
    low = stderr.lower()
    if rc == 255:
        line = _last_line(stderr) or "ssh exited 255"
        if any(s in low for s in _DROPPED):
            return BackendError(f"the connection to {host} dropped: {line}",
                                "nothing was lost: the runs go on there; crackops status catches up")
        return BackendError(f"cannot reach {host}: {line}",
                            f"check that `ssh {host}` works from this shell (host name, network, keys)")
    if rc == 127 or (what in low and any(s in low for s in _MISSING)):
        return BackendError(f"{what} is not installed on {host} (the remote shell: "
                            f"{_last_line(stderr) or 'exit 127'})", INSTALL_HINT)
    message = hint = None
    for ln in stderr.splitlines():
        s = ln.strip()
        if s.startswith("error:") and message is None:
            message = s[len("error:"):].strip()
        elif s.startswith("hint:") and hint is None:
            hint = s[len("hint:"):].strip()
    if message:
        return _BY_EXIT.get(rc, BackendError)(f"on {host}: {message}", hint)
    return BackendError(f"on {host}: {what} exited {rc}: {_last_line(stderr) or 'no message'}",
                        f"run it by hand to see more: ssh {host} {what} ...")


def parse_json(host: str, stdout: str) -> Any:
    """The remote crackops' ``--json`` answer."""
    try:
        return json.loads(stdout)
    except ValueError:
        first = _last_line(stdout[:400]) or "nothing"
        raise BackendError(f"{host} answered something that is not crackops' JSON: {first!r}",
                           "does your ~/.bashrc print text for non-interactive logins there? it must not") from None


# ------------------------------------------------------------------ the runner
@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


class Connection:
    """Commands on one host through its master connection."""

    def __init__(self, host: str, state: Path, config: str | None = None):
        self.host = host
        self.config = config if config is not None else config_file()
        self.ctl = control_path(state)
        self.round_trips = 0

    def _batch(self) -> bool:
        """Prompt-free, unless a terminal is attached and no master is up yet (the first connection
        may ask for a password or a second factor, once)."""
        if not sys.stdin.isatty():
            return True
        return self.master_alive()

    def master_alive(self) -> bool:
        r = subprocess.run(ssh_argv(self.host, None, self.ctl, self.config, extra=["-O", "check"]),
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0

    def stop_master(self) -> None:
        subprocess.run(ssh_argv(self.host, None, self.ctl, self.config, extra=["-O", "exit"]),
                       capture_output=True, text=True, timeout=10)

    def run(self, argv: Sequence[str], *, timeout: float = 120, input: str | None = None) -> Result:
        """``argv`` on the host; a command that does not end in ``timeout`` s is said to have dropped."""
        cmd = ssh_argv(self.host, argv, self.ctl, self.config, batch=self._batch())
        self.round_trips += 1
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"the connection to {self.host} dropped: no answer in {timeout:.0f} s",
                               "nothing was lost: the runs go on there; crackops status catches up") from None
        except OSError as e:
            raise BackendError(f"cannot run ssh: {e}", "install the OpenSSH client") from None
        return Result(r.returncode, r.stdout, r.stderr)

    def crackops(self, args: Sequence[str], *, timeout: float = 120, input: str | None = None,
                 as_json: bool = True) -> Any:
        """``crackops ARGS`` on the host: its parsed ``--json`` answer (or its stdout), or its error."""
        r = self.run(["crackops", *args], timeout=timeout, input=input)
        problem = classify(self.host, r.rc, r.stderr)
        if problem is not None:
            raise problem
        return parse_json(self.host, r.stdout) if as_json else r.stdout

    def popen(self, argv: Sequence[str]) -> subprocess.Popen:
        """``argv`` on the host with its stdout streamed (``logs --follow``)."""
        self.round_trips += 1
        return subprocess.Popen(ssh_argv(self.host, argv, self.ctl, self.config, batch=self._batch()),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def rsync(self, remote_dir: str, local_dir: str, *, exclude: Sequence[str] = (), timeout: float = 3600,
              files: Sequence[str] = ()) -> dict[str, int]:
        """Copy ``remote_dir`` (or the remote ``files``) into ``local_dir``, only what is missing; what moved."""
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        self.round_trips += 1
        try:
            r = subprocess.run(rsync_argv(self.host, remote_dir, local_dir, self.ctl, self.config, exclude, files),
                               capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"copying from {self.host}:{remote_dir} did not end in {timeout:.0f} s",
                               "what arrived is kept; collect again to copy the rest") from None
        except OSError as e:
            raise BackendError(f"cannot run rsync: {e}", "install rsync on this machine") from None
        if r.returncode == 23 and "No such file" in r.stderr and not parse_rsync_stats(r.stdout).get("files"):
            raise BackendError(f"nothing to copy from {self.host}:{remote_dir}: {_last_line(r.stderr)}")
        if r.returncode != 0:
            if r.returncode == 255 or "connection" in r.stderr.lower():
                raise classify(self.host, 255, r.stderr) or BackendError(r.stderr)
            if "command not found" in r.stderr.lower() or r.returncode in (12, 127):
                raise BackendError(f"rsync failed copying {self.host}:{remote_dir}: {_last_line(r.stderr)}",
                                   f"rsync must be installed on this machine and on {self.host}")
            raise BackendError(f"rsync failed copying {self.host}:{remote_dir}: {_last_line(r.stderr)}",
                               "what arrived is kept; collect again to copy the rest")
        return parse_rsync_stats(r.stdout)
