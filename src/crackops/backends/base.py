"""The interface every backend implements: everything the API and sweeps ask of a scheduler.

A backend starts jobs (a module-level Python function called with one ``TrainConfig``; one run, or
many as one batch: a Slurm job array, a local queue), tells the states of many jobs in one go
under its own polling policy, cancels, resumes, adopts submissions whose submitter died, and says
what the scheduler allows (memory limit, controller problems, dry run). It never touches the
registry: ``crackops.api`` records what the backend returns. Nothing outside ``backends/`` asks a
backend's name: what differs between backends is declared here, as an attribute or a method.

The job side (inside the scheduler's allocation) has its own small interface, :class:`JobControl`
(time left, requeue), which ``crackops.backends.job_control`` picks from the job's environment.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from crackops.config import Resources, TrainConfig
from crackops.errors import UsageError
from crackops.registry import Run
from crackops.slurm.limits import MemCap


@dataclass
class Submission:
    """What to run and with what. ``fn`` must be an importable module-level function."""

    config: TrainConfig
    resources: Resources
    logs_dir: Path
    fn: Callable[[TrainConfig], Any]
    name: str | None = None


@dataclass
class Submitted:
    job_id: str
    log_out: Path
    log_err: Path
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StateUpdate:
    state: str                     # Slurm's names: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT...
    reason: str | None = None      # why it is pending / how it failed
    exit_code: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    accounting: dict[str, Any] | None = None


@dataclass
class RefreshResult:
    updates: dict[str, StateUpdate]
    source: str                    # "local", "sacct", "squeue+registry+artifacts", ...
    warning: str | None = None     # e.g. "sacct failed: ... (showing squeue + artifacts)"
    calls: int = 0                 # scheduler commands run (sacct/squeue, ssh round trips)
    #: False when the scheduler's own record could not be read (a fallback answered): the polling
    #: policy backs off as for a failed call.
    ok: bool = True


@dataclass
class Poll:
    """A backend's answer to "may I ask the scheduler now?" (:meth:`Backend.poll`).

    ``ask`` False: the runs are served from the registry, ``source`` says why; ``warnings`` and
    ``scheduler_down`` are lines for the user. After asking, :meth:`done` records the outcome
    (the next call's time, a back-off)."""

    ask: bool = True
    source: str | None = None
    warnings: list[str] = field(default_factory=list)
    scheduler_down: str | None = None
    on_done: Callable[[bool, str | None], None] | None = None

    def done(self, ok: bool, error: str | None = None) -> None:
        if self.on_done is not None:
            self.on_done(ok, error)


@dataclass
class BatchPlan:
    """How a backend submits many runs at once (a sweep): groups of run indices, each submitted in
    one go (a Slurm job array), ``max_parallel`` running at once."""

    max_parallel: int | None
    groups: list[dict[str, Any]] = field(default_factory=list)   # {"indices": [...], ...}
    #: what the sweep record keeps about the plan (e.g. MaxArraySize)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """What :meth:`Backend.submit_batch` did: (run index, Submitted) for every run submitted, what
    the sweep record keeps (arrays, queue), and the error that stopped it part way (runs before it
    were submitted and are recorded)."""

    submitted: list[tuple[int, Submitted]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None


class JobControl(abc.ABC):
    """What the training job asks of the scheduler it runs under (``crackops.job``)."""

    #: the scheduler's own warning signal before the limit arrives (Slurm's ``--signal``)
    limit_signal = False

    @abc.abstractmethod
    def time_left_s(self) -> float | None:
        """Seconds before the job's time limit, or None when unknown."""

    @abc.abstractmethod
    def requeue(self) -> str | None:
        """Put this job back in the queue (it is killed and starts again); None when done, else why not."""


class Backend(abc.ABC):
    name: str
    #: Whether :meth:`find_submissions` can find a job whose submitter died before recording it
    #: (the API then notes each submission in the registry before submitting).
    finds_submissions = False
    #: Whether the requested CPUs, memory and time are enforced (a scheduler) or only advisory.
    enforces_resources = True
    #: Whether the scheduler's accounting measures a run's CPU and memory use (efficiency).
    measures_usage = True
    #: Whether an ended run can be started again under the same job id (:meth:`resume`).
    resumable = False
    #: Whether data folders and out dirs are paths on this machine (checked, fingerprinted and
    #: written here). A remote backend's paths are the cluster's, checked there.
    paths_are_local = True

    # ------------------------------------------------------------ submitting
    def check(self, resources: Resources) -> None:
        """Refuse resources this backend cannot honour (raise ``UsageError``), before anything runs."""
        if resources.host:
            raise UsageError(f"--host {resources.host} is for a remote backend, not {self.name}",
                             "add --backend ssh, or drop --host")

    @abc.abstractmethod
    def submit(self, sub: Submission) -> Submitted: ...

    def plan_batch(self, resources: Sequence[Resources], max_parallel: int | None) -> BatchPlan:
        """How :meth:`submit_batch` would submit runs with these resources (one per run)."""
        return BatchPlan(max_parallel=max_parallel, groups=[{"indices": list(range(len(resources)))}])

    def submit_batch(self, subs: Sequence[Submission], plan: BatchPlan, ids: Sequence[str], batch_id: str,
                     note_id: str | None = None) -> Batch:
        """Submit many runs (a sweep) as ``plan`` says. ``ids``: a job id the backend may use for
        each run (local queues); ``note_id``: the pending note written before submitting, when
        :attr:`finds_submissions`; ``batch_id``: the sweep's id. The default submits the runs one by one."""
        batch = Batch()
        for i, sub in enumerate(subs):
            try:
                batch.submitted.append((i, self.submit(sub)))
            except Exception as e:  # noqa: BLE001 - the runs before it are submitted: keep them
                batch.error = e
                break
        return batch

    def note_groups(self, plan: BatchPlan, note_id: str) -> list[dict[str, Any]]:
        """What the pending note of a batch keeps per group, to find it again if the submitter
        dies (:meth:`adopt_batch`)."""
        return [{"indices": g["indices"]} for g in plan.groups]

    def after_record(self, batch: Batch) -> None:
        """Called once the batch's runs are recorded (a local queue starts its runner here)."""

    @abc.abstractmethod
    def dry_run(self, sub: Submission) -> str:
        """What would be submitted (the sbatch script, the command line), submitting nothing."""

    def dry_run_batch(self, subs: Sequence[Submission], plan: BatchPlan) -> str:
        """What :meth:`submit_batch` would submit (the first group's script), submitting nothing."""
        return f"{len(subs)} runs, one by one; the first:\n" + self.dry_run(subs[0]) if subs else ""

    # ------------------------------------------------------------ states
    def poll(self, registry: Any, runs: list[Run], now: float) -> Poll:
        """Whether to ask the scheduler about ``runs`` now, under the backend's polling policy
        (Slurm and ssh share one call budget per user through the registry). Always, by default."""
        return Poll()

    @abc.abstractmethod
    def refresh(self, runs: list[Run]) -> RefreshResult:
        """States of ``runs`` (all of this backend, none terminal) in as few scheduler calls as possible."""

    def controller_problem(self) -> str | None:
        """Why the scheduler's controller cannot be reached right now, or None (it answers, or
        the backend has none). Asked only while runs are unfinished."""
        return None

    @abc.abstractmethod
    def cancel(self, runs: list[Run]) -> None: ...

    def resume(self, run: Run) -> dict[str, Any]:
        """Start an ended run's job again under the same job id (it continues from its backup);
        returns what changes in the run's ``extra``. Only where :attr:`resumable`."""
        raise UsageError(f"run {run.shown_id} ran on {self.name}: resume continues runs of a backend that "
                         "can start a job again under its id", f"continue it as a new job: crackops rerun {run.shown_id}")

    # ------------------------------------------------------------ results
    def fetch(self, run: Run) -> dict[str, Any]:
        """Bring the run's artifacts to ``run.out_dir`` on this machine (a remote backend copies
        them back); returns what was moved (e.g. ``{"bytes": N}``). Nothing to do by default."""
        return {}

    def log_lines(self, run: Run, *, err: bool = False, follow: bool = False) -> Any:
        """An iterator of the run's log text where the log is not a file here (a remote backend);
        None when ``run.log_out`` / ``run.log_err`` are files on this machine."""
        return None

    # ------------------------------------------------------------ limits
    def memory_limit(self, resources: Resources) -> "MemCap | None":
        """The most memory a job with ``resources`` may ask for here (a partition's limit, the
        machine's memory), with why; None when unknown. ``crackops rerun`` caps its increase by it."""
        return None

    # ------------------------------------------------------------ lost submissions
    def no_record_grace_s(self) -> float:
        """How long after its submission a job the scheduler does not know is taken as never accepted."""
        return 600.0

    def search_poll(self, registry: Any, now: float) -> Poll:
        """Whether to search the scheduler for lost submissions now (:meth:`find_submissions`),
        under the backend's polling policy. Always, by default."""
        return Poll()

    def find_submissions(self, pending: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
        """``({submission_id: job_id}, None)`` for the pending submissions (registry rows) the
        scheduler knows; the second item says why the search could not be made (then nothing
        may be concluded from a submission not found)."""
        return {}, f"the {self.name} backend cannot search its scheduler"

    def adopt(self, submission_id: str, job_id: str) -> dict[str, Any]:
        """Make a found job of a dead submitter runnable (e.g. move its pickle into place); returns
        what the run's ``extra`` keeps, with an optional ``"note"`` for the user."""
        return {}

    def adopt_group(self, folder_id: str, group_id: str, job_ids: Sequence[str],
                    configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """:meth:`adopt` for one group of a batch: returns ``{"extra": {job_id: {...}},
        "script": path or None}``."""
        return {"extra": {j: {} for j in job_ids}, "script": None}
