"""Polite to the scheduler: all crackops processes of a user make at most one sacct call per interval.

Sites ban tools that hammer slurmdbd. ``status``, every ``wait`` poll and every ``logs --follow``
loop go through :func:`crackops.api.refresh`, which asks this module before it lets the Slurm
backend run sacct:

- a run refreshed less than an interval ago (``runs.refreshed_at``, written by whichever process
  made the call) is served from the registry, no call;
- otherwise the process *claims* the call in the registry (one ``BEGIN IMMEDIATE`` transaction on
  the ``scheduler_calls`` row): granted when nobody called within the interval, and then nobody
  else may call until this call has ended and the interval has passed; denied, the runs are
  served from the registry as the last call left them (at most about an interval old);
- a call that fails (sacct exits non-zero, times out) or is slow (longer than
  ``SLOW_CALL_S``) doubles the wait before the next one, up to ``MAX_BACKOFF_S``; a fast good
  call ends the backoff.

``CRACKOPS_SACCT_INTERVAL`` (seconds, default 5) sets the interval; 0 turns the throttle off.
The registry is per user (``$CRACKOPS_HOME``), so the limit is per user and registry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from crackops.fmt import env_number
from crackops.holder import this_process

#: Seconds between two sacct calls of all crackops processes together (``CRACKOPS_SACCT_INTERVAL``).
DEFAULT_INTERVAL_S = 5.0
#: A call that takes longer than this counts as slow: the scheduler is struggling, back off.
SLOW_CALL_S = 10.0
#: The longest wait between calls while sacct fails or is slow.
MAX_BACKOFF_S = 300.0

COMMAND = "sacct"


def interval_s() -> float:
    return env_number("CRACKOPS_SACCT_INTERVAL", DEFAULT_INTERVAL_S, "seconds (0 to 3600)",
                      f"e.g. CRACKOPS_SACCT_INTERVAL={DEFAULT_INTERVAL_S:g} (the default); 0 turns the limit off",
                      maximum=3600)


def backoff_s(interval: float, failures: int) -> float:
    """The wait after ``failures`` failed or slow calls in a row (0: the plain interval)."""
    if failures <= 0:
        return interval
    return min(MAX_BACKOFF_S, max(interval, 1.0) * 2 ** min(failures, 16))


@dataclass
class Grant:
    """The right to make one call; :meth:`Throttle.done` must follow (it sets the next time)."""

    started_at: float
    failures_before: int


@dataclass
class Denied:
    """Someone called recently (or is calling, or sacct is backed off): serve the registry."""

    next_at: float
    failures: int
    last_error: str | None

    def warning(self, now: float, what: str = COMMAND) -> str | None:
        """A line for the user when ``what`` (sacct) is backed off (None in the ordinary case)."""
        if not self.failures:
            return None
        why = f": {self.last_error}" if self.last_error else ""
        return (f"{what} failed or was slow {self.failures} time(s) in a row{why}; crackops asks again in "
                f"{max(0.0, self.next_at - now):.0f} s (showing the registry)")


class Throttle:
    """One command's call budget, shared through the registry by every process using it."""

    def __init__(self, registry: Any, *, command: str = COMMAND, interval: float | None = None,
                 lease_s: float = 60.0, clock: Callable[[], float] = time.time):
        self.registry = registry
        self.command = command
        self.interval = interval_s() if interval is None else float(interval)
        self.lease_s = lease_s             # how long a claimed call may be in flight
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def fresh(self, refreshed_at: float | None, now: float | None = None) -> bool:
        """Whether a run refreshed at ``refreshed_at`` is recent enough to be served from the registry."""
        if not self.enabled or refreshed_at is None:
            return False
        now = self.clock() if now is None else now
        return 0 <= now - refreshed_at < self.interval

    def claim(self) -> Grant | Denied:
        now = self.clock()
        if not self.enabled:
            return Grant(started_at=now, failures_before=0)
        holder = this_process()
        granted, row = self.registry.claim_call(self.command, now, self.interval + self.lease_s, holder)
        if granted:
            return Grant(started_at=now, failures_before=int((row or {}).get("failures") or 0))
        return Denied(next_at=float(row["next_at"]),
                      failures=int(row.get("failures") or 0), last_error=row.get("last_error"))

    def done(self, grant: Grant, *, ok: bool, error: str | None = None) -> float:
        """Record the end of a granted call; returns when the next call may be made."""
        end = self.clock()
        duration = max(0.0, end - grant.started_at)
        slow = duration > SLOW_CALL_S
        failures = 0 if ok and not slow else grant.failures_before + 1
        if failures == 0:
            next_at = grant.started_at + self.interval
        else:
            next_at = end + backoff_s(self.interval, failures)
            if ok and slow:
                error = f"{self.command} took {duration:.0f} s"
        if self.enabled:
            self.registry.finish_call(self.command, ended_at=end, duration_s=duration, next_at=next_at,
                                      failures=failures, error=error)
        return next_at
