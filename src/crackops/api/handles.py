"""Handles: what ``api.submit`` returns and ``api.run(job_id)`` gets, as submitit's ``Job`` is.

A :class:`RunHandle` *is* the run's record (a :class:`~crackops.registry.Run`, so everything that
takes a run takes it) with the calls one makes on a run: ``refresh()``, ``wait()``, ``result()``,
``logs()``, ``cancel()``, ``done()``. ``refresh`` and ``wait`` bring the handle's fields up to date
(after ``wait``, to the last attempt when ``--retries`` or ``rerun`` continued it).

    run = api.submit(config)          # a RunHandle
    report = run.result()             # waits, collects, returns the CollectReport (raises if it failed)
    print(report.run.metrics["test_accuracy"])
    api.run("L261203-101500-ab12").logs(tail=20)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator

from crackops.api.checks import check_retries
from crackops.api.results import CollectReport, collect, wait_until_done
from crackops.api.states import StatusReport, cancel, read_log, refresh
from crackops.api.submission import _submit
from crackops.config import Resources, TrainConfig
from crackops.errors import StateError
from crackops.registry import Registry, Run


class RunHandle(Run):
    """A run's record with its calls. Build one with :func:`run` or get one from :func:`submit`."""

    def __init__(self, record: Run, registry: Registry | None = None):
        super().__init__(**{f.name: getattr(record, f.name) for f in dataclasses.fields(Run)})
        self._registry = registry

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry()
        return self._registry

    def _become(self, record: Run) -> "RunHandle":
        for f in dataclasses.fields(Run):
            setattr(self, f.name, getattr(record, f.name))
        return self

    def refresh(self) -> "RunHandle":
        """The state now (one scheduler call, under the backend's polling policy)."""
        return self._become(refresh([self.registry.get(self.shown_id)], self.registry).runs[0])

    def done(self) -> bool:
        """Whether the run has ended (refreshed first)."""
        return self.refresh().terminal

    def wait(self, *, poll_s: float = 2.0, timeout_s: float | None = None,
             on_report: Callable[[StatusReport], None] | None = None) -> "RunHandle":
        """Wait until the run (its last attempt, when it was rerun) has ended, collect it when it
        COMPLETED; the handle is then that last attempt."""
        (last,) = wait_until_done([self.shown_id], poll_s=poll_s, timeout_s=timeout_s, on_report=on_report,
                                  registry=self.registry)
        return self._become(last)

    def result(self, *, poll_s: float = 2.0, timeout_s: float | None = None) -> CollectReport:
        """Wait, then the verified artifacts and metrics (``CollectReport``); raises ``StateError``
        with the reason when the run did not complete (as submitit's ``result()`` raises)."""
        self.wait(poll_s=poll_s, timeout_s=timeout_s)
        rep = collect(self.shown_id, registry=self.registry)
        self._become(rep.run)
        if not rep.ok:
            raise StateError(f"run {self.shown_id} ended {rep.run.state}" + (f": {rep.run.reason}" if rep.run.reason else ""),
                             f"see why: crackops status {self.shown_id}")
        return rep

    def logs(self, *, err: bool = False, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """The run's log (``.out``, or ``.err``), as ``crackops logs`` prints it."""
        return read_log(self.shown_id, err=err, follow=follow, tail=tail, registry=self.registry)

    def cancel(self) -> bool:
        """Cancel the run if it has not ended; whether it was cancelled."""
        done = cancel([self.shown_id], registry=self.registry)
        if done:
            self._become(done[0])
        return bool(done)

    def __repr__(self) -> str:
        return f"<run {self.shown_id} ({self.backend}) {self.state}>"


def run(job_id: str, registry: Registry | None = None) -> RunHandle:
    """The handle of a recorded run, by job id (or ref, ``<job_id>~1``)."""
    reg = registry or Registry()
    return RunHandle(reg.get(job_id), reg)


def submit(config: TrainConfig, resources: Resources | None = None, *, backend: str = "local",
           name: str | None = None, logs_dir: str | Path | None = None, out_root: str | Path | None = None,
           fn: Callable[[TrainConfig], Any] | None = None, check_data: bool = True, retries: int | None = None,
           registry: Registry | None = None) -> RunHandle:
    """Start one training run and record it. Returns its :class:`RunHandle` (the recorded run, with
    ``wait``, ``result``, ``refresh``, ``logs``, ``cancel``). ``config`` is not changed: the same
    config can be submitted again (a new run each time).

    ``retries``: when the run ends OUT_OF_MEMORY, TIMEOUT, NODE_FAIL or PREEMPTED, rerun it by
    :func:`crackops.api.rerun`'s policy (never after a Python exception), up to this many times,
    each attempt continuing the one before. The rerun is submitted by the next crackops call that
    refreshes states (``status``, ``wait``, a sweep's status or wait, ``compare``...), by whichever
    crackops process gets there first, once."""
    reg = registry or Registry()
    record = _submit(config, resources, backend=backend, name=name, logs_dir=logs_dir, out_root=out_root,
                     fn=fn, check_data=check_data, registry=reg, link={"retries": check_retries(retries)})
    return RunHandle(record, reg)
