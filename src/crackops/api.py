"""The crackops Python API: what the CLI calls, and what scripts and notebooks can call.

    from crackops import api
    config = api.config_from_profile("default", data_dir="datasets/concrete", epochs=5)
    resources, _ = api.resolve_resources("default", mem="8G")
    run = api.submit(config, resources)
    runs = api.wait_until_done([run.job_id])      # collected when they completed
    cmp = api.compare([run.job_id])
    api.report([run.job_id], "report.html")
    rows = api.predict(run.job_id, ["photos/"]).rows

Every CLI command is one call here plus formatting: anything the CLI can do, Python can do the
same way. Nothing here imports TensorFlow (``predict`` does, when it runs the model).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from crackops import artifacts
from crackops.backends import get_backend
from crackops.backends.base import Submission
from crackops.compare import Comparison, compare_runs, filter_runs, final_attempts
from crackops.config import Resources, TrainConfig, list_profiles, load_profile
from crackops.errors import BackendError, CheckError, CrackopsError, NotFoundError, StateError, UsageError
from crackops.contract import read_status
from crackops.paths import (check_run_dirs, default_logs_dir, default_out_root, predict_out_dir, state_dir,
                            validate_job_id)
from crackops.registry import Registry, Run
from crackops.states import TERMINAL_STATES



def _default_fn() -> Callable[[TrainConfig], Any]:
    from crackops.job import run_training

    return run_training


def check_data_dir(path: str | Path, what: str = "--data") -> Path:
    """Fail fast, before anything is submitted, on a data dir training cannot use.

    The layout rules are the scanner's (``crackops.data.scan``), the ones training and
    ``crackops data check`` apply: class folders found case-insensitively (the release ships
    ``Positive/`` and ``Negative/``), one folder per class, images directly inside."""
    from crackops.data.scan import CLASSES, extra_folders_problem, list_class_files, resolve_class_dirs

    if not str(path).strip():
        raise UsageError("no data directory given", f"pass {what} DIR, or make one: crackops data synth data/synth")
    root, class_dirs = resolve_class_dirs(path)
    extra = extra_folders_problem(root)   # a third class folder is refused, as `data check` does
    if extra:
        raise UsageError(*extra)
    for c in sorted(CLASSES, reverse=True):   # positive first
        d = class_dirs[c]
        if d is None:
            hint = "the data dir needs positive/ (cracks) and negative/ subfolders"
            if root.name.lower() in CLASSES:
                hint = f"that looks like a class folder itself: give its parent, {root.parent}"
            raise UsageError(f"{root} has no {c}/ folder", hint)
        images, _rejected = list_class_files(d, c)
        if not images:
            raise UsageError(f"{d} holds no images",
                             f"put .jpg/.png images in {d.name}/ (`crackops data check {root}` lists what is there)")
    return root


#: Below this many image files in the smaller class, ``check_training_data`` reads and decodes
#: every file and computes the real split; above, counting files is enough (and fast on 40,000).
EXACT_SPLIT_CHECK_BELOW = 1000


def check_training_data(config: TrainConfig) -> None:
    """Refuse, before submitting, a dataset the run's split could not use: a class folder missing
    or without images, or too few images to give train, val and test an image of each class with
    these ``--max-images`` / ``--test-fraction`` / ``--val-fraction`` (the job would fail at once)."""
    from crackops.data.scan import CLASSES, list_class_files, resolve_class_dirs
    from crackops.data.split import TOO_FEW_HINT, make_split

    config.validate()   # the arithmetic below needs sane fractions (--test-fraction inf: OverflowError)
    data = check_data_dir(config.data_dir)
    if config.test_dir:
        check_data_dir(config.test_dir, "--test-dir")
    _root, class_dirs = resolve_class_dirs(data)
    counts = {c: len(list_class_files(class_dirs[c], c)[0]) for c in CLASSES}  # type: ignore[arg-type]
    if config.max_images:
        counts = {c: min(n, config.max_images) for c, n in counts.items()}
    tf = 0.0 if config.test_dir else config.test_fraction
    for c, n in counts.items():   # the split's arithmetic, every file assumed usable and distinct
        test = int(n * tf + 0.5)
        val = int((n - test) * config.val_fraction + 0.5)
        sizes = {"train": n - test - val, "val": val, "test": test if not config.test_dir else 1}
        empty = [p for p in ("train", "val", "test") if sizes[p] < 1]
        if empty:
            raise UsageError(f"too few images to split: the {empty[0]} part would have no {c} image "
                             f"({counts['positive']} positive, {counts['negative']} negative image files"
                             + (f", at most {config.max_images} per class with --max-images" if config.max_images else "")
                             + ")", TOO_FEW_HINT)
    from crackops.data.check import refuse_label_conflicts   # an error in `data check`: refused here too

    refuse_label_conflicts(data, cache_dir=state_dir())
    if min(counts.values()) < EXACT_SPLIT_CHECK_BELOW:
        make_split(data, seed=config.seed, test_fraction=config.test_fraction, val_fraction=config.val_fraction,
                   test_dir=config.test_dir or None, max_per_class=config.max_images, verify=True)


def resolve_resources(profile: str = "default", **overrides: Any) -> tuple[Resources, dict[str, Any]]:
    """The profile's resources with ``overrides`` (cpus, mem, time, partition, ..., ``extra`` for
    more sbatch options) applied, validated; and the profile's ``[train]`` settings, which
    :func:`config_from_profile` merges into a ``TrainConfig``."""
    res, train_overrides = load_profile(profile)
    extra = overrides.pop("extra", None)
    for k, v in overrides.items():
        if v is not None:
            setattr(res, k, v)
    if extra:
        res.extra = {**res.extra, **extra}
    return res.validate(), train_overrides


def config_from_profile(profile: str = "default", data_dir: str = "", **overrides: Any) -> TrainConfig:
    """A ``TrainConfig``: the defaults, then the profile's ``[train]`` section, then ``overrides``
    (keyword arguments named like ``TrainConfig`` fields; None means "not given")."""
    _, train = load_profile(profile)
    return TrainConfig(data_dir=data_dir).with_overrides(**train).with_overrides(**overrides)


def check_retries(retries: int | None) -> int | None:
    if retries is None:
        return None
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise UsageError(f"--retries {retries} must be a whole number from 0 to 100", "e.g. --retries 2")
    return retries


def submit(config: TrainConfig, resources: Resources | None = None, *, backend: str = "local",
           name: str | None = None, logs_dir: str | Path | None = None, out_root: str | Path | None = None,
           fn: Callable[[TrainConfig], Any] | None = None, check_data: bool = True, retries: int | None = None,
           registry: Registry | None = None) -> Run:
    """Start one training run and record it. Returns the recorded run. ``config`` is not changed:
    the same config can be submitted again (a new run each time).

    ``retries``: when the run ends OUT_OF_MEMORY, TIMEOUT, NODE_FAIL or PREEMPTED, rerun it by
    :func:`rerun`'s policy (never after a Python exception), up to this many times, each attempt
    continuing the one before. The rerun is submitted by the next crackops call that refreshes
    states (``status``, ``wait``, a sweep's status or wait, ``compare``...), by whichever crackops
    process gets there first, once."""
    return _submit(config, resources, backend=backend, name=name, logs_dir=logs_dir, out_root=out_root,
                   fn=fn, check_data=check_data, registry=registry, link={"retries": check_retries(retries)})


def _submit(config: TrainConfig, resources: Resources | None = None, *, backend: str = "local",
            name: str | None = None, logs_dir: str | Path | None = None, out_root: str | Path | None = None,
            fn: Callable[[TrainConfig], Any] | None = None, check_data: bool = True,
            registry: Registry | None = None, link: dict[str, Any] | None = None,
            link_extra: dict[str, Any] | None = None) -> Run:
    """:func:`submit`; ``link``: more fields of the recorded run (a rerun's ``continues``,
    ``attempt``, ``sweep_id``, ``retries``), recorded with it in one write."""
    be = get_backend(backend)
    resources = dataclasses.replace(resources or Resources()).validate()
    config = dataclasses.replace(config).validate()
    if check_data:
        check_training_data(config)
        config.data_dir = str(check_data_dir(config.data_dir))
        if config.test_dir:
            config.test_dir = str(check_data_dir(config.test_dir, "--test-dir"))
    out = Path(out_root).expanduser().resolve() if out_root else default_out_root()
    config.out_root = str(out)
    logs = Path(logs_dir).expanduser().resolve() if logs_dir else default_logs_dir()
    if config.job_id:
        validate_job_id(config.job_id)
        if (out / config.job_id).exists():
            raise UsageError(f"{out / config.job_id} already exists from another run",
                             "pick another --out dir or remove that folder")
    check_run_dirs(out, logs)   # read-only, unwritable or full: refused now, not at the run's end
    reg = registry or Registry()
    # the job claims its out dir with this: a Slurm job id handed out again never shares one
    config.submission_id = secrets.token_hex(8)

    from crackops import provenance as prov

    record = prov.collect({**config.to_dict(), "job_id": None}, cache_dir=state_dir())
    sub = Submission(config=config, resources=resources, logs_dir=logs, fn=fn or _default_fn(), name=name)
    fn_name = f"{sub.fn.__module__}.{sub.fn.__qualname__}"
    sid = config.submission_id
    pending = getattr(be, "finds_submissions", False)
    from crackops.interrupts import committed

    with committed():   # a Ctrl-C from here waits: the job handed over is recorded and said
        if pending:   # noted before sbatch: if this process dies before recording the job, it is adopted
            reg.add_pending(sid, backend, resources.job_name, time.time(), _holder(), {
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


def _holder() -> str:
    from crackops.holder import this_process

    return this_process()


#: A pending submission of a live process is left to it this long before others look for its job.
ADOPT_AFTER_S = 120.0


def _holder_gone(holder: str | None) -> bool:
    """Whether the process that noted a pending submission has ended (known on its own host only)."""
    from crackops.holder import gone

    return gone(holder)


@dataclass
class Adoption:
    """What :func:`adopt_submissions` did: runs recorded for jobs whose submitter died, and lines
    for the user (still looking, given up)."""

    runs: list[Run] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def adopt_submissions(registry: Registry | None = None, *, now: float | None = None) -> Adoption:
    """Record the jobs of submissions whose submitting process died between sbatch and the
    registry write (a pending row left behind: see :func:`submit`). The job is found by its
    submission's own folder in the batch script's path (sacct ``SubmitLine``, squeue), or by the
    out dir it claimed; recorded as a run from the pending row. A submission the scheduler does
    not know after the no-record grace period (``CRACKOPS_NO_RECORD_GRACE``, 10 min), asked
    successfully, was never accepted: it is dropped, with a line saying so. Nothing is guessed."""
    reg = registry or Registry()
    now = time.time() if now is None else now
    rows = [p for p in reg.pending() if _holder_gone(p["holder"]) or now - p["created_at"] > ADOPT_AFTER_S]
    result = Adoption()
    if not rows:
        return result
    from crackops.backends.slurm import no_record_grace_s
    from crackops.paths import log_paths

    by_backend: dict[str, list[dict[str, Any]]] = {}
    for p in rows:
        by_backend.setdefault(p["backend"], []).append(p)
    for name, group in by_backend.items():
        be = get_backend(name)
        sweeps = [p for p in group if "sweep" in p["run"]]
        group = [p for p in group if "sweep" not in p["run"]]
        found = {p["submission_id"]: j for p in group if (j := _job_in_out_root(p))}
        search_error = None
        # a sweep is searched for by each of its arrays' folders
        rest = [p for p in group if p["submission_id"] not in found] + [
            {**p, "submission_id": a["folder"]} for p in sweeps for a in p["run"]["arrays"]]
        if rest:
            find = getattr(be, "find_submissions", None)
            more, search_error = find(rest) if find else ({}, f"the {name} backend cannot search")
            found.update(more)
        for p in sweeps:
            _adopt_sweep(reg, p, found, search_error, now, result)
        for p in group:
            sid, tpl = p["submission_id"], p["run"]
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["created_at"]))
            job_id = found.get(sid)
            if job_id is None:
                if search_error is None and now - p["created_at"] > no_record_grace_s():
                    reg.drop_pending(sid)
                    result.warnings.append(f"a submission started at {when} ({tpl.get('name') or p['job_name']}) "
                                           f"whose crackops process ended before recording it is unknown to "
                                           f"{name}: it was never accepted, nothing ran")
                else:
                    result.warnings.append(f"a submission started at {when} ({tpl.get('name') or p['job_name']}) "
                                           "was never recorded by its crackops process; its job is not found "
                                           f"yet{f' ({search_error})' if search_error else ''}: crackops keeps looking")
                continue
            job_id = validate_job_id(job_id)
            config = tpl["config"]
            out_dir = predict_out_dir(config["out_root"], job_id, sid)
            log_out, log_err = log_paths(Path(tpl["logs_dir"]), job_id, p["job_name"])
            extra: dict[str, Any] = {**tpl.get("link_extra", {}), "out_dir": str(out_dir), "fn": tpl.get("fn"),
                                     "adopted": f"recorded at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}: "
                                                "the submitting crackops process ended after sbatch"}
            if name == "slurm":
                from crackops.backends.slurm import SlurmBackend, submitit_folder

                folder = Path(str(submitit_folder(sid)).replace("%j", job_id))
                extra["submitit_folder"] = str(folder)
                if SlurmBackend.rescue_pickle(sid, job_id):
                    extra["adopted"] += "; its job's pickle moved into place"
            run = Run(job_id=job_id, backend=name, name=tpl.get("name"), state="PENDING", config=config,
                      resources=tpl["resources"], submitted_at=p["created_at"], out_dir=str(out_dir),
                      log_out=str(log_out), log_err=str(log_err), extra=extra, provenance=tpl.get("provenance"),
                      **tpl.get("link", {}))   # a rerun's continues / attempt / sweep_id / retries
            recorded = reg.record_submission(run, sid, adopting=True)
            if recorded is not None:
                result.runs.append(recorded)
                result.warnings.append(f"adopted job {job_id} ({tpl.get('name') or p['job_name']}, submitted {when}): "
                                       "its crackops process ended after sbatch, before recording it")
    return result


def _adopt_sweep(reg: Registry, p: dict[str, Any], found: dict[str, str], search_error: str | None,
                 now: float, result: Adoption) -> None:
    """:func:`adopt_submissions` for a Slurm sweep noted before its first sbatch: the arrays found
    (by their folders) are recorded with the sweep, once; an array the scheduler does not know,
    asked successfully, was never accepted (the submitter died before it)."""
    from crackops.backends.slurm import SlurmBackend, no_record_grace_s, submitit_folder
    from crackops.paths import log_paths
    from crackops.registry import Sweep
    from crackops.slurm.adopt import array_id
    from crackops.sweeps import member_run

    sid, note = p["submission_id"], p["run"]
    sw = Sweep(**note["sweep"])
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["created_at"]))
    arrays = [(a, array_id(found[a["folder"]])) for a in note["arrays"] if a["folder"] in found]
    if not arrays or (search_error is not None and len(arrays) < len(note["arrays"])):
        if not arrays and search_error is None and now - p["created_at"] > no_record_grace_s():
            reg.drop_pending(sid)
            result.warnings.append(f"sweep {sw.name}, started at {when}, whose crackops process ended before "
                                   f"recording it is unknown to {sw.backend}: it was never accepted, nothing ran")
        else:
            result.warnings.append(f"sweep {sw.name}, started at {when}, was never recorded by its crackops process; "
                                   f"its job arrays are not all found yet{f' ({search_error})' if search_error else ''}"
                                   ": crackops keeps looking")
        return
    adopted = (f"recorded at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}: "
               "the submitting crackops process ended after sbatch")
    runs, recorded_arrays, prev = [], [], None
    for a, aid in arrays:
        n = len(a["indices"])
        job_ids = [aid] if n == 1 else [f"{aid}_{i}" for i in range(n)]
        tpls = [note["runs"][i] for i in a["indices"]]
        if n == 1:
            SlurmBackend.rescue_pickle(a["folder"], aid)
        else:
            SlurmBackend.rescue_array_pickles(a["folder"], job_ids, [t["config"] for t in tpls])
        for job_id, tpl in zip(job_ids, tpls):
            validate_job_id(job_id)
            log_out, log_err = log_paths(Path(note["logs_dir"]), job_id, p["job_name"])
            out_dir = str(predict_out_dir(tpl["config"]["out_root"], job_id, None))
            folder = str(submitit_folder(a["folder"])).replace("%j", job_id)
            runs.append(member_run(tpl, job_id, sw.backend, sw.sweep_id, p["created_at"], out_dir, log_out, log_err,
                                   {"out_dir": out_dir, "submitit_folder": folder, "adopted": adopted}))
        scripts = [state_dir() / "submitit" / a["folder"] / aid / f"{aid}_submission.sh",
                   *sorted((state_dir() / "submitit" / a["folder"]).glob(".submission_file_*.sh"))]
        script = next((str(x) for x in scripts if x.is_file()), None)   # not moved into place if killed
        recorded_arrays.append({"array_id": aid, "n": n, "first_index": a["indices"][0], "sbatch_script": script,
                                "dependency": f"afterany:{prev}" if prev and a.get("dependency") else None})
        prev = aid
    sw.extra = {**sw.extra, "arrays": recorded_arrays, "adopted": adopted}
    try:
        if reg.add_sweep(sw, runs, submission_id=sid, adopting=True) is None:
            return   # recorded meanwhile, by its submitter or another crackops process
    except CrackopsError as e:
        result.warnings.append(f"sweep {sw.name}, started at {when}, could not be adopted: {e.message}")
        return
    result.runs.extend(runs)
    result.warnings.append(f"adopted sweep {sw.name} ({len(runs)} of {len(note['runs'])} runs, job array(s) "
                           f"{', '.join(aid for _, aid in arrays)}, submitted {when}): its crackops process "
                           "ended after sbatch, before recording it")


def _job_in_out_root(pending: dict[str, Any]) -> str | None:
    """The job id of a pending submission whose job already started: it claimed ``out/<job_id>``
    (or ``out/<job_id>-<8 hex>``) with the submission's id in the owner file."""
    from crackops.paths import OWNER_FILE

    sid = pending["submission_id"]
    root = Path(pending["run"]["config"].get("out_root") or "")
    if not root.is_dir():
        return None
    for owner in root.glob(f"*/{OWNER_FILE}"):
        try:
            if owner.read_text().strip() != sid:
                continue
        except OSError:
            continue
        name = owner.parent.name
        suffix = f"-{sid[:8]}"
        return name[: -len(suffix)] if name.endswith(suffix) else name
    return None


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
            check_data: bool = False) -> DryRun:
    """What :func:`submit` would start, starting and recording nothing (``str()`` of it is the
    script). ``config`` is not changed."""
    if check_data:
        check_data_dir(config.data_dir)
        check_training_data(config)
    resources = dataclasses.replace(resources or Resources()).validate()
    config = dataclasses.replace(config, out_root=str(default_out_root())).validate()
    logs = Path(logs_dir).expanduser().resolve() if logs_dir else default_logs_dir()
    script = get_backend(backend).dry_run(Submission(config=config, resources=resources, logs_dir=logs,
                                                      fn=fn or _default_fn()))
    return DryRun(backend=backend, script=script, config=config, resources=resources)


