"""Submitting: the one pipeline every submission goes through (checked, noted, submitted, recorded),
for a single run here and for a sweep in :mod:`crackops.api.sweeping`; and the dry run."""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from crackops import backends
from crackops.api.checks import check_data_dir, check_training_data
from crackops.backends.base import Submission
from crackops.config import Resources, TrainConfig
from crackops.errors import BackendError, CrackopsError, UsageError
from crackops.paths import check_run_dirs, default_logs_dir, default_out_root, predict_out_dir, state_dir, validate_job_id
from crackops.registry import Registry, Run


TRAINING_FN = "crackops.job.run_training"


def _default_fn() -> Callable[[TrainConfig], Any]:
    from crackops.job import run_training

    return run_training


def makes_artifacts(run: Run) -> bool:
    """Whether the run's function is the training, whose artifacts decide COMPLETED (runs recorded
    before the function was stored are trainings; other functions, e.g. in tests, promise no files)."""
    return (run.extra or {}).get("fn", TRAINING_FN) == TRAINING_FN


def _holder() -> str:
    from crackops.holder import this_process

    return this_process()


# ------------------------------------------------------------------ the pipeline's steps
# A single run (:func:`_submit`) and a sweep (``crackops.api.sweeping.sweep``) go through the same
# steps: the backend and its checks, the run folders, the data, the note before submitting (for a
# backend that can find a job again), the submission, the record.

def backend_for(name: str, resources: Resources):
    """The backend ``name``, after it checked that it can honour ``resources``."""
    be = backends.get_backend(name)
    be.check(resources)
    return be


def run_roots(out_root: str | Path | None, logs_dir: str | Path | None) -> tuple[Path, Path]:
    """The out and logs roots, resolved, and refused now when read-only, unwritable or full
    (not at the run's end)."""
    out = Path(out_root).expanduser().resolve() if out_root else default_out_root()
    logs = Path(logs_dir).expanduser().resolve() if logs_dir else default_logs_dir()
    check_run_dirs(out, logs)
    return out, logs


def check_run_data(config: TrainConfig, be: Any, full: bool = True, seen: dict[str, str] | None = None) -> None:
    """Refuse a dataset the run could not use, and resolve its folders (``full``: the split is
    checked too); nothing to check here when the backend's paths are another machine's."""
    if not be.paths_are_local:
        return
    if full:
        check_training_data(config)
    seen = {} if seen is None else seen
    for attr, flag in (("data_dir", "--data"), ("test_dir", "--test-dir")):
        v = getattr(config, attr)
        if v:
            if v not in seen:
                seen[v] = str(check_data_dir(v, flag))
            setattr(config, attr, seen[v])


def provenance_config(config: dict[str, Any], be: Any) -> dict[str, Any]:
    """The config provenance is collected for: without data folders that are not on this machine
    (a remote backend's are fingerprinted where they are, by the job)."""
    if be.paths_are_local:
        return config
    return {k: v for k, v in config.items() if k not in ("data_dir", "test_dir")}


def note(reg: Registry, be: Any, sid: str, job_name: str, payload: dict[str, Any]) -> bool:
    """Note the submission in the registry before submitting, where the backend can find its job
    again (if this process dies before recording it, a later ``status`` adopts it)."""
    if not be.finds_submissions:
        return False
    reg.add_pending(sid, be.name, job_name, time.time(), _holder(), payload)
    return True


