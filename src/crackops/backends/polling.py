"""The shared polling policy of backends that ask a busy service (Slurm's sacct, an ssh host):
one call budget per user and command, kept in the registry (``crackops.slurm.throttle``), so every
crackops process together makes at most one call per interval, and backs off after failures.

A backend's :meth:`~crackops.backends.base.Backend.poll` returns :func:`throttled_poll`'s answer."""

from __future__ import annotations

from typing import Any

from crackops.backends.base import Poll
from crackops.registry import Run
from crackops.slurm.throttle import Denied, Throttle


def throttled_poll(registry: Any, runs: list[Run], now: float, *, command: str, what: str,
                   lease_s: float, down_prefix: str | None = None) -> Poll:
    """Ask now, or serve ``runs`` from the registry: they were all refreshed less than an interval
    ago, or another process holds the call (or the command is backed off after failures).
    ``what`` names the command for the user ("sacct", "ssh host"); ``down_prefix``: how an error
    that means "the scheduler's controller is down" begins (said again while served from the
    registry)."""
    throttle = Throttle(registry, command=command, lease_s=lease_s)
    if runs and all(throttle.fresh(r.refreshed_at, now) for r in runs):
        poll = Poll(ask=False, source=f"registry ({what} asked less than {throttle.interval:g} s ago)")
        _down_when_last_asked(registry, command, down_prefix, poll, now)
        return poll
    grant = throttle.claim()
    if isinstance(grant, Denied):
        poll = Poll(ask=False, source=f"registry (another crackops process asked {what} just now)")
        warning = grant.warning(now, what)
        if warning:
            poll.source = f"registry ({what} backed off)"
            if not _down_when_last_asked(registry, command, down_prefix, poll, now):
                poll.warnings.append(warning)
        return poll
    return Poll(ask=True, on_done=lambda ok, error: throttle.done(grant, ok=ok, error=error))


def _down_when_last_asked(registry: Any, command: str, down_prefix: str | None, poll: Poll, now: float) -> bool:
    """Runs served from the registry: if the last process that asked found the controller down
    (the throttle keeps its error), say so as it did."""
    if not down_prefix:
        return False
    row = registry.scheduler_call(command) or {}
    error = row.get("last_error") or ""
    if not row.get("failures") or not error.startswith(down_prefix):
        return False
    poll.scheduler_down = error
    poll.warnings.append(f"{error} when last asked; crackops asks again in "
                         f"{max(0.0, float(row['next_at']) - now):.0f} s")
    return True