@dataclass
class StatusReport:
    runs: list[Run]
    sources: dict[str, str] = field(default_factory=dict)   # backend -> where states came from
    warnings: list[str] = field(default_factory=list)
    calls: int = 0                                         # scheduler commands run
    #: the scheduler's controller did not answer (slurmctld down or restarting): why. States of
    #: unfinished runs are then the last known; ``crackops status`` exits 5.
    scheduler_down: str | None = None
    retried: list[Any] = field(default_factory=list)       # rerun.Plan of each --retries rerun submitted

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "sources": self.sources,
                "warnings": self.warnings, "scheduler_calls": self.calls, "scheduler_down": self.scheduler_down,
                "retried": [p.to_dict() for p in self.retried]}


TRAINING_FN = "crackops.job.run_training"


def makes_artifacts(run: Run) -> bool:
    """Whether the run's function is the training, whose artifacts decide COMPLETED (runs recorded
    before the function was stored are trainings; other functions, e.g. in tests, promise no files)."""
    return (run.extra or {}).get("fn", TRAINING_FN) == TRAINING_FN


def refresh(runs: list[Run], registry: Registry) -> StatusReport:
    """Ask each backend once about all of its unfinished runs; store what changed.

    Slurm is asked through :mod:`crackops.slurm.throttle`: runs refreshed by any crackops process
    less than ``CRACKOPS_SACCT_INTERVAL`` seconds ago, and all runs while another process has
    just called sacct (or sacct is backed off after failures), are served from the registry.
    With Slurm runs unfinished, ``scontrol ping`` also asks whether the controller answers (sacct
    does not need it, and shows stale states while it is down): if not, the report's
    ``scheduler_down`` says why, and the throttle backs off as for a failed sacct call."""
    from crackops.slurm.throttle import Denied, Throttle

    report = StatusReport(runs=runs)
    by_backend: dict[str, list[Run]] = {}
    for r in runs:
        if not r.terminal:
            by_backend.setdefault(r.backend, []).append(r)
    now = time.time()
    for name, live in by_backend.items():
        be = get_backend(name)
        throttle = grant = None
        if name == "slurm":
            throttle = Throttle(registry, lease_s=float(getattr(be, "timeout_s", 60.0)) + 5.0)
            if all(throttle.fresh(r.refreshed_at, now) for r in live):
                report.sources[name] = "registry (sacct asked less than "f"{throttle.interval:g} s ago)"
                _controller_down_when_last_asked(registry, report, now)
                continue
            grant = throttle.claim()
            if isinstance(grant, Denied):
                report.sources[name] = "registry (another crackops process asked sacct just now)"
                warning = grant.warning(now)
                if warning:
                    report.sources[name] = "registry (sacct backed off)"
                    if not _controller_down_when_last_asked(registry, report, now):
                        report.warnings.append(warning)
                continue
        ok, error = True, None
        try:
            # sacct answers without the controller: ask it too, or a restart goes unnoticed (first,
            # so that the Slurm backend skips squeue's long retries when it is down)
            ask = getattr(be, "controller_problem", None)
            down = ask() if ask is not None else None   # not in report.calls, which counts sacct/squeue
            for batch in _unique_ids(live):
                res = be.refresh(batch)
                if name == "slurm" and res.source != "sacct":
                    ok, error = False, res.warning
                _store_refresh(name, batch, res, registry, report, now)
            if down:
                report.scheduler_down = down   # the CLI's error line says it (exit 5)
                ok, error = False, down
        except BaseException as e:
            ok, error = False, f"{type(e).__name__}: {e}"
            raise
        finally:
            if throttle is not None and grant is not None:
                throttle.done(grant, ok=ok, error=error)
    _note_start_provenance(runs, registry)
    _auto_retry(report, registry)
    return report


