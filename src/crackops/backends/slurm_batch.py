"""Many Slurm runs at once (a sweep): job arrays, one sbatch each.

The runs are grouped by resource shape and cut at the cluster's ``MaxArraySize``; each group is one
array throttled to ``%max_parallel``, with its own submitit folder ``<note_id>-a<k>`` (its batch
script's path names it, so ``crackops.slurm.adopt`` finds it again if the submitter dies); when a
sweep is split in several arrays under a throttle, each waits for the one before
(``afterany:<array>``), so the throttle holds across them. Used by ``SlurmBackend``'s batch hooks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

from crackops.backends.base import Batch, BatchPlan, Submission
from crackops.config import Resources
from crackops.errors import BackendError, UsageError
from crackops.paths import state_dir
from crackops.slurm.adopt import array_marker_id

DEFAULT_MAX_ARRAY_SIZE = 1001      # Slurm's default MaxArraySize


def shape_key(res: Resources) -> str:
    return json.dumps(res.to_dict(), sort_keys=True, default=str)


def max_array_size() -> int:
    """The cluster's MaxArraySize (``scontrol show config``); ``CRACKOPS_MAX_ARRAY_SIZE`` overrides."""
    env = os.environ.get("CRACKOPS_MAX_ARRAY_SIZE")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise UsageError(f"CRACKOPS_MAX_ARRAY_SIZE={env!r} is not a number", "e.g. 1001") from None
        if n < 1:
            raise UsageError(f"CRACKOPS_MAX_ARRAY_SIZE={n} must be at least 1", "e.g. 1001")
        return n
    try:
        p = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return DEFAULT_MAX_ARRAY_SIZE
    for line in p.stdout.splitlines():
        k, _, v = line.partition("=")
        if k.strip() == "MaxArraySize":
            try:
                return max(1, int(v.strip()))
            except ValueError:
                break
    return DEFAULT_MAX_ARRAY_SIZE


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def plan_arrays(resources: Sequence[Resources], max_parallel: int | None, array_size: int | None = None) -> BatchPlan:
    """One array per resource shape, cut at MaxArraySize."""
    size = array_size or max_array_size()
    by_shape: dict[str, list[int]] = {}
    for i, r in enumerate(resources):
        by_shape.setdefault(shape_key(r), []).append(i)
    groups = []
    for members in by_shape.values():
        for chunk in chunks(members, size):
            r = resources[chunk[0]]
            groups.append({"indices": chunk, "n": len(chunk), "cpus": r.cpus, "mem": r.mem, "time": r.time})
    return BatchPlan(max_parallel=max_parallel, groups=groups, extra={"max_array_size": size})


def chained(plan: BatchPlan) -> bool:
    """Whether each array waits for the one before (a throttle across a split sweep)."""
    return bool(plan.max_parallel and len(plan.groups) > 1)


def note_groups(plan: BatchPlan, note_id: str) -> list[dict[str, Any]]:
    return [{"indices": g["indices"], "folder": array_marker_id(note_id, k), "dependency": bool(k and chained(plan))}
            for k, g in enumerate(plan.groups)]


def array_script_path(folder_id: str, array_id: str) -> Path:
    return state_dir() / "submitit" / folder_id / array_id / f"{array_id}_submission.sh"


def submit_arrays(backend: Any, subs: Sequence[Submission], plan: BatchPlan, note_id: str) -> Batch:
    """Submit ``plan``'s arrays in order; an sbatch refusal stops there (the arrays before it are
    submitted and returned)."""
    batch = Batch(extra={"max_array_size": plan.extra.get("max_array_size")})
    arrays: list[dict[str, Any]] = []
    prev: str | None = None
    for k, g in enumerate(plan.groups):
        chunk = [subs[i] for i in g["indices"]]
        if prev and chained(plan):
            dep = f"afterany:{prev}"
            chunk = [dataclasses.replace(s, resources=dataclasses.replace(
                s.resources, extra={**s.resources.extra, "dependency": dep})) for s in chunk]
        folder = array_marker_id(note_id, k)
        try:
            done = backend.submit_array(chunk, parallelism=plan.max_parallel, folder_id=folder)
        except BackendError as e:
            batch.error = e
            break
        array_id = done[0].job_id.split("_")[0]
        script = array_script_path(folder, array_id)
        arrays.append({"array_id": array_id, "n": len(done), "first_index": g["indices"][0],
                       "sbatch_script": str(script) if script.is_file() else None,
                       "dependency": f"afterany:{prev}" if prev and chained(plan) else None})
        prev = array_id
        batch.submitted += list(zip(g["indices"], done))
    batch.extra["arrays"] = arrays
    return batch
