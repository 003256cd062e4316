"""Slurm backend: submit through submitit, read states with one sacct call, fall back to squeue.

Submission
    ``submitit.SlurmExecutor`` writes and submits the sbatch script; the pickled call is
    ``sub.fn(config)`` with ``config.job_id = None`` (the job names its ``out/<job_id>`` from
    ``SLURM_JOB_ID``). submitit's folder (pickles, result pickles, the sbatch script) is
    ``$CRACKOPS_HOME/submitit/<job_id>/``: like the venv and the out dir, it must be on a
    filesystem the compute nodes see.

Logs: ``use_srun=False`` (the decision the project needed)
    With submitit's default ``use_srun=True`` the batch script runs ``srun --output <submitit
    folder>/%j_%t_log.out ...``, so the task's output goes to submitit's own files whatever
    ``#SBATCH --output`` says. crackops runs the Python process directly in the batch step
    (``use_srun=False``) and sets ``--output``/``--error`` to ``<logs_dir>/<job_name>_%j.out`` /
    ``.err`` (``%A_%a`` for arrays). Slurm itself creates those files when the job starts, so
    they hold everything the job prints (tracebacks included) and exist even when Python never
    gets going; nothing has to be linked once the id is known. What is given up: ``job.stdout()``
    of submitit (crackops reads its own files) and submitit's USR2 pre-timeout signal (Slurm
    signals job steps, not the batch shell), which only matters for ``Checkpointable`` callables,
    which crackops does not use; a requeueable run asks for ``--signal=B:USR1@120`` instead (to
    the batch step's task, see "Signals" and "Time limit"). A side benefit: no nested ``srun`` that would pick up
    stale ``SLURM_*`` variables.

Signals: the batch script starts Python with ``exec`` (``job_python()``)
    On cancel, at the time limit and on a requeue, Slurm sends SIGTERM only to the batch step's
    own task, the script's shell (proctrack/cgroup signals the processes whose parent is
    slurmstepd; only SIGKILL reaches the rest). When the shell died of it, slurmstepd saw the step
    end and SIGKILLed the job's cgroup at once: the Python process never ran its handler, and
    ``status.json`` said ``running`` under a CANCELLED job. With ``exec`` the Python process *is*
    that task: it gets the SIGTERM, writes ``phase: interrupted`` and exits, and Slurm's
    ``KillWait`` SIGKILL only ends what might be left.

Time limit: the job requeues itself (``crackops.job``)
    A requeueable run (``--requeue``, unless ``max_attempts`` is 1) reads its time left with
    ``squeue %L`` when it starts and checks it after every training batch: when the next batch,
    a validation and a backup would not fit before the limit (plus
    ``contract.REQUEUE_MARGIN_S``), it backs up (mid-epoch if need be), runs ``scontrol requeue``
    on itself and exits at once, from inside the training loop. ``--signal=B:USR1@120``
    (``limit_signal``, limits of 4 minutes or more) is Slurm's own warning, used only when
    ``squeue`` could not be read.

Submitting from inside a Slurm job
    ``SLURM_*`` variables (except ``SLURM_CONF``) are removed from the environment while sbatch
    runs, and so from the environment the new job inherits: a parent's ``SLURM_ARRAY_TASK_ID``
    would otherwise make the child write into the parent's out folder.

States (``refresh``)
    One ``sacct`` call for all runs (``-j id,id,...``, arrays collapsed to their array id),
    ``--starttime=now-<N>seconds``: the oldest run's age plus a day, a duration before sacct's own
    clock (clock skew changes nothing). A row is matched to its run by the run's own submitit
    folder in sacct's ``SubmitLine`` (by submit time and job name where Slurm lacks that field), so
    a reused id never lends an old state. No row yet, or PENDING, is
    "not finished". A finished job's ``status.json`` (the run contract's, written by ``crackops.job``) refines the
    state: Slurm's COMPLETED with ``phase: failed`` becomes FAILED with the exception line as the
    reason. If sacct fails (accounting disabled, slurmdbd down, timeout), one ``squeue --states=all``
    call covers the jobs the controller still knows, and ``status.json`` the rest; the result's
    ``source`` is ``squeue+artifacts`` and its ``warning`` quotes sacct's error.

Controller down
    sacct is answered by slurmdbd, not by the controller: while slurmctld is down (a restart) sacct
    still works but shows unfinished jobs as the controller last reported them, and squeue,
    sbatch and scancel fail (squeue only after about 20 s of retries). ``controller_problem``
    asks with one ``scontrol ping`` (milliseconds, up or down); ``crackops.api.refresh`` calls it
    before refreshing unfinished runs, and ``status`` then says so and exits 5. When sacct fails
    too (slurmdbd down as well), the fallback skips squeue for a controller just found down and
    reads the artifacts. Jobs keep running on their nodes and end normally once the controller is
    back (tests/test_faults.py).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import time
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any, Sequence

from crackops.backends import slurm_adopt, slurm_batch
from crackops.backends.base import Backend, Batch, BatchPlan, Poll, RefreshResult, StateUpdate, Submission, Submitted
from crackops.backends.polling import throttled_poll
from crackops.backends.slurm_sbatch import (  # noqa: F401  (the batch script's names, importable from here too)
    _SETUP_KEY, RESERVED_OPTIONS, _scheduler_env, _sbatch_error, _user_name, array_script, check_slurm_conf,
    clean_slurm_env, job_python, limit_signal, make_sbatch_string, option_key, reserved_option, sbatch_hint,
    sbatch_parameters, sbatch_script)
from crackops.backends.slurm_adopt import submitit_folder
from crackops.backends.submitit_import import import_submitit
from crackops.config import Resources
from crackops.errors import BackendError, UsageError
from crackops.fmt import env_number
from crackops.contract import read_status
from crackops.paths import log_paths
from crackops.registry import Run
from crackops.slurm.sacct import (
    TERMINAL,
    SacctJob,
    SqueueJob,
    SACCT_FIELDS,
    build_sacct_commands,
    build_scancel_command,
    build_squeue_command,
    index_jobs,
    lacks_field,
    parse_sacct,
    parse_squeue,
    sacct_error_line,
    sacct_starttime,
    select_job,
    squeue_unknown_ids,
)
from crackops.slurm.adopt import build_find_sacct_command, build_find_squeue_command, match_submissions
from crackops.slurm.limits import MemCap, memory_cap
from crackops.slurm.units import format_duration

#: Seconds any scheduler command may take before crackops gives up on it.
COMMAND_TIMEOUT_S = 60.0

#: A job sacct has no record of this long after its submission (lost submission, purged record)
#: is UNKNOWN, with why, instead of PENDING forever; ``CRACKOPS_NO_RECORD_GRACE`` (seconds) changes
#: it. Records normally appear within seconds. UNKNOWN is not final: crackops keeps asking.
NO_RECORD_GRACE_S = 600

#: How a refresh that found slurmctld not answering begins its message (the registry keeps it, so
#: processes served from the registry can say so too).
CONTROLLER_DOWN = "the Slurm controller (slurmctld) does not answer"


def no_record_grace_s() -> float:
    return env_number("CRACKOPS_NO_RECORD_GRACE", NO_RECORD_GRACE_S, "seconds",
                      "e.g. CRACKOPS_NO_RECORD_GRACE=600 (the default), or unset it")

def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [l for l in str(text).strip().splitlines() if l.strip()]
    return lines[0].strip() if lines else None


class SlurmBackend(Backend):
    name = "slurm"
    finds_submissions = True

    def __init__(self, *, sacct: str = "sacct", squeue: str = "squeue", scancel: str = "scancel",
                 scontrol: str = "scontrol", timeout_s: float = COMMAND_TIMEOUT_S):
        self.sacct, self.squeue, self.scancel, self.scontrol = sacct, squeue, scancel, scontrol
        self.timeout_s = timeout_s
        self.clock = time.time                 # "now", for the no-record grace period and sacct's window
        self.sacct_fields = SACCT_FIELDS       # without SubmitLine on a Slurm that lacks it
        self._down: tuple[float, str] | None = None   # (when, why): the last ping found the controller down

    def check(self, resources: Resources) -> None:
        """Also refuse, before anything is read or submitted, extra sbatch options crackops sets."""
        super().check(resources)
        for k in (resources.extra or {}):
            if k != _SETUP_KEY:
                option_key(k)

    # ------------------------------------------------------------ commands
    def _run(self, cmd: Sequence[str]) -> tuple[int, str, str]:
        """Run a scheduler command; (returncode, stdout, stderr). Never raises for its failures."""
        try:
            p = subprocess.run(list(cmd), capture_output=True, text=True, env=_scheduler_env(),
                               timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            return 127, "", f"{cmd[0]}: command not found"
        except subprocess.TimeoutExpired:
            return 124, "", f"{cmd[0]} did not answer within {self.timeout_s:.0f} s"
        except OSError as e:
            return 126, "", f"{cmd[0]}: {e}"
        return p.returncode, p.stdout, p.stderr

    # ------------------------------------------------------------ submit
    def _executor(self, params: dict[str, Any], folder: Path | None = None):
        try:
            submitit = import_submitit()
        except ImportError:  # pragma: no cover - a dependency
            raise BackendError("submitit is not installed", "pip install submitit") from None
        if shutil.which("sbatch") is None:
            raise BackendError("sbatch not found: this machine is not a Slurm submit host",
                               "run on the cluster's login node, or use --backend local")
        try:
            ex = submitit.SlurmExecutor(folder=folder or submitit_folder(), python=job_python())
            ex.update_parameters(**params)
        except RuntimeError as e:  # no srun on PATH
            raise BackendError(f"submitit cannot use Slurm here: {e}", "check that srun/sbatch are on PATH") from None
        except ValueError as e:
            raise UsageError(f"bad sbatch parameters: {_first_line(str(e))}", "check the profile's resources") from None
        return ex

    @staticmethod
    def _job_config(sub: Submission):
        # the job takes its id from SLURM_JOB_ID; out_root absolute so the job's cwd does not matter
        return dataclasses.replace(sub.config, job_id=None,
                                   out_root=str(Path(sub.config.out_root).expanduser().resolve()))

    def submit(self, sub: Submission) -> Submitted:
        return self._submit([sub], array=False)[0]

    def submit_array(self, subs: Sequence[Submission], parallelism: int | None = None,
                     folder_id: str | None = None) -> list[Submitted]:
        """Many runs as one Slurm job array (one sbatch), ids ``<array>_<i>`` in order.
        All must share resources and logs_dir. ``parallelism``: tasks running at once (``%N``).
        ``folder_id``: the array's own submitit folder (:func:`submitit_folder`), so that the
        batch script's path names it (a sweep's array, found again by ``crackops.slurm.adopt``)."""
        subs = list(subs)
        if not subs:
            return []
        first = subs[0]
        if any(s.resources.to_dict() != first.resources.to_dict() or Path(s.logs_dir) != Path(first.logs_dir)
               for s in subs):
            raise UsageError("an array needs the same resources and logs dir for every run",
                             "submit the runs one by one")
        if len(subs) == 1:
            return self._submit(subs, array=False, folder_id=folder_id)
        return self._submit(subs, array=True, parallelism=parallelism, folder_id=folder_id)

    def _submit(self, subs: list[Submission], *, array: bool, parallelism: int | None = None,
                folder_id: str | None = None) -> list[Submitted]:
        first = subs[0]
        res = first.resources.validate()
        logs_dir = Path(first.logs_dir).expanduser().resolve()
        logs_dir.mkdir(parents=True, exist_ok=True)     # Slurm cannot create it: the job would vanish
        check_slurm_conf()
        params = sbatch_parameters(res, logs_dir, array=array, max_attempts=first.config.max_attempts)
        if array and parallelism:
            params["array_parallelism"] = max(1, int(parallelism))
        sid = folder_id or (first.config.submission_id if not array else None)
        ex = self._executor(params, submitit_folder(sid))
        try:
            from submitit.core.utils import FailedJobError, FailedSubmissionError
        except ImportError:  # pragma: no cover
            FailedJobError = FailedSubmissionError = RuntimeError  # type: ignore
        sink = io.StringIO()   # submitit prints sbatch's stderr itself; it goes into our message instead
        try:
            with clean_slurm_env(), redirect_stderr(sink):
                if array:
                    with ex.batch():
                        jobs_ = [ex.submit(s.fn, self._job_config(s)) for s in subs]
                    jobs = list(jobs_)
                else:
                    jobs = [ex.submit(first.fn, self._job_config(first))]
        except (FailedJobError, FailedSubmissionError, subprocess.CalledProcessError) as e:
            why = _sbatch_error(str(e))
            raise BackendError(f"sbatch refused the job: {why}", sbatch_hint(why)) from None
        except OSError as e:
            raise BackendError(f"could not submit: {e}") from None
        out: list[Submitted] = []
        for s, job in zip(subs, jobs):
            job_id = str(job.job_id)
            log_out, log_err = log_paths(logs_dir, job_id, res.job_name)
            out.append(Submitted(job_id=job_id, log_out=log_out, log_err=log_err, extra={
                "submitit_folder": str(job.paths.folder),
                "sbatch_script": str(job.paths.submission_file),
                "out_dir": str(Path(self._job_config(s).out_root) / job_id),
            }))
        return out

    # ------------------------------------------------------------ limits
    def memory_limit(self, resources: Resources) -> MemCap | None:
        """The partition's memory limit for ``resources`` (``scontrol show partition`` and
        ``show node``, read by :func:`crackops.slurm.limits.memory_cap`); None when scontrol fails."""
        rc_p, parts, _ = self._run([self.scontrol, "-o", "show", "partition"])
        if rc_p != 0:
            return None
        rc_n, nodes, _ = self._run([self.scontrol, "-o", "show", "node"])
        return memory_cap(parts, nodes if rc_n == 0 else "", resources.partition, int(resources.cpus))

    # ------------------------------------------------------------ dry run
    def dry_run(self, sub: Submission) -> str:
        """The sbatch script submitit would write for ``sub`` (no Slurm needed, nothing submitted)."""
        res = sub.resources.validate()
        logs_dir = Path(sub.logs_dir).expanduser().resolve()
        params = sbatch_parameters(res, logs_dir, max_attempts=sub.config.max_attempts)
        try:
            return sbatch_script(params)
        except (TypeError, ValueError) as e:
            raise UsageError(f"bad sbatch parameters: {_first_line(str(e))}", "check the profile's resources") from None

    def dry_run_batch(self, subs: Sequence[Submission], plan: BatchPlan) -> str:
        """The first array's sbatch script."""
        if not subs or not plan.groups:
            return ""
        g = plan.groups[0]
        first = subs[g["indices"][0]]
        return array_script(first.resources, Path(first.logs_dir).expanduser().resolve(), len(g["indices"]),
                            plan.max_parallel, max_attempts=first.config.max_attempts)

    # ------------------------------------------------------------ many runs: job arrays
    def plan_batch(self, resources: Sequence[Resources], max_parallel: int | None) -> BatchPlan:
        return slurm_batch.plan_arrays(resources, max_parallel)

    def note_groups(self, plan: BatchPlan, note_id: str) -> list[dict[str, Any]]:
        return slurm_batch.note_groups(plan, note_id)

    def submit_batch(self, subs: Sequence[Submission], plan: BatchPlan, ids: Sequence[str], batch_id: str,
                     note_id: str | None = None) -> Batch:
        return slurm_batch.submit_arrays(self, subs, plan, note_id or batch_id)

    # ------------------------------------------------------------ polling policy
    def poll(self, registry: Any, runs: list[Run], now: float) -> Poll:
        """The shared sacct budget (``crackops.slurm.throttle``): one call per interval for all
        crackops processes of the user, backed off after failures and while the controller is down."""
        return throttled_poll(registry, runs, now, command="sacct", what="sacct", lease_s=self.timeout_s + 5.0,
                              down_prefix=CONTROLLER_DOWN)

    # ------------------------------------------------------------ cancel
    def cancel(self, runs: list[Run]) -> None:
        ids = [r.job_id for r in runs]
        if not ids:
            return
        rc, _out, err = self._run(build_scancel_command(ids, self.scancel))
        if rc == 0:
            return
        # jobs that already ended are not an error for "cancel"
        bad = [l for l in err.splitlines() if l.strip()
               and "already completing or completed" not in l and "Invalid job id specified" not in l]
        if bad or rc in (124, 126, 127):
            raise BackendError(f"scancel failed: {sacct_error_line(chr(10).join(bad) or err, rc)}",
                               "check the job ids with squeue / sacct")

    # ------------------------------------------------------------ lost submissions
    def find_submissions(self, pending: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
        """Jobs of submissions whose submitter died between sbatch and the registry write, by the
        submission's folder in the batch script's path: sacct (SubmitLine), then squeue (the
        script) for what sacct did not show. One or two calls for all of them."""
        if not pending:
            return {}, None
        sids = [p["submission_id"] for p in pending]
        names = [p["job_name"] for p in pending]
        starttime = sacct_starttime((p["created_at"] for p in pending), now=self.clock())
        rc, out, err = self._run(build_find_sacct_command(names, starttime, self.sacct))
        found = match_submissions(out, sids) if rc == 0 else {}
        sacct_error = None if rc == 0 else sacct_error_line(err, rc)
        rest = [sid for sid in sids if sid not in found]
        if not rest:
            return found, None
        rc, out, err = self._run(build_find_squeue_command(names, self.squeue))
        if rc == 0:
            found.update(match_submissions(out, rest))
        # only sacct remembers jobs that ended long ago: without it, "not found" proves nothing
        return found, (f"sacct failed: {sacct_error}" if sacct_error else None)

    def no_record_grace_s(self) -> float:
        return no_record_grace_s()

    def search_poll(self, registry: Any, now: float) -> Poll:
        """The search for lost submissions (sacct, then squeue) has a budget of its own, shared by
        every crackops process like sacct's: at most one search per interval, backed off after
        failures (a wait polling every 2 s no longer searches every 2 s)."""
        return throttled_poll(registry, [], now, command="sacct-find", what="the search for lost submissions",
                              lease_s=2 * self.timeout_s + 5.0)

    def adopt(self, submission_id: str, job_id: str) -> dict[str, Any]:
        return slurm_adopt.adopt_job(submission_id, job_id)

    def adopt_group(self, folder_id: str, group_id: str, job_ids: Sequence[str],
                    configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return slurm_adopt.adopt_array(folder_id, group_id, job_ids, configs)

    # ------------------------------------------------------------ refresh
    def refresh(self, runs: list[Run]) -> RefreshResult:
        if not runs:
            return RefreshResult(updates={}, source="sacct", calls=0)
        ids = [r.job_id for r in runs]
        starttime = sacct_starttime((r.submitted_at for r in runs), now=self.clock())
        texts, calls, failure, fields = self._sacct(ids, starttime)
        if failure is None:
            index = index_jobs(parse_sacct("\n".join(texts), fields))
            updates: dict[str, StateUpdate] = {}
            grace = no_record_grace_s()
            now = self.clock()
            unrecorded: list[Run] = []
            for run in runs:
                job = select_job(index, run.job_id, submitted_at=run.submitted_at, job_name=_job_name(run),
                                 marker=submission_marker(run))
                if job is None and now - run.submitted_at > grace:
                    unrecorded.append(run)
                    continue
                u = self._from_sacct(run, job)
                if u is not None:
                    updates[run.job_id] = u
            if unrecorded:
                calls += self._no_record(unrecorded, updates, grace)
            return RefreshResult(updates=updates, source="sacct", calls=calls)
        return self._fallback(runs, failure, calls)

    def _sacct(self, ids: list[str], starttime: str) -> tuple[list[str], int, str | None, tuple[str, ...]]:
        """sacct's output for ``ids`` (one call per 5,000 ids): (texts, calls, failure, fields asked)."""
        texts: list[str] = []
        calls = 0
        fields = self.sacct_fields
        for cmd in build_sacct_commands(ids, starttime, self.sacct, fields=fields):
            calls += 1
            rc, out, err = self._run(cmd)
            if rc != 0 and "SubmitLine" in fields and lacks_field(err, "SubmitLine"):
                # a Slurm older than SubmitLine (21.08): its rows are matched by submit time instead
                self.sacct_fields = tuple(f for f in fields if f != "SubmitLine")
                more, n, failure, fields = self._sacct(ids, starttime)
                return more, calls + n, failure, fields
            if rc != 0:
                return texts, calls, sacct_error_line(err, rc), fields
            texts.append(out)
        return texts, calls, None, fields

    def controller_problem(self) -> str | None:
        """None when slurmctld answers ``scontrol ping``, else what is wrong (one fast call)."""
        rc, out, err = self._run([self.scontrol, "ping"])
        self._down = None
        if (rc == 0 and "DOWN" not in out) or rc == 127:   # up, or no scontrol here to ask
            return None
        said = "; ".join(l.strip() for l in out.splitlines() if l.strip().startswith("Slurmctld(")) \
            or sacct_error_line(err, rc)
        why = f"{CONTROLLER_DOWN}: scontrol ping says {said!r}"
        self._down = (time.monotonic(), why)
        return why

    def _no_record(self, runs: list[Run], updates: dict[str, StateUpdate], grace: float) -> int:
        """Runs sacct has no record of past the grace period: squeue's state if the controller
        still lists them, UNKNOWN with why otherwise. One squeue call; returns the calls made."""
        rc, out, err = self._run(build_squeue_command([r.job_id for r in runs], self.squeue))
        queue = parse_squeue(out) if rc == 0 else {}
        asked = ("squeue does not list it either" if rc == 0 or squeue_unknown_ids(err)
                 else f"squeue failed: {sacct_error_line(err, rc)}")
        for run in runs:
            q = queue.get(run.job_id)
            if q is not None and not (_job_name(run) and q.name and q.name != _job_name(run)):
                updates[run.job_id] = self._from_squeue(run, q)
                continue
            age = format_duration(max(0.0, self.clock() - run.submitted_at))
            updates[run.job_id] = StateUpdate(
                state="UNKNOWN",
                reason=(f"no accounting record {age} after submission (grace {grace / 60:.0f} min) and {asked}: "
                        "the submission may have been lost or its record purged; crackops keeps asking "
                        f"(check: sacct -j {run.job_id} --starttime=now-7days)"))
        return 1


    def _from_sacct(self, run: Run, job: SacctJob | None) -> StateUpdate | None:
        if job is None:
            return None  # no row yet: not finished, nothing new
        state = job.state
        if job.incomplete:
            return StateUpdate(state="COMPLETING", reason=f"Slurm says {job.state}; its accounting record "
                               "is not complete yet", started_at=job.start)
        if state in ("PENDING", "REQUEUED"):
            st = read_status(run.out_dir) or {}
            if st.get("phase") in ("requeued", "interrupted"):  # an earlier attempt ended; the next waits
                why = st.get("requeue_reason") or st.get("error") or "requeued"
                return StateUpdate(state="REQUEUED", reason=f"attempt {int(st.get('attempt') or 1) + 1} "
                                   f"waiting ({job.reason or 'queued'}); attempt {st.get('attempt')} stopped: {why}")
            return StateUpdate(state="PENDING", reason=job.reason)
        status = read_status(run.out_dir) if state in TERMINAL else None
        state, reason = _combine(state, status, exit_code=job.exit_code, run=run, cancelled_by=job.cancelled_by,
                                 timelimit_s=job.timelimit_s)
        return StateUpdate(state=state, reason=reason,
                           exit_code=job.exit_code if state in TERMINAL else None,
                           started_at=job.start, ended_at=job.end if state in TERMINAL else None,
                           accounting=job.accounting(state))

    def _fallback(self, runs: list[Run], sacct_error: str, calls: int) -> RefreshResult:
        warning = f"sacct failed: {sacct_error} (showing squeue + artifacts)"
        queue: dict[str, SqueueJob] = {}
        source = "squeue+artifacts"
        if self._down is not None and time.monotonic() - self._down[0] < 30:
            source = "artifacts"    # squeue would retry for ~20 s, then fail
            warning = f"sacct failed: {sacct_error}; {self._down[1]} (showing artifacts only)"
        else:
            calls += 1
            rc, out, err = self._run(build_squeue_command([r.job_id for r in runs], self.squeue))
            if rc == 0:
                queue = parse_squeue(out)
            elif not squeue_unknown_ids(err):
                source = "artifacts"
                warning = (f"sacct failed: {sacct_error}; squeue failed too: {sacct_error_line(err, rc)} "
                           "(showing artifacts only)")
        updates: dict[str, StateUpdate] = {}
        for run in runs:
            q = queue.get(run.job_id)
            if q is not None and _job_name(run) and q.name and q.name != _job_name(run):
                q = None  # same id, another job
            if q is not None:
                updates[run.job_id] = self._from_squeue(run, q)
            else:
                u = _from_artifacts(run, squeue_ok=(source == "squeue+artifacts"))
                if u is not None:
                    updates[run.job_id] = u
        return RefreshResult(updates=updates, source=source, warning=warning, calls=calls, ok=False)

    def _from_squeue(self, run: Run, q: SqueueJob) -> StateUpdate:
        if q.state == "PENDING":
            return StateUpdate(state="PENDING", reason=q.reason)
        status = read_status(run.out_dir) if q.state in TERMINAL else None
        state, reason = _combine(q.state, status, exit_code=None, run=run, cancelled_by=None,
                                 timelimit_s=q.timelimit_s, squeue_reason=q.reason)
        return StateUpdate(state=state, reason=reason, started_at=q.start,
                           ended_at=q.end if state in TERMINAL else None)


def submission_marker(run: Run) -> str | None:
    """What only this run's sbatch line holds: its submitit folder (``<state>/submitit/<submission>/``,
    the folder of the batch script sacct's ``SubmitLine`` names); None for runs recorded without one."""
    folder = (run.extra or {}).get("submitit_folder")
    return str(Path(folder).parent) + "/" if folder else None


def _job_name(run: Run) -> str | None:
    return (run.resources or {}).get("job_name") or None


def _combine(state: str, status: dict[str, Any] | None, *, exit_code: str | None, run: Run,
             cancelled_by: str | None, timelimit_s: float | None,
             squeue_reason: str | None = None) -> tuple[str, str | None]:
    """Slurm's state refined by the job's own ``status.json``; returns (state, reason)."""
    phase = (status or {}).get("phase")
    error = _first_line((status or {}).get("error"))
    where = f"see {run.log_err}" if run.log_err else "see the job's .err log"
    if state == "COMPLETED":
        if phase == "failed":
            return "FAILED", error or "the job reported a failure in status.json"
        return "COMPLETED", None
    if state == "FAILED":
        if phase == "failed" and error:
            return "FAILED", error
        if exit_code and exit_code not in ("0:0",):
            return "FAILED", f"exit code {exit_code}; {where}"
        if squeue_reason and squeue_reason not in ("None",):
            return "FAILED", f"{squeue_reason}; {where}"
        return "FAILED", f"the job failed; {where}"
    if state == "CANCELLED":
        who = _user_name(cancelled_by)
        return "CANCELLED", f"cancelled by {who}" if who else "cancelled"
    if state == "TIMEOUT":
        limit = f" ({format_duration(timelimit_s)})" if timelimit_s else ""
        return "TIMEOUT", f"reached its time limit{limit}"
    if state == "OUT_OF_MEMORY":
        return "OUT_OF_MEMORY", f"killed for using more memory than it asked; {where}"
    if state in TERMINAL:
        return state, f"{state.lower().replace('_', ' ')}; {where}"
    return state, None


def _from_artifacts(run: Run, *, squeue_ok: bool) -> StateUpdate | None:
    """A job the scheduler no longer (or cannot) tell about: what its status.json says."""
    st = read_status(run.out_dir)
    if st is None:
        if not squeue_ok:
            return None  # nothing known: leave the run as it is
        return StateUpdate(state="UNKNOWN", reason=f"not in squeue and no status.json in {run.out_dir}: "
                           "it ended without starting, or long ago; sacct can tell once it works")
    phase = st.get("phase")
    started, ended = st.get("started_at"), st.get("ended_at")
    if phase == "completed":
        return StateUpdate(state="COMPLETED", started_at=started, ended_at=ended)
    if phase == "failed":
        return StateUpdate(state="FAILED", reason=_first_line(st.get("error")) or "failed (status.json)",
                           started_at=started, ended_at=ended)
    if phase == "cancelled":
        return StateUpdate(state="CANCELLED", reason=_first_line(st.get("error")) or "cancelled",
                           started_at=started, ended_at=ended)
    if not squeue_ok:
        return StateUpdate(state="RUNNING", reason="status.json says running; the scheduler could not be asked",
                           started_at=started)
    return StateUpdate(state="UNKNOWN", started_at=started,
                       reason="status.json says running but Slurm no longer lists the job: killed "
                              "(time limit, scancel, memory or node failure?); sacct can tell once it works")
