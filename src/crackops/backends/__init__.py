"""Backends start training jobs and report their states. ``get_backend(name)`` picks one.

A new backend (PBS, Kubernetes) is its module here, implementing ``backends/base.py``, plus its one
line in ``REGISTRY``: ``--backend``, its help text and ``get_backend`` follow. The job it starts
learns its id and CPU count as ``crackops.contract`` says (``config.job_id``, or ``CRACKOPS_JOB_ID``
and ``CRACKOPS_CPUS`` in the job's environment).
"""

from __future__ import annotations

import importlib

from typing import TYPE_CHECKING

from crackops.backends.base import Backend, JobControl
from crackops.errors import UsageError

if TYPE_CHECKING:
    from crackops.config import TrainConfig

#: name -> (module, class, what it runs on, for the help; may be empty). The first one is the default. Modules are imported
#: only when their backend is used, so a backend's dependencies load only for it.
REGISTRY: dict[str, tuple[str, str, str]] = {
    "local": ("crackops.backends.local", "LocalBackend", "this machine, the default"),
    "slurm": ("crackops.backends.slurm", "SlurmBackend", ""),
}
BACKENDS = tuple(REGISTRY)
#: The job side: modules whose ``from_env(config, job_id)`` recognises the scheduler a job runs under
#: (light modules: the job imports them before training).
JOB_CONTROLS = ("crackops.backends.slurm_job",)
DEFAULT_BACKEND = BACKENDS[0]


def get_backend(name: str) -> Backend:
    try:
        module, cls, _ = REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}", f"use one of: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)()


def help_text() -> str:
    """The ``--backend`` help: 'Where to run: local (this machine, the default) or slurm.'"""
    items = [f"{name} ({what})" if what else name for name, (_, _, what) in REGISTRY.items()]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
    return f"Where to run: {listed}."


def job_control(config: "TrainConfig", job_id: str) -> JobControl | None:
    """The control of the scheduler this training job runs under (time left, requeue), or None
    (a local process: nothing to ask, no requeue)."""
    for module in JOB_CONTROLS:
        ctl = importlib.import_module(module).from_env(config, job_id)
        if ctl is not None:
            return ctl
    return None