def _controller_down_when_last_asked(registry: Registry, report: StatusReport, now: float) -> bool:
    """Runs served from the registry: if the last process that asked found the Slurm controller
    down (the throttle keeps its error), say so as it did."""
    from crackops.backends.slurm import CONTROLLER_DOWN
    from crackops.slurm.throttle import COMMAND

    row = registry.scheduler_call(COMMAND) or {}
    error = row.get("last_error") or ""
    if not row.get("failures") or not error.startswith(CONTROLLER_DOWN):
        return False
    report.scheduler_down = error
    report.warnings.append(f"{error} when last asked; crackops asks again in "
                           f"{max(0.0, float(row['next_at']) - now):.0f} s")
    return True


def _store_refresh(name: str, live: list[Run], res: Any, registry: Registry, report: StatusReport,
                   now: float) -> None:
    """Record one backend answer about ``live`` (runs with distinct job ids) in the registry and
    in the runs themselves; every run asked gets ``refreshed_at`` (other processes read it)."""
    report.sources[name] = res.source
    report.calls += res.calls
    if res.warning and res.warning not in report.warnings:
        report.warnings.append(res.warning)
    changes: dict[int, dict[str, Any]] = {}
    for r in live:
        u = res.updates.get(r.job_id)
        # still waiting and never started: its job has written nothing to read (a 1,000-run sweep
        # waiting in the queue costs no file reads)
        waiting = u is not None and u.state == r.state == "PENDING" and not (r.started_at or u.started_at)
        moved = None if waiting else _claimed_out_dir(r)
        if u is None:
            ch0: dict[str, Any] = {"refreshed_at": now}
            if moved:
                r.out_dir = moved
                ch0["out_dir"] = moved
            r.refreshed_at = now
            changes[registry.key(r)] = ch0
            continue
        ch: dict[str, Any] = {"refreshed_at": now, "state_source": res.source}
        if moved:
            ch["out_dir"] = r.out_dir = moved
        for k in ("state", "reason", "exit_code", "started_at", "ended_at", "accounting"):
            v = getattr(u, k)
            if v is not None and v != getattr(r, k):
                ch[k] = v
        if r.state == "REQUEUED" and u.state != "REQUEUED" and u.reason is None and r.reason:
            ch["reason"] = None   # "attempt N waiting" ends with the wait
        attempt = None if waiting else (read_status(r.out_dir) or {}).get("attempt")
        if attempt and attempt != r.attempt:
            ch["attempt"] = attempt
        if u.state == "COMPLETED" and makes_artifacts(r):
            problem = artifacts.manifest_problem(r.out_dir)
            if problem:   # artifacts decide: no finished manifest, no COMPLETED
                ch["state"] = "INCOMPLETE"
                ch["reason"] = f"{res.source} says COMPLETED but {problem}"
        changes[registry.key(r)] = ch
        for k, v in ch.items():
            setattr(r, k, v)
    registry.update_many(changes)


