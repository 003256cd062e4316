"""Backends start training jobs and report their states. ``get_backend(name)`` picks one."""

from __future__ import annotations

from crackops.backends.base import Backend
from crackops.errors import UsageError

BACKENDS = ("local", "slurm")


def get_backend(name: str) -> Backend:
    if name == "local":
        from crackops.backends.local import LocalBackend

        return LocalBackend()
    if name == "slurm":
        from crackops.backends.slurm import SlurmBackend

        return SlurmBackend()
    raise UsageError(f"unknown backend {name!r}", f"use one of: {', '.join(BACKENDS)}")
