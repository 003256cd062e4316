"""A partition's memory limit, from ``scontrol show partition`` and ``scontrol show node`` text
(pure: the Slurm backend runs the commands, :func:`memory_cap` reads what they printed).

The most memory one job of ``cpus`` CPUs may ask for in a partition is the smallest of
  * the partition's ``MaxMemPerNode`` (when not ``UNLIMITED``),
  * its ``MaxMemPerCPU`` times the job's CPUs (Slurm prints one of the two),
  * the largest ``RealMemory`` among the partition's nodes (a job runs on one node).
Both the multi-line output and the one-line ``-o`` output are read. A request with no partition
goes to the partition marked ``Default=YES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crackops.slurm.units import mem_text

_PAIR_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*)=(\S*)")


def parse_records(text: str, key: str) -> list[dict[str, str]]:
    """``scontrol show partition`` / ``show node`` text (with or without ``-o``) -> one dict per
    record (``key`` is ``PartitionName`` or ``NodeName``, the word that starts a record). Words
    without ``=`` (the spaces inside ``OS=Linux 6.1 #1 SMP ...``) are skipped."""
    records: list[dict[str, str]] = []
    for line in (text or "").splitlines():
        pairs = _PAIR_RE.findall(line)
        if not pairs:
            continue
        if pairs[0][0] == key:
            records.append({})
        if not records:
            continue   # text before the first record (a warning line)
        for k, v in pairs:
            records[-1].setdefault(k, v)
    return records


def _mb(value: str | None) -> int | None:
    """A limit in MB as scontrol prints it (a number; ``UNLIMITED``/``0``/``N/A``: no limit)."""
    if value is None:
        return None
    try:
        mb = int(value)
    except ValueError:
        return None
    return mb if mb > 0 else None


@dataclass
class MemCap:
    mb: int
    why: str          # e.g. "partition batch: MaxMemPerNode 2048M"


def memory_cap(partitions_text: str, nodes_text: str, partition: str | None, cpus: int) -> MemCap | None:
    """The most memory (MB) a job of ``cpus`` CPUs may ask for in ``partition`` (None: the
    default partition), with why; None when the text names no such partition or no limit."""
    parts = parse_records(partitions_text, "PartitionName")
    if partition:
        chosen = next((p for p in parts if p.get("PartitionName") == partition), None)
    else:
        chosen = next((p for p in parts if p.get("Default") == "YES"), None)
    if chosen is None:
        return None
    name = chosen["PartitionName"]
    caps: list[MemCap] = []
    per_node = _mb(chosen.get("MaxMemPerNode"))
    if per_node:
        caps.append(MemCap(per_node, f"partition {name}: MaxMemPerNode {mem_text(per_node)}"))
    per_cpu = _mb(chosen.get("MaxMemPerCPU"))
    if per_cpu:
        caps.append(MemCap(per_cpu * max(1, cpus),
                           f"partition {name}: MaxMemPerCPU {mem_text(per_cpu)} x {max(1, cpus)} CPUs"))
    nodes = [n for n in parse_records(nodes_text, "NodeName")
             if name in (n.get("Partitions") or "").split(",")]
    real = [(m, n["NodeName"]) for n in nodes if (m := _mb(n.get("RealMemory")))]
    if real:
        m, node = max(real)
        caps.append(MemCap(m, f"partition {name}: largest node {node} has RealMemory {mem_text(m)}"))
    return min(caps, key=lambda c: c.mb) if caps else None
