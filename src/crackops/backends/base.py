"""The small interface every backend implements.

A backend starts a job (a module-level Python function called with one ``TrainConfig``), tells the
states of many jobs in one go, and cancels jobs. It never touches the registry: ``crackops.api``
records what the backend returns.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from crackops.config import Resources, TrainConfig
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
    calls: int = 0                 # scheduler commands run (sacct/squeue), for benchmarks and tests


class Backend(abc.ABC):
    name: str
    #: Whether the scheduler holds a job to its CPUs, memory and time limit (what submit prints says so).
    enforces_resources = True
    #: Whether :meth:`find_submissions` can find a job whose submitter died before recording it
    #: (``crackops.api.submit`` then notes each submission in the registry before submitting).
    finds_submissions = False

    def find_submissions(self, pending: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
        """``({submission_id: job_id}, None)`` for the pending submissions (registry rows) the
        scheduler knows; the second item says why the search could not be made (then nothing
        may be concluded from a submission not found)."""
        return {}, f"the {self.name} backend cannot search its scheduler"

    @abc.abstractmethod
    def submit(self, sub: Submission) -> Submitted: ...

    @abc.abstractmethod
    def refresh(self, runs: list[Run]) -> RefreshResult:
        """States of ``runs`` (all of this backend, none terminal) in as few scheduler calls as possible."""

    @abc.abstractmethod
    def cancel(self, runs: list[Run]) -> None: ...

    def controller_problem(self) -> str | None:
        """Why the scheduler's controller cannot be reached right now, or None (it answers, or
        the backend has none). Asked only while runs are unfinished."""
        return None

    def memory_limit(self, resources: Resources) -> "MemCap | None":
        """The most memory a job with ``resources`` may ask for here (a partition's limit, the
        machine's memory), with why; None when unknown. ``crackops rerun`` caps its increase by it."""
        return None

    @abc.abstractmethod
    def dry_run(self, sub: Submission) -> str:
        """What would be submitted (the sbatch script, the command line), submitting nothing."""