def _unique_ids(runs: list[Run]) -> list[list[Run]]:
    """Batches in which no job id repeats (backends answer by job id): one batch unless a job id
    was handed out twice, newest runs first."""
    batches: list[list[Run]] = []
    seen: dict[str, int] = {}   # job id -> how many batches already hold it
    for r in sorted(runs, key=lambda r: -(r.submitted_at or 0)):
        i = seen.get(r.job_id, 0)
        seen[r.job_id] = i + 1
        if i == len(batches):
            batches.append([])
        batches[i].append(r)
    return [sorted(b, key=lambda r: r.submitted_at or 0) for b in batches]


def _claimed_out_dir(run: Run) -> str | None:
    """The out dir this run's job claimed, when it is not the one recorded (the job found the
    recorded one taken after submit time); None when nothing moved."""
    sid = (run.config or {}).get("submission_id")
    if not sid or not run.config.get("out_root"):
        return None
    from crackops.paths import OWNER_FILE, out_dir_candidates

    for d in out_dir_candidates(run.config["out_root"], run.job_id, sid):
        try:
            if (d / OWNER_FILE).read_text().strip() == sid:
                return None if str(d) == run.out_dir else str(d)
        except OSError:
            continue
    return None


def _note_start_provenance(runs: list[Run], registry: Registry) -> None:
    """Read the code a started run really ran (its provenance.json) into the registry, once."""
    from crackops import provenance as prov

    changes: dict[int, dict[str, Any]] = {}
    for r in runs:
        if r.provenance is None or "start" in r.provenance or (r.started_at is None and not r.terminal):
            continue
        doc = prov.read_file(r.out_dir) or {}
        if "start" not in doc and not r.terminal:
            continue
        p = {**r.provenance, "start": doc.get("start")}
        p["code_changed"] = prov.code_changed(r.provenance, doc.get("start"))
        r.provenance = p
        changes[r.run_key] = {"provenance": p}
    if changes:
        registry.update_many(changes)


def status(job_ids: Iterable[str] | None = None, *, refresh_states: bool = True, limit: int | None = None,
           registry: Registry | None = None) -> StatusReport:
    """Runs and their states, refreshed. Jobs of submissions whose crackops process died after
    sbatch are adopted first (:func:`adopt_submissions`), and said so in the warnings."""
    reg = registry or Registry()
    adopted = adopt_submissions(reg) if refresh_states else Adoption()
    runs = reg.list(job_ids=list(job_ids) if job_ids else None, limit=limit)
    if not refresh_states:
        return StatusReport(runs=runs)
    rep = refresh(runs, reg)
    rep.warnings[:0] = adopted.warnings
    return rep


def get_run(job_id: str, registry: Registry | None = None) -> Run:
    return (registry or Registry()).get(job_id)


@dataclass
class CollectReport:
    run: Run
    artifacts: artifacts.ArtifactReport
    err_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.run.state == "COMPLETED" and self.artifacts.ok

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.run.job_id, "state": self.run.state, "ok": self.ok,
                "reason": self.run.reason, "artifacts": self.artifacts.to_dict(),
                "metrics": self.run.metrics, "err_tail": self.err_tail}


