"""Where crackops keeps things. Everything moves with environment variables.

- ``CRACKOPS_HOME``: the state directory (registry, job specs). Default ``~/.crackops``.
- ``CRACKOPS_OUT``: where runs write ``<job_id>/`` artifact folders. Default ``./out``.
- ``CRACKOPS_LOGS``: where ``cnn_crack_<job_id>.out/.err`` go. Default ``./logs``.

Out and logs directories are resolved to absolute paths at submit time and stored with the run,
so later commands work from any directory.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from crackops.errors import UsageError
from crackops.fmt import env_number

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")


def state_dir() -> Path:
    """``CRACKOPS_HOME``, made if missing. A process that uses it creates nothing that group or
    others may write (``crackops.contract.tighten_umask``): the registry, job specs, submitit folders."""
    from crackops.contract import tighten_umask

    tighten_umask()
    p = Path(os.environ.get("CRACKOPS_HOME") or Path.home() / ".crackops").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_out_root() -> Path:
    return Path(os.environ.get("CRACKOPS_OUT") or "out").expanduser().resolve()


def default_logs_dir() -> Path:
    return Path(os.environ.get("CRACKOPS_LOGS") or "logs").expanduser().resolve()


#: ``submit`` (and ``sweep``, ``rerun``, ``resume``) refuses an out or logs folder on a filesystem
#: with less free space than this, in MB: a run at the default settings leaves about 20 MB (the
#: 8 MB model, its epoch-end backup, plots), and a run that cannot write them fails at its end,
#: hours later. ``CRACKOPS_MIN_FREE_MB`` changes it; 0 turns the free-space check off (the write
#: probe stays).
MIN_FREE_MB = 256


def min_free_mb() -> float:
    return env_number("CRACKOPS_MIN_FREE_MB", MIN_FREE_MB, "megabytes",
                      f"e.g. CRACKOPS_MIN_FREE_MB={MIN_FREE_MB} (the default), 0 for no free-space check, or unset it")


def _why(e: OSError) -> str:
    return e.strerror.lower() if e.strerror else str(e)


def check_writable_dir(path: str | os.PathLike, what: str, flag: str) -> Path:
    """Before anything is submitted: make ``path`` if it is missing, create, fill and remove a small
    probe file in it (a read-only filesystem, a folder without write permission or a full disk
    refuse it), and check its filesystem has :func:`min_free_mb` free. ``what`` names the folder in
    the message ("out folder"), ``flag`` the option that moves it (``--out``). Raises
    :class:`UsageError`; returns the folder. For Slurm the check runs on the submit host: the
    compute nodes see the same shared folder."""
    d = Path(path)
    hint = f"point {flag} at a folder you can write, with at least {min_free_mb():.0f} MB free; nothing was submitted"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"the {what} {d} is a file, not a folder", hint) from None
    except OSError as e:
        raise UsageError(f"cannot create the {what} {d}: {_why(e)}", hint) from None
    if not d.is_dir():
        raise UsageError(f"the {what} {d} is not a folder", hint)
    probe = d / f".crackops-write-probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)      # one block: a full filesystem refuses it
        finally:
            os.close(fd)                      # network filesystems report write errors here
    except OSError as e:
        raise UsageError(f"cannot write in the {what} {d}: {_why(e)}", hint) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    need = min_free_mb()
    if need > 0:
        try:
            free_mb = shutil.disk_usage(d).free / 2**20
        except OSError as e:
            raise UsageError(f"cannot read the free space of the {what} {d}: {_why(e)}", hint) from None
        if free_mb < need:
            raise UsageError(f"the {what} {d} has {free_mb:.0f} MB free, less than the {need:.0f} MB crackops "
                             "asks for before it submits",
                             f"free some space or point {flag} elsewhere (CRACKOPS_MIN_FREE_MB sets the "
                             "threshold); nothing was submitted")
    return d


def check_run_dirs(out_root: str | os.PathLike, logs_dir: str | os.PathLike) -> None:
    """:func:`check_writable_dir` for a submission's out folder (``--out``) and logs folder (``--logs``).
    Called before a submission creates anything: from here this process' umask keeps group and others
    from writing what it creates (``crackops.contract.tighten_umask``)."""
    from crackops.contract import tighten_umask

    tighten_umask()
    check_writable_dir(out_root, "out folder", "--out (or CRACKOPS_OUT)")
    check_writable_dir(logs_dir, "logs folder", "--logs (or CRACKOPS_LOGS)")


def validate_job_id(job_id: str) -> str:
    """Job ids end up in paths: refuse anything that could escape a folder."""
    job_id = str(job_id).strip()
    if not JOB_ID_RE.match(job_id) or ".." in job_id:
        raise UsageError(
            f"invalid job id {job_id!r}",
            "job ids are letters, digits, '_', '-', '.', '+'; see `crackops status` for the ids you have",
        )
    return job_id


REF_RE = re.compile(r"^(.+?)(?:~(\d{1,4}))?$")


def parse_ref(ref: str) -> tuple[str, int]:
    """``"1234"`` -> ("1234", 0): the newest run with job id 1234; ``"1234~1"`` -> ("1234", 1): the
    one before it (Slurm may hand out a job id again after a controller reset)."""
    ref = str(ref).strip()
    m = REF_RE.match(ref)
    job_id, back = (m.group(1), int(m.group(2) or 0)) if m else (ref, 0)
    if "~" in job_id:
        raise UsageError(f"invalid job id {ref!r}",
                         "a job id, or JOB_ID~N for the N-th older run with that id (e.g. 1234~1)")
    return validate_job_id(job_id), back


#: In a run's out dir: the submission that claimed it (see ``claim_out_dir``).
OWNER_FILE = ".crackops-submission"


def _owner(d: Path) -> str | None:
    try:
        return (d / OWNER_FILE).read_text().strip() or None
    except OSError:
        return None


def out_dir_candidates(out_root: str | os.PathLike, job_id: str, submission_id: str) -> tuple[Path, Path]:
    """``out/<job_id>``, and ``out/<job_id>-<8 hex of the submission>`` for when a reused Slurm job
    id finds the first taken by an earlier run."""
    root = Path(out_root)
    return root / job_id, root / f"{job_id}-{submission_id[:8]}"


def predict_out_dir(out_root: str | os.PathLike, job_id: str, submission_id: str | None) -> Path:
    """Where the job of this submission writes (what ``claim_out_dir`` will pick, or picked)."""
    if not submission_id:
        return Path(out_root) / job_id
    base, alt = out_dir_candidates(out_root, job_id, submission_id)
    if not base.exists() or _owner(base) == submission_id:
        return base
    return alt


def claim_out_dir(out_root: str | os.PathLike, job_id: str, submission_id: str | None) -> Path:
    """The job's out dir, never one an earlier run wrote: ``out/<job_id>`` when it is free (or this
    submission's own, e.g. a requeue), else ``out/<job_id>-<8 hex>``. The folder appears with its
    owner file already inside (made under a temporary name, then renamed), so no one ever sees it
    unowned."""
    if not submission_id:
        d = Path(out_root) / job_id
        d.mkdir(parents=True, exist_ok=True)
        return d
    Path(out_root).mkdir(parents=True, exist_ok=True)
    for d in out_dir_candidates(out_root, job_id, submission_id):
        if _owner(d) == submission_id:
            return d
        if d.exists():
            continue
        tmp = Path(out_root) / f".claim-{submission_id}-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        (tmp / OWNER_FILE).write_text(submission_id + "\n")
        try:
            os.rename(tmp, d)          # fails if d appeared meanwhile with files in it
            return d
        except OSError:
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
            if _owner(d) == submission_id:
                return d
    raise RuntimeError(f"no free out dir for job {job_id} in {out_root}: both "
                       f"{', '.join(str(d) for d in out_dir_candidates(out_root, job_id, submission_id))} "
                       "belong to other runs")


def log_paths(logs_dir: Path, job_id: str, job_name: str = "cnn_crack") -> tuple[Path, Path]:
    return logs_dir / f"{job_name}_{job_id}.out", logs_dir / f"{job_name}_{job_id}.err"
