"""Rerun by cause: what to do with a run that did not complete (pure: no scheduler, no registry).

=============================  =================================================================
state                          rerun
=============================  =================================================================
OUT_OF_MEMORY                  memory x ``mem_factor`` (1.5 by default), at most the partition's
                               limit (or the machine's memory, locally), from the last backup
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
registry links it to the run it continues (``continues``). ``mem`` sets the new run's memory
whatever the cause (never above the limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from crackops.config import Resources, parse_mem_mb
from crackops.slurm.limits import MemCap
from crackops.slurm.units import mem_text

#: States ``rerun --failed`` picks up.
RERUNNABLE = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "LOST", "DEADLINE",
              "INCOMPLETE")   # trained, its artifacts bad or gone: from its last backup, the evaluation again
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


def plan(job_id: str, state: str, resources: dict[str, Any], status: dict[str, Any] | None, *,
         backup_epoch: int | None, mem_factor: float = 1.5, time: str | None = None, force: bool = False,
         max_mem: str | None = None, mem: str | None = None, cap: MemCap | None = None) -> Plan:
    """What to do with one run. ``mem``: the new run's memory, whatever the cause (refused above
    ``cap``). ``cap``: the most memory the run's partition (or machine) allows, with why (see
    :func:`crackops.slurm.limits.memory_cap`); ``max_mem``: a cap of the user's own. The
    OUT_OF_MEMORY increase is capped by both, and the plan says so."""
    res = Resources(**{k: v for k, v in resources.items() if k in Resources.__dataclass_fields__})
    start = f"from the backup after epoch {backup_epoch}" if backup_epoch else "from epoch 1 (no backup)"
    if state == "COMPLETED":
        return Plan(job_id, state, "refused", "already COMPLETED")
    if state not in RERUNNABLE + ON_REQUEST:
        return Plan(job_id, state, "refused", f"still {state}: wait for it or cancel it first")
    if time:
        res.time = time
    old = parse_mem_mb(res.mem)
    limit = cap
    if max_mem and (limit is None or parse_mem_mb(max_mem) < limit.mb):
        limit = MemCap(parse_mem_mb(max_mem), f"--max-mem {max_mem}")
    mem_change = ""
    if mem:
        new = parse_mem_mb(mem)
        if cap is not None and new > cap.mb:
            return Plan(job_id, state, "refused", f"--mem {mem} is more than the limit ({cap.why})")
        res.mem = mem_text(new)
        mem_change = f"memory {mem_text(old)} -> {res.mem} (--mem), "
    elif state == "OUT_OF_MEMORY":
        want = int(math.ceil(old * mem_factor / 1024.0)) * 1024 if old >= 1024 else int(math.ceil(old * mem_factor))
        new = want if limit is None else min(want, limit.mb)
        if new <= old:
            return Plan(job_id, state, "refused",
                        f"memory {mem_text(old)} is already at the limit ({limit.why if limit else '?'}): "
                        "it needs less memory (e.g. a smaller --batch-size), or choose with --mem")
        res.mem = mem_text(new)
        capped = f" (x{mem_factor:g} = {mem_text(want)}, capped by {limit.why})" if new < want and limit else ""
        mem_change = f"memory {mem_text(old)} -> {res.mem}{capped}, "
    if state == "FAILED" and (status or {}).get("phase") == "failed" and (status or {}).get("error"):
        err = str(status["error"]).strip().splitlines()[0]
        if not force:
            return Plan(job_id, state, "refused", f"failed with {err} (rerun anyway with --force)")
        why = f"{mem_change}forced despite {err}, {start}"
    elif state == "TIMEOUT":
        why = f"{mem_change}time limit {res.time}{' (new)' if time else ''}, {start}"
    elif mem_change:
        why = f"{mem_change}{start}"
    else:
        why = f"same resources, {start}"
    return Plan(job_id, state, "rerun", why, resources=res.to_dict())