def collect(job_id: str, registry: Registry | None = None) -> CollectReport:
    """Verify a finished run's artifacts and read its metrics into the registry."""
    reg = registry or Registry()
    run = reg.get(job_id)
    if not run.terminal:
        run = refresh([run], reg).runs[0]
    if not run.terminal:
        raise StateError(f"run {job_id} is still {run.state}",
                         f"wait for it: crackops wait {job_id}  (or follow it: crackops logs {job_id} --follow)")
    rep = artifacts.verify(run.out_dir)
    err_tail = ""
    if run.state in ("COMPLETED", "INCOMPLETE") and makes_artifacts(run):
        # artifacts decide: every file present and sound, or INCOMPLETE (never ranked by compare;
        # metrics read earlier stay recorded, they are just not shown as a result)
        if not rep.ok:
            reason = f"artifacts {rep.summary()} in {run.out_dir}"
            if run.state != "INCOMPLETE" or run.reason != reason:
                reg.update(run, state="INCOMPLETE", reason=reason)
            run.state, run.reason = "INCOMPLETE", reason
        elif run.state == "INCOMPLETE":
            reg.update(run, state="COMPLETED", reason=None)
            run.state, run.reason = "COMPLETED", None
    if run.state != "COMPLETED" or not rep.ok:
        err_tail = artifacts.tail(run.log_err, 25)
    if rep.ok and rep.manifest and run.state == "COMPLETED":
        m = rep.manifest
        metrics = {
            **{f"{split}_{k}": v for split in ("train", "val", "test") for k, v in m["metrics"].get(split, {}).items()},
            "epochs_run": m.get("epochs_run"), "best_epoch": m.get("best_epoch"),
            "wall_time_s": m.get("wall_time_s"),
            "split_fingerprint": m.get("dataset", {}).get("fingerprints", {}),
            "train_images_per_s": m.get("runtime", {}).get("train_images_per_s"),
        }
        reg.update(run, metrics=metrics, collected_at=time.time())
        run.metrics, run.collected_at = metrics, time.time()
    return CollectReport(run=run, artifacts=rep, err_tail=err_tail)


def cancel(job_ids: Iterable[str], registry: Registry | None = None) -> list[Run]:
    reg = registry or Registry()
    runs = reg.list(job_ids=list(job_ids))
    live = [r for r in runs if not r.terminal]
    by_backend: dict[str, list[Run]] = {}
    for r in live:
        by_backend.setdefault(r.backend, []).append(r)
    for name, rs in by_backend.items():
        get_backend(name).cancel(rs)
    return live


def resume(job_id: str, *, force: bool = False, registry: Registry | None = None) -> Run:
    """Start an ended (cancelled, killed, timed-out) local run again under the same job id: it
    continues from its last epoch-end backup. A run that failed with a Python exception is
    refused unless ``force``. Slurm runs are requeued by Slurm, or continued by :func:`rerun`."""
    from crackops.backends.local import LocalBackend
    from crackops.ml.backup import point as backup_point, read_state

    reg = registry or Registry()
    run = reg.get(validate_job_id(job_id))
    if run.backend != "local":
        raise UsageError(f"run {job_id} ran on {run.backend}: resume continues local runs",
                         f"continue it as a new job: crackops rerun {job_id}")
    if not run.terminal:
        run = refresh([run], reg).runs[0]
    if not run.terminal:
        raise StateError(f"run {job_id} is still {run.state}", f"cancel it first: crackops cancel {job_id}")
    if run.state == "COMPLETED":
        raise StateError(f"run {job_id} already COMPLETED", "nothing to resume")
    st = read_status(run.out_dir) or {}
    if st.get("phase") == "failed" and not force:
        raise StateError(f"run {job_id} failed with {_one_line(st.get('error'))}",
                         "fix the cause, or resume anyway with --force")
    check_run_dirs(Path(run.out_dir).parent, Path(run.log_out).parent if run.log_out else default_logs_dir())
    backup = read_state(run.out_dir)
    pid = LocalBackend().resume(run)
    reason = f"resumed {backup_point(backup)}" if backup else "no backup: starting at epoch 1"
    reg.update(run.job_id, state="PENDING", reason=reason, exit_code=None, ended_at=None,
               extra={**run.extra, "pid": pid})
    return reg.get(run.job_id)


#: Seconds a claim on rerunning a run holds while its rerun is submitted; a claim this old whose
#: rerun was never recorded (the process died while submitting) may be taken again.
RERUN_LEASE_S = 600.0
#: What ``--retries`` reruns by itself (never a Python exception, never a cancel).
AUTO_RETRY_STATES = ("OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED")


def _job_fn(run: Run) -> Callable[[TrainConfig], Any]:
    """The function a run ran (``extra["fn"]``; the training when none is recorded), imported."""
    import importlib

    name = (run.extra or {}).get("fn") or TRAINING_FN
    if name == TRAINING_FN:
        return _default_fn()
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise UsageError(f"run {run.shown_id} ran {name}, which cannot be imported here",
                     "rerun it where it was submitted from (the same PYTHONPATH)")


class _Limits:
    """Each backend's memory limit for a resource shape, asked once per shape."""

    def __init__(self) -> None:
        self._seen: dict[tuple, Any] = {}

    def __call__(self, run: Run) -> Any:
        res = Resources.from_dict(run.resources or {})
        key = (run.backend, res.partition, res.cpus)
        if key not in self._seen:
            try:
                self._seen[key] = get_backend(run.backend).memory_limit(res)
            except CrackopsError:
                self._seen[key] = None
        return self._seen[key]


def _plan_one(run: Run, limits: _Limits, **policy_kw: Any) -> Any:
    from crackops import rerun as policy
    from crackops.ml.backup import read_state

    b = read_state(run.out_dir)
    return policy.plan(run.shown_id, run.state, run.resources, read_status(run.out_dir),
                       backup_epoch=b["epoch"] if b else None, cap=limits(run), **policy_kw)


def _submit_rerun(run: Run, p: Any, reg: Registry, *, retries: int | None) -> Run | None:
    """Submit the rerun ``p`` plans for ``run``, once for all crackops processes (the registry's
    claim); the new run is recorded already linked (``continues``, attempt, sweep, retries left).
    Returns None, with ``p`` refused and why, when another process has it."""
    fn = _job_fn(run)
    if not reg.claim_rerun(run, time.time(), RERUN_LEASE_S):
        other = reg.continued_by(run)
        p.action = "refused"
        p.why = (f"already rerun as {other.shown_id}" + (f": crackops rerun {other.shown_id}" if other.terminal else "")
                 if other else "another crackops process is rerunning it just now")
        return None
    try:
        config = TrainConfig.from_dict({**run.config, "job_id": None, "resume_from": run.out_dir})
        extra = {"sweep": run.extra["sweep"]} if (run.extra or {}).get("sweep") else {}
        res = Resources(**p.resources)
        # a sweep's chained arrays wait for the array before (afterany:ID): that wait is over
        res.extra = {k: v for k, v in (res.extra or {}).items() if k != "dependency"}
        new = _submit(config, res, backend=run.backend, name=run.name,
                      logs_dir=Path(run.log_out).parent if run.log_out else None,
                      out_root=Path(run.out_dir).parent, fn=fn, check_data=makes_artifacts(run), registry=reg,
                      link={"continues": run.job_id, "attempt": (run.attempt or 1) + 1,
                            "sweep_id": run.sweep_id, "retries": retries}, link_extra=extra)
    except BaseException:
        reg.release_rerun(run)
        raise
    run.rerun_claimed_at = time.time()
    p.new_job_id = new.job_id
    return new