def _submit(config: TrainConfig, resources: Resources | None = None, *, backend: str = "local",
            name: str | None = None, logs_dir: str | Path | None = None, out_root: str | Path | None = None,
            fn: Callable[[TrainConfig], Any] | None = None, check_data: bool = True,
            registry: Registry | None = None, link: dict[str, Any] | None = None,
            link_extra: dict[str, Any] | None = None) -> Run:
    """:func:`submit`; ``link``: more fields of the recorded run (a rerun's ``continues``,
    ``attempt``, ``sweep_id``, ``retries``), recorded with it in one write."""
    resources = dataclasses.replace(resources or Resources()).validate()
    be = backend_for(backend, resources)
    config = dataclasses.replace(config).validate()
    if check_data:
        check_run_data(config, be)
    out, logs = run_roots(out_root, logs_dir)
    config.out_root = str(out)
    if config.job_id:
        validate_job_id(config.job_id)
        if (out / config.job_id).exists():
            raise UsageError(f"{out / config.job_id} already exists from another run",
                             "pick another --out dir or remove that folder")
    reg = registry or Registry()
    # the job claims its out dir with this: a Slurm job id handed out again never shares one
    config.submission_id = secrets.token_hex(8)

    from crackops import provenance as prov

    record = prov.collect(provenance_config({**config.to_dict(), "job_id": None}, be), cache_dir=state_dir())
    sub = Submission(config=config, resources=resources, logs_dir=logs, fn=fn or _default_fn(), name=name)
    fn_name = f"{sub.fn.__module__}.{sub.fn.__qualname__}"
    sid = config.submission_id
    from crackops.interrupts import committed

    with committed():   # a Ctrl-C from here waits: the job handed over is recorded and said
        pending = note(reg, be, sid, resources.job_name, {
            "name": name, "config": {**config.to_dict(), "job_id": None}, "resources": resources.to_dict(),
            "logs_dir": str(logs), "fn": fn_name, "provenance": record,
            "link": {k: v for k, v in (link or {}).items() if v is not None}, "link_extra": link_extra or {}})
        try:
            done = be.submit(sub)
        except CrackopsError:
            if pending:   # refused: nothing was submitted
                reg.drop_pending(sid)
            raise
        job_id = validate_job_id(done.job_id)
        try:   # claim it now (the job finds it its own), so provenance.json can go in before the job starts
            from crackops.paths import claim_out_dir

            out_dir = claim_out_dir(out, job_id, config.submission_id)
        except (OSError, RuntimeError):
            out_dir = predict_out_dir(out, job_id, config.submission_id)
        run = Run(job_id=job_id, backend=backend, name=name, state="PENDING",
                  config={**config.to_dict(), "job_id": None}, resources=resources.to_dict(),
                  submitted_at=time.time(), out_dir=str(out_dir), log_out=str(done.log_out),
                  log_err=str(done.log_err), extra={**(link_extra or {}), **done.extra, "out_dir": str(out_dir),
                                                    "fn": fn_name},
                  provenance=record, **{k: v for k, v in (link or {}).items() if v is not None})
        try:
            if pending:
                run = reg.record_submission(run, sid) or run
            else:
                reg.add(run)
        except sqlite3.Error as e:   # the job is submitted and runs: say so, and where it writes
            raise BackendError(f"job {job_id} was submitted ({backend}) but could not be recorded in "
                               f"{reg.path}: {e}",
                               f"it runs anyway: artifacts in {out_dir}, logs {done.log_out}; "
                               "fix the registry's folder and watch it with squeue / its log") from None
        try:
            from crackops.importer import submit_record   # what `crackops import` needs beside the artifacts

            prov.merge_file(out_dir, "submit", {**record, "run": submit_record(run)})
        except OSError:
            pass
        return run


@dataclass
class DryRun:
    """What ``submit`` would start: the backend's script or command line, and the settings."""

    backend: str
    script: str
    config: TrainConfig
    resources: Resources

    def __str__(self) -> str:
        return self.script

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "script": self.script, "resources": self.resources.to_dict(),
                "config": self.config.to_dict()}


def dry_run(config: TrainConfig, resources: Resources | None = None, *, backend: str = "local",
            logs_dir: str | Path | None = None, fn: Callable[[TrainConfig], Any] | None = None,
            check_data: bool = False, out_root: str | Path | None = None) -> DryRun:
    """What :func:`submit` would start, starting and recording nothing (``str()`` of it is the
    script). ``config`` is not changed; ``out_root`` as for :func:`submit`."""
    resources = dataclasses.replace(resources or Resources()).validate()
    be = backend_for(backend, resources)
    if check_data and be.paths_are_local:
        check_data_dir(config.data_dir)
        check_training_data(config)
    out = Path(out_root).expanduser().resolve() if out_root else default_out_root()
    config = dataclasses.replace(config, out_root=str(out)).validate()
    logs = Path(logs_dir).expanduser().resolve() if logs_dir else default_logs_dir()
    script = be.dry_run(Submission(config=config, resources=resources, logs_dir=logs,
                                                      fn=fn or _default_fn()))
    return DryRun(backend=backend, script=script, config=config, resources=resources)
