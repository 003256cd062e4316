"""Rerun by cause: what to do with a run that did not complete (pure: no scheduler, no registry).

=============================  =================================================================
state                          rerun
=============================  =================================================================
OUT_OF_MEMORY                  memory x ``mem_factor`` (1.5 by default), from the last backup
TIMEOUT                        from the last backup; same time limit, or ``--time``
NODE_FAIL, PREEMPTED,          same resources, from the last backup
BOOT_FAIL, CANCELLED, LOST
FAILED, killed (no exception)  same resources, from the last backup
FAILED with a Python exception refused unless ``force`` (the exception is shown): rerunning a bug
                               gives the same bug
COMPLETED, still live          refused
=============================  =================================================================

The new run is a new job (new id, new out dir) whose config has ``resume_from`` = the old run's
out dir: the job copies that backup (and ``best.h5``) and continues at the next epoch. The
registry links it to the run it continues (``continues``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from crackops.config import Resources, parse_mem_mb

#: States ``rerun --failed`` picks up.
RERUNNABLE = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "LOST", "DEADLINE")
#: Further states an explicit ``rerun JOB_ID`` accepts.
ON_REQUEST = ("CANCELLED",)


@dataclass
class Plan:
    job_id: str
    state: str
    action: str                      # "rerun" or "refused"
    why: str                         # one line: what changes, or why not
    resources: dict[str, Any] = field(default_factory=dict)
    new_job_id: str | None = None    # set once submitted

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "state": self.state, "action": self.action, "why": self.why,
                "resources": self.resources, "new_job_id": self.new_job_id}


def _mem_text(mb: int) -> str:
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def plan(job_id: str, state: str, resources: dict[str, Any], status: dict[str, Any] | None, *,
         backup_epoch: int | None, mem_factor: float = 1.5, time: str | None = None, force: bool = False,
         max_mem: str | None = None) -> Plan:
    res = Resources(**{k: v for k, v in resources.items() if k in Resources.__dataclass_fields__})
    start = f"from the backup after epoch {backup_epoch}" if backup_epoch else "from epoch 1 (no backup)"
    if state == "COMPLETED":
        return Plan(job_id, state, "refused", "already COMPLETED")
    if state not in RERUNNABLE + ON_REQUEST:
        return Plan(job_id, state, "refused", f"still {state}: wait for it or cancel it first")
    if time:
        res.time = time
    if state == "OUT_OF_MEMORY":
        old = parse_mem_mb(res.mem)
        new = int(math.ceil(old * mem_factor / 1024.0)) * 1024 if old >= 1024 else int(math.ceil(old * mem_factor))
        if max_mem:
            new = min(new, parse_mem_mb(max_mem))
        if new <= old:
            return Plan(job_id, state, "refused", f"memory {res.mem} is already at the cap {max_mem}")
        res.mem = _mem_text(new)
        why = f"memory {_mem_text(old)} -> {res.mem}, {start}"
    elif state == "FAILED" and (status or {}).get("phase") == "failed" and (status or {}).get("error"):
        err = str(status["error"]).strip().splitlines()[0]
        if not force:
            return Plan(job_id, state, "refused", f"failed with {err} (rerun anyway with --force)")
        why = f"forced despite {err}, {start}"
    elif state == "TIMEOUT":
        why = f"time limit {res.time}{' (new)' if time else ''}, {start}"
    else:
        why = f"same resources, {start}"
    return Plan(job_id, state, "rerun", why, resources=res.to_dict())