def rerun(job_ids: Iterable[str] = (), *, failed: bool = False, sweep: str | None = None,
          mem_factor: float = 1.5, mem: str | None = None, time_limit: str | None = None,
          max_mem: str | None = None, force: bool = False, dry_run: bool = False,
          registry: Registry | None = None) -> list[Any]:
    """Rerun runs by the cause of their end (``crackops.rerun``): each accepted one becomes a new
    job on the same backend, running the same function, that continues from the old run's last
    backup and is linked to it (``Run.continues``; it joins the old run's sweep). ``failed``:
    every run that ended FAILED / TIMEOUT / OUT_OF_MEMORY / NODE_FAIL / PREEMPTED and was not rerun
    yet (``sweep``: of that sweep only). ``mem``: the new runs' memory (validated, never above the
    partition's limit); otherwise OUT_OF_MEMORY gets ``mem_factor`` times its memory, capped by
    the partition's (locally: the machine's) memory and ``max_mem``. A run is rerun once, even
    when several crackops processes try at the same time. Returns one ``rerun.Plan`` per run."""
    from crackops import rerun as policy
    from crackops.config import parse_mem_mb, parse_time_min

    if not (isinstance(mem_factor, (int, float)) and 1 < mem_factor <= 100):
        raise UsageError(f"--mem-factor {mem_factor} must be more than 1", "e.g. --mem-factor 1.5")
    for flag, value, check in (("--mem", mem, parse_mem_mb), ("--max-mem", max_mem, parse_mem_mb),
                               ("--time", time_limit, parse_time_min)):
        if value is not None:
            try:
                check(value)
            except UsageError as e:
                raise UsageError(f"{flag} {value}: {e.message}", e.hint) from None
    reg = registry or Registry()
    ids = list(job_ids)
    if sweep is not None and ids:
        raise UsageError("give job ids or --sweep, not both", f"crackops rerun --failed --sweep {sweep}")
    if sweep is not None:
        failed = True
    if not ids and not failed:
        raise UsageError("no runs given", "pass job ids, or --failed for every failed run")
    runs = reg.list(job_ids=ids) if ids else []
    if failed:
        pool = reg.sweep_runs(get_sweep(sweep, reg).sweep.sweep_id) if sweep is not None else reg.list()
        cands = refresh(pool, reg).runs
        continued = {r.continues for r in reg.list() if r.continues}
        runs += [r for r in cands if r.state in policy.RERUNNABLE and r.job_id not in continued
                 and r.shown_id not in ids and r.job_id not in ids]
    else:
        runs = refresh(runs, reg).runs
    limits = _Limits()
    plans = []
    for r in runs:
        p = _plan_one(r, limits, mem_factor=mem_factor, time=time_limit, force=force, max_mem=max_mem, mem=mem)
        if p.action == "rerun" and not dry_run:
            _submit_rerun(r, p, reg, retries=r.retries)
        plans.append(p)
    return plans


def _auto_retry(report: StatusReport, registry: Registry) -> None:
    """``--retries``: rerun, by the same policy as ``crackops rerun`` (never a Python exception),
    the runs in ``report`` that ended OUT_OF_MEMORY / TIMEOUT / NODE_FAIL / PREEMPTED and have
    retries left; each once, whichever crackops process sees it first (the registry's claim)."""
    now = time.time()
    due = [r for r in report.runs if r.retries and r.retries > 0 and r.state in AUTO_RETRY_STATES
           and (r.rerun_claimed_at is None or now - r.rerun_claimed_at > RERUN_LEASE_S)]
    limits = _Limits()
    for r in due:
        try:
            p = _plan_one(r, limits)
            if p.action != "rerun":
                registry.update(r, retries=0)
                r.retries = 0
                report.warnings.append(f"{r.shown_id} ({r.state}) is not retried: {p.why}")
                continue
            new = _submit_rerun(r, p, registry, retries=r.retries - 1)
        except Exception as e:  # noqa: BLE001 - a status must not die of a retry it could not submit
            why = e.message if isinstance(e, CrackopsError) else f"{type(e).__name__}: {e}"
            report.warnings.append(f"retry of {r.shown_id} ({r.state}) failed: {why}; "
                                   "crackops tries again at the next status")
            continue
        if new is not None:
            report.retried.append(p)


def _one_line(text: Any) -> str:
    lines = [l.strip() for l in str(text or "an error").splitlines() if l.strip()]
    return lines[0] if lines else "an error"


def log_path(job_id: str, err: bool = False, registry: Registry | None = None) -> Path:
    run = get_run(job_id, registry)
    p = run.log_err if err else run.log_out
    if not p:
        raise NotFoundError(f"run {job_id} has no {'error' if err else 'output'} log recorded")
    return Path(p)


def wait(job_ids: Iterable[str], *, poll_s: float = 2.0, timeout_s: float | None = None,
         registry: Registry | None = None) -> Iterator[StatusReport]:
    """Yield a status report every ``poll_s`` until every run is terminal (or the timeout). A run
    that was rerun (by ``crackops rerun`` or ``--retries``) is followed: the report shows, and the
    wait is for, the last attempt of each."""
    reg = registry or Registry()
    ids = list(job_ids)
    start = time.monotonic()
    while True:
        rep = status(ids, registry=reg)
        for _ in range(100):   # follow rerun chains (a chain is never this long)
            last = [_last_attempt(r, reg) for r in rep.runs]
            if all(a.run_key == r.run_key for a, r in zip(last, rep.runs)):
                break
            ids = [a.shown_id for a in last]
            retried = rep.retried
            rep = status(ids, registry=reg)
            rep.retried = retried + rep.retried
        yield rep
        if all(r.state in TERMINAL_STATES for r in rep.runs):
            return
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise StateError(f"runs still unfinished after {timeout_s:.0f} s",
                             "check them with crackops status; they keep running")
        time.sleep(poll_s)


def _last_attempt(run: Run, reg: Registry) -> Run:
    """The newest run of ``run``'s rerun chain (``run`` itself unless it ended and was rerun)."""
    seen = {run.run_key}
    while run.terminal:
        nxt = reg.continued_by(run)
        if nxt is None or nxt.run_key in seen:
            break
        seen.add(nxt.run_key)
        run = nxt
    return run


def collect_finished(runs: list[Run], registry: Registry | None = None) -> list[Run]:
    """``runs`` with the metrics of every COMPLETED run nobody collected yet read in (cheap: one
    manifest each). Runs that cannot be collected are returned as they are."""
    reg = registry or Registry()
    out = list(runs)
    for i, r in enumerate(out):
        if r.state == "COMPLETED" and r.metrics is None:
            try:
                out[i] = collect(r.shown_id, registry=reg).run
            except CrackopsError:
                pass
    return out


def wait_until_done(job_ids: Iterable[str], *, poll_s: float = 2.0, timeout_s: float | None = None,
                    on_report: Callable[[StatusReport], None] | None = None,
                    registry: Registry | None = None) -> list[Run]:
    """Wait until every run has ended (``on_report`` sees each poll's :class:`StatusReport`), then
    collect the completed ones. Returns the runs, in the order asked."""
    reg = registry or Registry()
    last: StatusReport | None = None
    for last in wait(job_ids, poll_s=poll_s, timeout_s=timeout_s, registry=reg):
        if on_report is not None:
            on_report(last)
    return collect_finished(last.runs if last else [], reg)


_EPOCH_RE = re.compile(rb"Epoch (\d+)/(\d+)")


