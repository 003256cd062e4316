"""Slurm text handling: sacct/squeue command lines and parsers (``sacct``), units and
efficiency (``units``). Pure functions; the backend in ``crackops.backends.slurm`` runs commands."""

from crackops.slurm.sacct import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    SacctJob,
    SacctStep,
    SqueueJob,
    build_sacct_command,
    build_scancel_command,
    build_squeue_command,
    parse_sacct,
    parse_squeue,
    select_job,
)
from crackops.slurm.units import efficiency, parse_duration_s, parse_mem_mb, parse_timestamp

__all__ = [
    "SACCT_FIELDS", "SQUEUE_FORMAT", "SacctJob", "SacctStep", "SqueueJob", "build_sacct_command",
    "build_scancel_command", "build_squeue_command", "efficiency", "parse_duration_s", "parse_mem_mb",
    "parse_sacct", "parse_squeue", "parse_timestamp", "select_job",
]
