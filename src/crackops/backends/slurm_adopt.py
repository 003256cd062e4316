"""Adopting a Slurm job whose submitter died between sbatch and the registry write: its pickle
moved into place (submitit moves it only after sbatch returns), its folder and script recorded.
The API finds the job (``SlurmBackend.find_submissions``) and records it; this makes it runnable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from crackops.paths import state_dir


def submitit_folder(submission_id: str | None = None) -> Path:
    """Where submitit keeps pickles and scripts: ``$CRACKOPS_HOME/submitit/%j``, or, for one
    submission, ``$CRACKOPS_HOME/submitit/<submission_id>/%j``: the batch script's path (which
    sacct and squeue show) then names the submission (``crackops.slurm.adopt``)."""
    root = state_dir() / "submitit"
    return (root / submission_id if submission_id else root) / "%j"


def adopt_job(submission_id: str, job_id: str) -> dict[str, Any]:
    """The run's ``extra`` for the adopted job (its submitit folder), with a note when its pickle was moved."""
    extra: dict[str, Any] = {"submitit_folder": str(submitit_folder(submission_id)).replace("%j", job_id)}
    if rescue_pickle(submission_id, job_id):
        extra["note"] = "its job's pickle moved into place"
    return extra


def adopt_array(folder_id: str, array_id: str, job_ids: Sequence[str],
                configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`adopt_job` for one array of a sweep: pickles moved, each task's folder, the script."""
    if len(job_ids) == 1:
        rescue_pickle(folder_id, array_id)
    else:
        rescue_array_pickles(folder_id, job_ids, configs)
    root = state_dir() / "submitit" / folder_id
    scripts = [root / array_id / f"{array_id}_submission.sh", *sorted(root.glob(".submission_file_*.sh"))]
    script = next((str(x) for x in scripts if x.is_file()), None)   # not moved into place if killed
    return {"extra": {j: {"submitit_folder": str(submitit_folder(folder_id)).replace("%j", j)} for j in job_ids},
            "script": script}


def rescue_pickle(submission_id: str, job_id: str) -> bool:
    """submitit moves the job's pickle to ``<folder>/<job_id>/<job_id>_submitted.pkl`` just after
    sbatch returns; a submitter killed in between leaves it under its temporary name, and the job
    waits 60 s for it. Move it now (True when moved)."""
    root = state_dir() / "submitit" / submission_id
    target = root / job_id / f"{job_id}_submitted.pkl"
    temps = sorted(root.glob("*.pkl"))
    if target.exists() or len(temps) != 1:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(temps[0], target)
    except OSError:
        return False
    return True


def rescue_array_pickles(folder_id: str, job_ids: Sequence[str], configs: Sequence[dict[str, Any]]) -> int:
    """:func:`rescue_pickle` for an array: submitit leaves one ``<uuid>.pkl`` per task, in no
    order, so each is matched to its task by the config it carries (``configs[i]`` is task
    ``job_ids[i]``'s). Returns how many were moved."""
    from crackops.backends.submitit_import import import_submitit

    import_submitit()   # not its logging set-up: this runs in a status process
    from submitit.core.utils import DelayedSubmission

    def key(d: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in d.items() if k != "job_id"}, sort_keys=True, default=str)

    root = state_dir() / "submitit" / folder_id
    waiting: dict[str, list[str]] = {}
    for job_id, cfg in zip(job_ids, configs):
        if not (root / job_id / f"{job_id}_submitted.pkl").exists():
            waiting.setdefault(key(cfg), []).append(job_id)
    moved = 0
    for tmp in sorted(root.glob("*.pkl")) if waiting else []:
        try:
            cfg = DelayedSubmission.load(tmp).args[0]
            ids = waiting.get(key(cfg.to_dict()))
            if not ids:
                continue
            job_id = ids.pop(0)
            (root / job_id).mkdir(parents=True, exist_ok=True)
            os.replace(tmp, root / job_id / f"{job_id}_submitted.pkl")
            moved += 1
        except Exception:  # noqa: BLE001 - unreadable: left for the job to report
            continue
    return moved

