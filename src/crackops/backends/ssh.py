"""The ssh backend: ``--backend ssh --host HOST`` runs on a cluster reached with the user's own ssh.

No pickle crosses machines: the remote crackops CLI does the work there, and its ``--json`` output
is the protocol. ``submit`` sends the run's settings as a profile (a TOML file on the remote
``stdin``: every training setting and resource, as here) to ``crackops submit --backend slurm
--json`` on the host, with ``--data`` a path on the cluster; the laptop records its own row for the
remote run (backend ``ssh``; the host in its resources; the remote job id; the remote out dir and
logs in ``extra``). ``refresh`` asks ALL runs of one host with ONE ssh command (``crackops status
--json ID...`` there: one sacct), under the shared call budget (``backends.polling``); ``cancel``
is ``crackops cancel`` there; ``logs [-f]`` streams ``crackops logs`` from there; ``collect``
copies ``out/<id>/`` and the logs back with rsync (only what is missing) and verifies them here.

At first contact with a host (cached in the state dir, ``ssh/hosts.json``) the crackops, Python,
TensorFlow and Keras versions of both sides are compared: a different crackops (the protocol) or
Keras major version (a model collected from there must load here) is one line saying what to
install. The transport (``ssh_transport``): one multiplexed master connection per host.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from crackops.backends import ssh_transport as transport
from crackops.backends.base import Backend, Poll, RefreshResult, StateUpdate, Submission, Submitted
from crackops.backends.polling import throttled_poll
from crackops.config import Resources, TrainConfig
from crackops.errors import BackendError, CrackopsError, UsageError
from crackops.paths import OWNER_FILE, state_dir
from crackops.registry import Run

#: what is not sent to the remote side: its paths are the cluster's (``--data``, its own out root),
#: the ids are its own
_LOCAL_ONLY = ("data_dir", "test_dir", "out_root", "job_id", "submission_id", "resume_from")
#: how long a host's versions stay checked
VERSIONS_TTL_S = 24 * 3600.0
#: seconds one remote crackops command may take (a submit, a status of many runs)
COMMAND_TIMEOUT_S = 120.0

#: prints the versions of the Python that runs the remote ``crackops`` (read from its script's
#: first line; TensorFlow and Keras from their metadata: nothing is imported)
_VERSIONS_PY = """
import json, platform, importlib.metadata as m
def v(*names):
    for n in names:
        try:
            return m.version(n)
        except m.PackageNotFoundError:
            pass
print(json.dumps({"crackops": v("crackops"), "python": platform.python_version(),
                  "tensorflow": v("tensorflow", "tensorflow-cpu", "tensorflow-macos"), "keras": v("keras")}))
