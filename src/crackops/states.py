"""Run states: Slurm's names, used by both backends, the registry and the filters. The one set."""

from __future__ import annotations

#: A run in one of these has ended and never changes again.
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE", "LOST",
    "INCOMPLETE",   # crackops' own: the scheduler says COMPLETED, the artifacts say otherwise
})
#: Not finished yet (UNKNOWN: the scheduler could not say).
LIVE_STATES = frozenset({"SUBMITTED", "PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING",
                         "CONFIGURING", "STOPPED", "SIGNALING", "STAGE_OUT", "UNKNOWN"})
