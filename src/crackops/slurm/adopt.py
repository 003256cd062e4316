"""Finding a Slurm job whose submitter died between sbatch and the registry write (pure).

``crackops.api.submit`` notes every submission in the registry before sbatch runs
(``pending_submissions``) and gives the job a submitit folder of its own,
``$CRACKOPS_HOME/submitit/<submission_id>/``, so the path of the batch script sbatch was given
names the submission. sacct keeps that command line (``SubmitLine``, Slurm 22.05 and later) and
squeue shows the script (``%o``): a job whose line holds ``/<submission_id>/`` is that
submission's job, whatever else was submitted at the same time under the same job name.

A Slurm sweep is noted the same way (one pending row for the whole sweep); each of its arrays has
the folder ``<submission_id>-a<k>`` (:func:`array_marker_id`), and the array's id is what comes
before ``_`` in the ids sacct and squeue list for it (``500001_3``, ``500001_[4-9%2]``).
"""

from __future__ import annotations

from typing import Iterable

FIND_SACCT_FIELDS = ("JobID", "JobName", "Submit", "SubmitLine")


def marker(submission_id: str) -> str:
    """What the batch script's path of this submission holds (its own submitit folder)."""
    return f"/{submission_id}/"


def array_marker_id(submission_id: str, k: int) -> str:
    """The submitit folder name of array ``k`` of the sweep noted as ``submission_id``."""
    return f"{submission_id}-a{k}"


def array_id(job_id: str) -> str:
    """``500001_3`` / ``500001_[4-9%2]`` / ``500001`` -> ``500001``."""
    return job_id.partition("_")[0]


def build_find_sacct_command(job_names: Iterable[str], starttime: str, sacct: str = "sacct") -> list[str]:
    names = sorted(set(job_names))
    return [sacct, "--parsable2", "--noheader", "-X", f"--format={','.join(FIND_SACCT_FIELDS)}",
            f"--starttime={starttime}", f"--name={','.join(names)}"]


def build_find_squeue_command(job_names: Iterable[str], squeue: str = "squeue") -> list[str]:
    names = sorted(set(job_names))
    return [squeue, "--noheader", "--states=all", "--format=%i|%j|%o", f"--name={','.join(names)}"]


def match_submissions(text: str, submission_ids: Iterable[str]) -> dict[str, str]:
    """``{submission_id: job_id}`` for the lines (``JobID|...|command line``) that name one of
    ``submission_ids``; step rows (``123.batch``) and unreadable lines are skipped; an array's
    pending tasks come as one line (``500001_[0-9%2]``)."""
    wanted = {sid: marker(sid) for sid in submission_ids}
    found: dict[str, str] = {}
    for line in (text or "").splitlines():
        job_id, sep, rest = line.partition("|")
        job_id = job_id.strip()
        if not sep or not job_id or "." in job_id or not array_id(job_id).isdigit():
            continue
        for sid, m in wanted.items():
            if m in rest:
                found.setdefault(sid, job_id)
    return found