"""
_VERSIONS_SH = ('exe=$(command -v crackops) || { echo "crackops: command not found" >&2; exit 127; }; '
                'py=$(head -n 1 "$exe" | sed "s/^#! *//"); '
                'case "$py" in */python*) ;; *) py=python3 ;; esac; exec $py -c "$1"')


def local_versions() -> dict[str, str | None]:
    import importlib.metadata as m
    import platform

    def v(*names: str) -> str | None:
        for n in names:
            try:
                return m.version(n)
            except m.PackageNotFoundError:
                pass
        return None

    return {"crackops": v("crackops"), "python": platform.python_version(),
            "tensorflow": v("tensorflow", "tensorflow-cpu", "tensorflow-macos"), "keras": v("keras")}


def version_problem(host: str, here: dict[str, Any], there: dict[str, Any]) -> CrackopsError | None:
    """The one mismatch that matters between this machine's versions and the host's, or None.
    crackops must be the same (its JSON is the protocol); Keras the same major version (a model
    collected from there is loaded here by predict). Python and TensorFlow minor versions may
    differ: no pickle crosses machines."""
    if not there.get("crackops"):
        return BackendError(f"crackops is not installed on {host}", transport.INSTALL_HINT)
    if here.get("crackops") != there.get("crackops"):
        return BackendError(f"crackops {there['crackops']} on {host}, {here.get('crackops')} here: "
                            "both sides must run the same crackops",
                            f"install the same there: pip install 'crackops=={here.get('crackops')}' "
                            f"(or here: pip install 'crackops=={there['crackops']}')")
    k_here, k_there = (here.get("keras") or "").split(".")[0], (there.get("keras") or "").split(".")[0]
    if k_here and k_there and k_here != k_there:
        return BackendError(f"Keras {there['keras']} on {host}, {here['keras']} here: a model trained there "
                            "would not load here", f"install Keras {k_there}.x here: pip install 'keras=={k_there}.*'")
    return None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))   # a TOML basic string: JSON's escapes are TOML's


def profile_toml(config: TrainConfig, resources: Resources, resume_from: str | None = None) -> str:
    """The run's settings as a profile file the remote ``crackops submit --profile`` reads:
    every resource (but the host) and every training setting that is not a path or id of here;
    ``resume_from``: the earlier run's out dir there (a rerun continues from its backup)."""
    res = {k: v for k, v in resources.to_dict().items() if k not in ("host", "profile", "extra") and v is not None}
    train = {k: v for k, v in config.to_dict().items() if k not in _LOCAL_ONLY and v is not None}
    if resume_from:
        train["resume_from"] = resume_from
    lines = ["# the run's settings, sent by crackops' ssh backend", "[resources]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in res.items()]
    if resources.extra:
        lines.append("[resources.extra]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in resources.extra.items() if v is not None]
    lines.append("[train]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in train.items()]
    return "\n".join(lines) + "\n"


def submit_args(config: TrainConfig, name: str | None) -> list[str]:
    """The remote ``crackops submit`` arguments after the profile (a file the remote shell writes
    from stdin, ``"$f"``): the cluster's Slurm, the data paths there, JSON out; the out and logs
    roots there when ``CRACKOPS_SSH_OUT`` / ``CRACKOPS_SSH_LOGS`` name them (a scratch filesystem;
    otherwise the remote crackops' own defaults)."""
    args = ["--backend", "slurm", "--json", "--data", config.data_dir]
    for flag, env in (("--out", "CRACKOPS_SSH_OUT"), ("--logs", "CRACKOPS_SSH_LOGS")):
        if os.environ.get(env):
            args += [flag, os.environ[env]]
    if config.test_dir:
        args += ["--test-dir", config.test_dir]
    if name:
        args += ["--name", name]
    return args


#: the remote side of a submit: the profile from stdin into a private temp file, crackops submit
#: with it, the file removed whatever happens; "$@" are the quoted arguments
_SUBMIT_SH = ('d=$(mktemp -d) || exit 1; f="$d/run.toml"; cat >"$f" || { rm -rf "$d"; exit 1; }; '
              'crackops submit --profile "$f" "$@"; rc=$?; rm -rf "$d"; exit $rc')


_UNKNOWN_RE = re.compile(r"^error: unknown job ids? (.+)$", re.M)


def unknown_refs(rc: int, stderr: str) -> set[str]:
    """The run refs the remote ``crackops status`` said it does not know (its exit 3), if that is why it failed."""
    m = _UNKNOWN_RE.search(stderr) if rc == 3 else None
    return {x.strip().strip("'") for x in m.group(1).split(",")} if m else set()


def state_update(row: dict[str, Any]) -> StateUpdate:
    """A remote ``status --json`` row as a state update here."""
    return StateUpdate(state=row.get("state") or "UNKNOWN", reason=row.get("reason"), exit_code=row.get("exit_code"),
                       started_at=row.get("started_at"), ended_at=row.get("ended_at"),
                       accounting=row.get("accounting"))


def remote_resume_from(local_out_dir: str, host: str) -> str:
    """The cluster's out dir of the run whose folder here is ``local_out_dir`` (a rerun's
    ``resume_from``): its backup is there, not here."""
    from crackops.registry import Registry

    for run in Registry().list():
        if run.backend == SshBackend.name and run.out_dir == local_out_dir and (run.extra or {}).get("remote_out_dir"):
            if _host_of(run) != host:
                raise UsageError(f"run {run.shown_id} ran on {_host_of(run)}, not {host}",
                                 "a rerun continues on the host of the run it continues")
            return run.extra["remote_out_dir"]
    raise UsageError(f"{local_out_dir} is not the folder of a run over ssh",
                     "a run over ssh continues from a run of the same host")


def _host_of(run: Run) -> str:
    host = (run.resources or {}).get("host") or (run.extra or {}).get("host")
    if not host:
        raise BackendError(f"run {run.shown_id} ran over ssh but its host is not recorded")
    return host


def _remote_ref(run: Run) -> str:
    return str((run.extra or {}).get("remote_ref") or run.job_id)


class SshBackend(Backend):
    name = "ssh"
    paths_are_local = False   # --data and the out dir are the cluster's
    enforces_resources = True  # the cluster's Slurm holds the job to them
    measures_usage = True

    def __init__(self) -> None:
        self._conns: dict[str, transport.Connection] = {}

    # ------------------------------------------------------------ connections
    def connection(self, host: str) -> transport.Connection:
        if host not in self._conns:
            self._conns[host] = transport.Connection(host, state_dir())
        return self._conns[host]

    @property
    def round_trips(self) -> int:
        return sum(c.round_trips for c in self._conns.values())

    def check(self, resources: Resources) -> None:
        if not resources.host:
            raise UsageError("--backend ssh needs --host HOST (where to run)",
                             "an alias of ~/.ssh/config or user@host: --host, CRACKOPS_HOST or a profile's "
                             "[resources] host")

    def versions(self, host: str) -> dict[str, Any]:
        """The host's versions, checked against this machine's at first contact (cached)."""
        here = local_versions()
        cache_path = state_dir() / "ssh" / "hosts.json"
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
        hit = cache.get(host)
        if hit and hit.get("here") == here and time.time() - hit.get("checked_at", 0) < VERSIONS_TTL_S:
            there = hit["there"]
        else:
            conn = self.connection(host)
            r = conn.run(["sh", "-c", _VERSIONS_SH, "crackops-versions", _VERSIONS_PY], timeout=COMMAND_TIMEOUT_S)
            problem = transport.classify(host, r.rc, r.stderr)
            if problem is not None:
                raise problem
            there = transport.parse_json(host, r.stdout)
        problem = version_problem(host, here, there)
        if problem is not None:
            raise problem
        if not hit or hit.get("there") != there or hit.get("here") != here:
            cache[host] = {"here": here, "there": there, "checked_at": time.time()}
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, indent=1))
            tmp.replace(cache_path)
        return there

    # ------------------------------------------------------------ submitting
    def submit(self, sub: Submission) -> Submitted:
        from crackops.paths import log_paths

        host = sub.resources.host or ""
        fn = f"{sub.fn.__module__}.{sub.fn.__qualname__}"
        if fn != "crackops.job.run_training":
            raise UsageError(f"the ssh backend runs crackops' training, not {fn}",
                             "no Python function crosses machines: submit it on the cluster itself")
        resume = remote_resume_from(sub.config.resume_from, host) if sub.config.resume_from else None
        self.versions(host)
        conn = self.connection(host)
        row = self._run_submit(conn, sub, resume)
        job_id = str(row["job_id"])
        out_path, err_path = log_paths(sub.logs_dir, job_id, sub.resources.job_name)
        return Submitted(job_id=job_id, log_out=out_path, log_err=err_path,
                         extra={"host": host, "remote_ref": row.get("ref") or job_id,
                                "remote_out_dir": row.get("out_dir"), "remote_log_out": row.get("log_out"),
                                "remote_log_err": row.get("log_err")})

    def _run_submit(self, conn: transport.Connection, sub: Submission, resume: str | None = None) -> dict[str, Any]:
        r = conn.run(["sh", "-c", _SUBMIT_SH, "crackops-submit", *submit_args(sub.config, sub.name)],
                     input=profile_toml(sub.config, sub.resources, resume), timeout=COMMAND_TIMEOUT_S)
        problem = transport.classify(conn.host, r.rc, r.stderr)
        if problem is not None:
            raise problem
        row = transport.parse_json(conn.host, r.stdout)
        if not isinstance(row, dict) or not row.get("job_id"):
            raise BackendError(f"{conn.host} answered the submit without a job id: {r.stdout[:200]!r}")
        return row

    def dry_run(self, sub: Submission) -> str:
        host = sub.resources.host or ""
        lines = [f"ssh {host} crackops submit --profile <these settings> {transport.remote_command(submit_args(sub.config, sub.name))}",
                 "with the profile:", profile_toml(sub.config, sub.resources).rstrip()]
        return "\n".join(lines)

    # ------------------------------------------------------------ states
    def poll(self, registry: Any, runs: list[Run], now: float) -> Poll:
        """The shared call budget (one ssh round trip per interval for all crackops processes)."""
        return throttled_poll(registry, runs, now, command="ssh", what="the ssh hosts",
                              lease_s=COMMAND_TIMEOUT_S + 5.0)

    def refresh(self, runs: list[Run]) -> RefreshResult:
        """All runs of one host with one ssh command (``crackops status --json`` there: one sacct)."""
        by_host: dict[str, list[Run]] = {}
        for r in runs:
            by_host.setdefault(_host_of(r), []).append(r)
        updates: dict[str, StateUpdate] = {}
        warnings: list[str] = []
        calls, ok = 0, True
        for host, rs in by_host.items():
            conn = self.connection(host)
            calls += 1
            try:
                r = conn.run(["crackops", "status", "--json", *[_remote_ref(x) for x in rs]], timeout=COMMAND_TIMEOUT_S)
                unknown = unknown_refs(r.rc, r.stderr)
                if unknown:   # the host's registry lost them (its state dir wiped): said, and the rest asked
                    for x in rs:
                        if _remote_ref(x) in unknown:
                            updates[x.job_id] = StateUpdate("UNKNOWN", reason=f"the crackops on {host} has no "
                                                            f"record of its run {_remote_ref(x)}")
                    rs = [x for x in rs if _remote_ref(x) not in unknown]
                    if not rs:
                        continue
                    calls += 1
                    r = conn.run(["crackops", "status", "--json", *[_remote_ref(x) for x in rs]],
                                 timeout=COMMAND_TIMEOUT_S)
            except CrackopsError as e:
                ok = False
                warnings.append(f"{e.message}: states of its {len(rs)} run(s) as last known")
                continue
            rows = None
            if r.stdout.strip():
                try:
                    rows = json.loads(r.stdout)
                except ValueError:
                    rows = None
            problem = transport.classify(host, r.rc, r.stderr)
            if rows is None or not isinstance(rows, list):
                ok = False
                why = problem.message if problem else f"{host} answered no run list"
                warnings.append(f"{why}: states of its {len(rs)} run(s) as last known")
                continue
            if problem is not None:   # e.g. the cluster's controller is down: states are its last known
                ok = False
                warnings.append(problem.message)
            by_ref = {str(row.get("ref") or row.get("job_id")): row for row in rows}
            for x in rs:
                row = by_ref.get(_remote_ref(x))
                if row is not None:
                    updates[x.job_id] = state_update(row)
        return RefreshResult(updates=updates, source=("crackops status on " + ", ".join(by_host)) if ok else "registry (a host did not answer)",
                             warning="; ".join(warnings) or None, calls=calls, ok=ok)

    def cancel(self, runs: list[Run]) -> None:
        by_host: dict[str, list[Run]] = {}
        for r in runs:
            by_host.setdefault(_host_of(r), []).append(r)
        for host, rs in by_host.items():
            self.connection(host).crackops(["cancel", *[_remote_ref(x) for x in rs]], as_json=False,
                                           timeout=COMMAND_TIMEOUT_S)

    # ------------------------------------------------------------ results
    def fetch(self, run: Run) -> dict[str, Any]:
        """Copy the run's remote out dir into ``run.out_dir`` and its logs beside their recorded
        paths here, only what is missing; ``{"bytes", "files", "from"}``."""
        host, extra = _host_of(run), run.extra or {}
        remote = extra.get("remote_out_dir")
        if not remote:
            raise BackendError(f"run {run.shown_id} has no remote out dir recorded")
        conn = self.connection(host)
        moved = {"bytes": 0, "files": 0}
        try:
            got = conn.rsync(remote, run.out_dir, exclude=[OWNER_FILE])
        except BackendError as e:
            if "nothing to copy" not in e.message:
                raise
            got = {}   # the job never made its folder (it failed before): the logs say why
        for k in moved:
            moved[k] += got.get(k, 0)
        logs = [p for p in (extra.get("remote_log_out"), extra.get("remote_log_err")) if p]
        if logs and run.log_out:
            try:
                got = conn.rsync("", str(Path(run.log_out).parent), files=logs)
            except BackendError as e:
                if "nothing to copy" not in e.message:
                    raise
                got = {}
            for k in moved:
                moved[k] += got.get(k, 0)
        return {**moved, "from": f"{host}:{remote}"}

    def log_lines(self, run: Run, *, err: bool = False, follow: bool = False,
                  tail: int | None = None) -> Iterator[str]:
        """``crackops logs`` on the host, streamed."""
        args = ["crackops", "logs", _remote_ref(run)] + (["--err"] if err else []) + (["--follow"] if follow else [])
        if tail is not None and not follow:
            args += ["--tail", str(tail)]
        return self._stream(_host_of(run), args)

    def _stream(self, host: str, args: list[str]) -> Iterator[str]:
        proc = self.connection(host).popen(args)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while True:
                chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
                if not chunk:
                    break
                yield chunk.decode(errors="replace")
            rc = proc.wait()
            problem = transport.classify(host, rc, proc.stderr.read().decode(errors="replace"))
            if problem is not None:
                raise problem
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