def epoch_progress(run: Run) -> tuple[int, int] | None:
    """(current epoch, max epochs) from a run's .out log, if it has started training."""
    if not run.log_out or not Path(run.log_out).exists():
        return None
    with open(run.log_out, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 32768))
        hits = _EPOCH_RE.findall(f.read())
    return (int(hits[-1][0]), int(hits[-1][1])) if hits else None


def read_log(job_id: str, *, err: bool = False, follow: bool = False, tail: int | None = None,
             poll_s: float = 1.0, registry: Registry | None = None) -> Iterator[str]:
    """A run's log (``.out``, or ``.err`` with ``err``) as text chunks: all of it, its last
    ``tail`` lines, or with ``follow`` everything as it is written until the run ends."""
    reg = registry or Registry()
    path = log_path(job_id, err, reg)
    if not path.exists() and not follow:
        raise NotFoundError(f"{path} does not exist yet", f"the run may still be pending: crackops status {job_id}")
    if tail is not None and not follow:
        yield artifacts.tail(path, tail) + "\n"
        return
    pos = 0
    while True:
        if path.exists():
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
            if chunk:
                yield chunk.decode(errors="replace")
        if not follow:
            return
        if status([job_id], registry=reg).runs[0].terminal:
            if path.exists():
                with open(path, "rb") as f:  # last words
                    f.seek(pos)
                    rest = f.read()
                if rest:
                    yield rest.decode(errors="replace")
            return
        time.sleep(poll_s)


def profiles() -> list[dict[str, Any]]:
    """The resource profiles: name, path, the resources and the ``train`` settings of each."""
    rows = []
    for name, path in list_profiles().items():
        res, train = load_profile(str(path))
        rows.append({"name": name, "path": str(path), **{k: v for k, v in res.to_dict().items() if k != "profile"},
                     "train": train})
    return rows


# ------------------------------------------------------------------ compare and report

def runs_with_metrics(job_ids: Iterable[str] | None = None, registry: Registry | None = None) -> list[Run]:
    """The runs (all when no ids), states refreshed, finished runs collected if nobody did yet."""
    reg = registry or Registry()
    return collect_finished(status(list(job_ids) if job_ids else None, registry=reg).runs, reg)


def check_plot_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UsageError(f"--plot {p}: the plot is a PNG file", f"e.g. --plot {p.with_suffix('.png').name}")
    if not p.expanduser().resolve().parent.is_dir():
        raise UsageError(f"--plot {p}: folder {p.expanduser().resolve().parent} does not exist",
                         "create it, or pick a path in an existing folder")
    return p


def compare(job_ids: Iterable[str] | None = None, *, states: Iterable[str] | None = None,
            name: str | None = None, since: str | float | None = None, where: Iterable[str] | None = None,
            sort: str | None = None, group: bool = True, plot: str | Path | None = None,
            all_attempts: bool = False, registry: Registry | None = None) -> Comparison:
    """Compare runs (all when no ids; refreshed and collected first), filtered by state, name glob,
    submit time and config values (see :func:`crackops.compare.filter_runs`), sorted by ``sort``,
    seed groups reduced unless ``group`` is False. A run that a rerun among them continues is left
    out (only the final attempt of each chain counts; ``cmp.earlier_attempts`` names the others)
    unless ``all_attempts``. With ``plot``, also save the comparison figure as that PNG
    (``cmp.plot_path``) when there are runs."""
    if plot is not None:
        check_plot_path(plot)
    runs = runs_with_metrics(job_ids, registry)
    earlier: list[Run] = []
    if not all_attempts:
        runs, earlier = final_attempts(runs)
    cmp = compare_runs(filter_runs(runs, states=states, name=name, since=since, where=where),
                       sort=sort, group=group)
    cmp.earlier_attempts = [r.shown_id for r in earlier]
    if plot is not None and cmp.rows:
        from crackops.report.plots import compare_figure

        cmp.plot_path = compare_figure(cmp, plot)
    return cmp


def default_report_name(job_ids: list[str]) -> str:
    if len(job_ids) == 1:
        return f"report-{job_ids[0]}.html"
    if len(job_ids) <= 3:
        return "report-" + "_".join(job_ids) + ".html"
    return f"report-{job_ids[0]}-and-{len(job_ids) - 1}-more.html"


@dataclass
class ReportResult:
    path: Path
    runs: list[Run]

    @property
    def unfinished(self) -> list[str]:
        return [r.job_id for r in self.runs if not r.terminal]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "job_ids": [r.job_id for r in self.runs], "unfinished": self.unfinished}


def report(job_ids: Iterable[str], path: str | Path | None = None, *, max_errors: int = 48,
           registry: Registry | None = None) -> ReportResult:
    """Write one self-contained HTML report about runs (refreshed and collected first), in the
    order given; ``path`` defaults to ``report-<job_id>.html`` in the current folder."""
    if max_errors < 0:
        raise UsageError(f"--max-errors {max_errors} must be 0 or more", "e.g. --max-errors 48")
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        raise UsageError("no runs given", "pass one or more job ids (see crackops status)")
    p = Path(path) if path is not None else Path(default_report_name(ids))
    try:
        parent = p.expanduser().resolve().parent
        p_is_dir = p.expanduser().is_dir()
    except (OSError, RuntimeError, ValueError) as e:   # a name too long (10,000-digit job id), "~nobody/", NUL
        raise UsageError(f"cannot write a report to {p}: {getattr(e, 'strerror', None) or e}",
                         "pass -o FILE with a shorter name") from None
    if not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist", "create it, or pass -o FILE in an existing folder")
    if p_is_dir:
        raise UsageError(f"{p} is a folder", f"pass a file name, e.g. -o {p / default_report_name(ids)}")
    runs = runs_with_metrics(ids, registry)
    order = {j: i for i, j in enumerate(ids)}
    runs.sort(key=lambda r: order.get(r.shown_id, order.get(r.job_id, 0)))
    from crackops.report.html import write_report

    return ReportResult(path=write_report(runs, p, max_errors=max_errors), runs=runs)


# ------------------------------------------------------------------ predict

def _run_model(job_id: str, registry: Registry | None = None) -> Path:
    """A finished run's ``best.h5``, refreshing its state once if needed."""
    reg = registry or Registry()
    run = reg.get(job_id)  # NotFoundError with a hint when unknown
    if not run.terminal:
        run = refresh([run], reg).runs[0]
    if not run.terminal:
        raise StateError(f"run {run.job_id} is still {run.state}: it has no final model yet",
                         f"wait for it: crackops wait {run.job_id}")
    if run.state != "COMPLETED":
        raise StateError(f"run {run.job_id} ended {run.state}: it left no usable model",
                         f"see why: crackops status {run.job_id}")
    best = Path(run.out_dir) / "best.h5"
    if not best.is_file():
        raise NotFoundError(f"run {run.job_id} has no model: {best} is missing",
                            f"check its artifacts: crackops collect {run.job_id}")
    return best


def model_path(ref: str | Path, registry: Registry | None = None) -> tuple[Path, str | None]:
    """A model file, a run folder (its ``best.h5``) or a job id (that run's ``best.h5``) ->
    ``(path, job_id or None)``. Loads no TensorFlow."""
    from crackops.ml.predict import resolve_model_path

    return resolve_model_path(ref, find_run=lambda job_id: _run_model(job_id, registry))


