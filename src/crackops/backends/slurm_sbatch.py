"""The Slurm backend's batch script and sbatch: the submitit parameters of a run's resources (the
logs, the requeue, the limit signal, the extra options a profile may add and those crackops sets
itself), the script ``--dry-run`` prints, the environment sbatch runs in, and what an sbatch
refusal means (the hint names the flag it is about)."""

from __future__ import annotations

import os
import pwd
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from crackops.backends.slurm_adopt import submitit_folder
from crackops.backends.submitit_import import import_submitit
from crackops.config import Resources
from crackops.contract import LIMIT_SIGNAL_S
from crackops.errors import BackendError, UsageError
from crackops.slurm.sacct import SCHEDULER_ENV
from crackops.slurm.units import mem_text

#: ``Resources.extra`` keys that are not sbatch options.
_SETUP_KEY = "setup"           # shell lines run in the batch script before Python (module load ...)


def job_python() -> str:
    """How the batch script starts Python: ``exec`` so that it replaces the shell and receives
    Slurm's SIGTERM itself (module docstring, "Signals")."""
    return "exec " + shlex.quote(sys.executable)


def make_sbatch_string(**kwargs: Any) -> str:
    """submitit's sbatch script for these ``SlurmExecutor`` parameters (``command``, ``folder``, ...)."""
    import_submitit()
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(**kwargs)


def limit_signal(time_min: int, max_attempts: int) -> str | None:
    """``--signal`` for a requeueable run: Slurm's warning before the limit, to the batch step's
    task (the exec'd Python process), a second line of defence after the job's own deadline
    (``crackops.contract.LIMIT_SIGNAL_S``). Slurm sends it up to a minute early, and SIGUSR1
    kills a process that has no handler yet: with limits under ``2 x LIMIT_SIGNAL_S`` it could
    arrive while Python is still starting (measured: 3 s after the start of a 2-minute job), so
    those jobs rely on the deadline alone."""
    if max_attempts <= 1 or time_min * 60 < 2 * LIMIT_SIGNAL_S:
        return None
    return f"B:USR1@{LIMIT_SIGNAL_S}"


#: sbatch options crackops sets itself (and their one-letter forms): an extra option may not set them.
RESERVED_OPTIONS = ("output", "error", "array", "job-name", "wrap")
RESERVED_SHORT = ("o", "e", "a", "J")


def reserved_option(key: str) -> bool:
    """Whether an extra sbatch option sets what crackops sets: the name, its one-letter form, or an
    abbreviation sbatch would take for it (``arr`` is ``--array``: sbatch accepts any unambiguous
    prefix of a long option)."""
    return key in RESERVED_SHORT or (len(key) >= 2 and any(o.startswith(key) for o in RESERVED_OPTIONS))


def option_key(k: Any) -> str:
    """An extra sbatch option's name as sbatch reads it; refused when crackops sets that option."""
    key = str(k).strip().lstrip("-").replace("_", "-")
    if reserved_option(key):
        raise UsageError(f"extra sbatch option {k!r} is set by crackops",
                         "drop it from the profile's [resources.extra] / --sbatch")
    return key


def sbatch_parameters(resources: Resources, logs_dir: Path, *, array: bool = False,
                      max_attempts: int | None = None) -> dict[str, Any]:
    """submitit ``SlurmExecutor.update_parameters`` keywords for ``resources``; with
    ``max_attempts`` (the run's), also ``--requeue`` (or ``--no-requeue``) and the limit signal."""
    res = resources
    pattern = "%A_%a" if array else "%j"
    logs_dir = Path(logs_dir)
    extra = dict(res.extra or {})
    setup = extra.pop(_SETUP_KEY, None)
    if isinstance(setup, str):
        setup = [setup]
    additional: dict[str, Any] = {
        "output": str(logs_dir / f"{res.job_name}_{pattern}.out"),
        "error": str(logs_dir / f"{res.job_name}_{pattern}.err"),
    }
    for k, v in extra.items():
        key = option_key(k)
        if v is None or v is False:
            continue
        additional[key] = v
    params: dict[str, Any] = {
        "job_name": res.job_name,
        "cpus_per_task": int(res.cpus),
        "mem": mem_text(res.mem_mb),
        "time": int(res.time_min),
        "nodes": 1,
        "use_srun": False,
        "wckey": None,
        "additional_parameters": additional,
    }
    for k in ("partition", "account", "qos", "gres"):
        v = getattr(res, k)
        if v:
            params[k] = v
    if setup:
        params["setup"] = [str(line) for line in setup]
    if max_attempts is not None:
        # requeueable (time limit near, preemption) unless the run opted out (--no-requeue)
        additional["no-requeue" if max_attempts <= 1 else "requeue"] = True
        signal = limit_signal(int(res.time_min), max_attempts)
        if signal:
            additional["signal"] = signal
    return params


def array_script(res: Resources, logs_dir: Path, n: int, parallel: int | None,
                 max_attempts: int | None = None) -> str:
    """The sbatch script of an array of ``n`` runs, ``parallel`` at once (one run: a plain job)."""
    params = sbatch_parameters(res, logs_dir, array=n > 1, max_attempts=max_attempts)
    if n > 1:
        params["map_count"] = n
        params["array_parallelism"] = parallel or 256
    return sbatch_script(params)


def sbatch_script(params: dict[str, Any]) -> str:
    """The batch script submitit writes for these parameters (what ``--dry-run`` prints)."""
    folder = submitit_folder()
    command = " ".join([job_python(), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return make_sbatch_string(command=command, folder=folder, **params)


@contextmanager
def clean_slurm_env() -> Iterator[None]:
    """Remove ``SLURM_*`` (but ``SLURM_CONF``) from ``os.environ`` for the duration (sbatch reads
    ``os.environ`` and the job inherits it). Not thread-safe, like any change of os.environ."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("SLURM_") and k != "SLURM_CONF"}
    for k in saved:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        os.environ.update(saved)


def _scheduler_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("SLURM_") and k != "SLURM_CONF")}
    env.update(SCHEDULER_ENV)
    return env


def _user_name(uid: str | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return f"uid {uid}"


def _sbatch_error(text: str) -> str:
    """sbatch's error lines, without the ``sbatch: error:`` prefixes, joined: the whole story
    ("Memory specification can not be satisfied; Batch job submission failed: ...")."""
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    errs = [l.split("error:", 1)[1].strip() for l in lines if "error:" in l] or lines[-1:]
    return "; ".join(dict.fromkeys(errs)) or "sbatch failed"


#: Words of sbatch's refusals of the request itself, by the flag they are about ("Requested node
#: configuration is not available" can be any of CPUs, memory or GRES on the nodes).
_RESOURCE_WORDS = {
    "--cpus": ("cpu", "processor", "node configuration", "requested node config", "task count"),
    "--mem": ("memory", "node configuration"),
    "--time": ("time limit", "timelimit"),
    "--partition": ("partition",),
    "--gres": ("gres", "generic resource", "tres"),
    "--account": ("account", "association", "policy"),
    "--qos": ("qos", "policy"),
    "--sbatch": ("feature", "constraint", "node count"),
}


def sbatch_hint(error: str) -> str:
    """What to check for an sbatch refusal: the flags its message is about, or, when it is not
    about the request at all (controller unreachable, configuration, authentication), that."""
    low = (error or "").lower()
    flags = [flag for flag, words in _RESOURCE_WORDS.items() if any(w in low for w in words)]
    if flags:
        return (f"check {'/'.join(flags)} against the cluster's limits (sinfo -o '%P %l %c %m'; "
                "sacctmgr show assoc user=$USER)")
    return ("sbatch's message is not about the request: check that the controller answers "
            "(scontrol ping) and that SLURM_CONF, if set, points at the cluster's slurm.conf")


def check_slurm_conf() -> None:
    """``SLURM_CONF`` set to a file that is not there makes every Slurm command fail or hang
    (sbatch blocks about a minute): say so at once."""
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        return
    p = Path(conf)
    hint = ("point SLURM_CONF at the cluster's slurm.conf, or unset it to use the default "
            "(/etc/slurm/slurm.conf or the cluster's configless setup)")
    if not p.exists():
        raise BackendError(f"SLURM_CONF={conf} does not exist", hint)
    if not p.is_file():
        raise BackendError(f"SLURM_CONF={conf} is not a file", hint)
    if not os.access(p, os.R_OK):
        raise BackendError(f"SLURM_CONF={conf} is not readable", hint)