class Progress:
    """What ``predict`` reports progress to (the CLI's progress bar); does nothing by default."""

    def __init__(self, what: str):
        self.what = what

    def total(self, n: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class PredictResult:
    rows: list[dict[str, Any]]        # one per file: path, prob_crack, label, error (+ gradcam)
    model_path: str
    job_id: str | None
    image_size: int
    threshold: float
    explain_dir: str | None = None

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["error"]]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["error"]]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_path, "job_id": self.job_id, "image_size": self.image_size,
                "threshold": self.threshold, "rows": self.rows}


def predict(model: str | Path, paths: Iterable[str | Path], *, threshold: float = 0.5, batch_size: int = 32,
            explain_dir: str | Path | None = None, progress: Callable[[str], Progress] = Progress,
            on_model: Callable[[PredictResult], None] | None = None,
            registry: Registry | None = None) -> PredictResult:
    """Crack probabilities for image files and folders (searched recursively) with a model file,
    a run folder or a finished run's job id; with ``explain_dir``, a Grad-CAM overlay per image
    there too (``row["gradcam"]``). Unusable files become rows with an ``error`` (``result.ok``
    is empty when none could be predicted). ``progress(what)`` makes a progress
    reporter per phase; ``on_model`` is called once the model is loaded."""
    from crackops.ml.predict import check_threshold, list_images, load_model, predict as run_predict

    paths = [str(p) for p in paths]
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size} must be positive", "e.g. --batch-size 32")
    threshold = check_threshold(threshold)
    path, job_id = model_path(model, registry)  # fail fast, before TensorFlow loads
    entries = list_images(paths)
    if not any(problem is None for _, problem in entries):
        missing = [p for p, problem in entries if problem == "no such file or folder"]
        if missing and len(missing) == len(paths):
            raise NotFoundError(f"no such file or folder: {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""),
                                "pass image files or folders of images")
        raise CheckError("no image files found in " + ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else ""),
                         "pass .jpg/.jpeg/.png/.bmp/.gif files or folders holding them")
    loaded = load_model(path)
    result = PredictResult(rows=[], model_path=loaded.path, job_id=job_id, image_size=loaded.image_size,
                           threshold=threshold, explain_dir=str(explain_dir) if explain_dir else None)
    if on_model is not None:
        on_model(result)
    bar = progress("predicting")
    try:
        result.rows = run_predict(loaded, paths, threshold=threshold, batch_size=batch_size,
                                  progress=bar.advance, total_callback=bar.total)
    finally:
        bar.close()
    if explain_dir:
        _explain(loaded, result, explain_dir, batch_size, progress)
    return result


def _explain(loaded: Any, result: PredictResult, explain_dir: str | Path, batch_size: int,
             progress: Callable[[str], Progress]) -> None:
    ok = result.ok
    written: dict[str, Any] = {}
    if ok:
        from crackops.ml.explain import explain as run_explain

        bar = progress("heat maps")
        bar.total(len(ok))
        try:
            written = run_explain(loaded, [r["path"] for r in ok], explain_dir, batch_size=batch_size,
                                  progress=bar.advance)
        finally:
            bar.close()
    for r in result.rows:
        png = written.get(r["path"])
        r["gradcam"] = str(png) if png else None


# ------------------------------------------------------------------ sweeps

def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["learning_rate=1e-3,3e-4", "batch_size=32,64"]`` -> ``{key: [typed values]}``, validated."""
    from crackops.sweeps import parse_grid as parse

    return parse(items)


def sweep(config: TrainConfig, grid: dict[str, Any], seeds: int | list[int] = 1,
          resources: Resources | None = None, *, backend: str = "local", name: str | None = None,
          max_parallel: int | None = None, logs_dir: str | Path | None = None,
          out_root: str | Path | None = None, fn: Callable[[TrainConfig], Any] | None = None,
          check_data: bool = True, retries: int | None = None, registry: Registry | None = None,
          argv: list[str] | None = None):
    """Submit a grid of ``config`` values (``{key: [values]}``) times ``seeds`` as one recorded
    sweep: Slurm job arrays throttled to ``max_parallel`` (split at MaxArraySize), or a local
    queue running at most ``max_parallel`` at once. Returns a :class:`crackops.sweeps.SweepHandle`
    (``.runs``, ``.status()``, ``.wait()``, ``.compare()``, ``.cancel()``). Everything is validated
    before anything is submitted. ``retries``: as for :func:`submit`, for every run (a rerun joins
    the sweep)."""
    from crackops.sweeps import submit as submit_sweep

    return submit_sweep(config, grid, seeds, resources, backend=backend, name=name, max_parallel=max_parallel,
                        logs_dir=logs_dir, out_root=out_root, fn=fn, check_data=check_data,
                        retries=check_retries(retries), registry=registry, argv=argv)


def sweep_dry_run(config: TrainConfig, grid: dict[str, Any], seeds: int | list[int] = 1,
                  resources: Resources | None = None, *, backend: str = "local", name: str | None = None,
                  max_parallel: int | None = None, logs_dir: str | Path | None = None, check_data: bool = True):
    """What :func:`sweep` would submit (runs, arrays, sbatch script); submits and records nothing."""
    from crackops.sweeps import dry_run as plan_sweep

    return plan_sweep(config, grid, seeds, resources, backend=backend, name=name, max_parallel=max_parallel,
                      logs_dir=logs_dir, check_data=check_data)


def get_sweep(name: str, registry: Registry | None = None):
    """The handle of a recorded sweep, by name or id."""
    from crackops.sweeps import SweepHandle

    reg = registry or Registry()
    return SweepHandle(reg.get_sweep(name), reg)


def compare_sweeps(names: Iterable[str], *, sort: str | None = None,
                   registry: Registry | None = None) -> Comparison:
    """Compare the runs of several sweeps: the usual comparison, with the seed groups kept apart
    by sweep and ``across_sweeps`` lining up the grid points the sweeps share (each with whether
    the gap beats the seed noise). Sweep ids in it are replaced by the sweeps' names."""
    reg = registry or Registry()
    handles = [get_sweep(n, reg) for n in dict.fromkeys(names)]
    ids = [r.shown_id for h in handles for r in h.runs]
    if not ids:
        raise NotFoundError(f"the sweeps {', '.join(h.sweep.name for h in handles)} have no runs",
                            "see them: crackops status --sweep NAME")
    cmp = compare(ids, sort=sort, registry=reg)
    names_by_id = {h.sweep.sweep_id: h.sweep.name for h in handles}
    for g in cmp.groups:
        g.sweep_id = names_by_id.get(g.sweep_id, g.sweep_id) if g.sweep_id else None
    for p in cmp.across_sweeps:
        p["best_sweep"] = names_by_id.get(p["best_sweep"], p["best_sweep"])
        for g in p["groups"]:
            g["sweep"] = names_by_id.get(g.pop("sweep_id"), None)
    return cmp


def sweeps(registry: Registry | None = None) -> list[Any]:
    """Every recorded sweep (oldest first)."""
    return (registry or Registry()).list_sweeps()


def import_runs(paths: Iterable[str | Path], registry: Registry | None = None) -> Any:
    """Record the ended runs found in out folders that the registry lacks (``crackops.importer``),
    then read the completed ones' results as ``collect`` does (artifacts checked)."""
    from crackops import importer

    reg = registry or Registry()
    rep = importer.import_runs(paths, reg)
    rep.imported = collect_finished(rep.imported, reg)
    return rep
