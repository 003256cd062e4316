"""Finding a Slurm job whose submitter died between sbatch and the registry write (pure).

``crackops.api.submit`` notes every submission in the registry before sbatch runs
(``pending_submissions``) and gives the job a submitit folder of its own,
``$CRACKOPS_HOME/submitit/<submission_id>/``, so the path of the batch script sbatch was given
names the submission. sacct keeps that command line (``SubmitLine``, Slurm 22.05 and later) and
squeue shows the script (``%o``): a job whose line holds ``/<submission_id>/`` is that
submission's job, whatever else was submitted at the same time under the same job name.
"""

from __future__ import annotations

from typing import Iterable

FIND_SACCT_FIELDS = ("JobID", "JobName", "Submit", "SubmitLine")


def marker(submission_id: str) -> str:
    """What the batch script's path of this submission holds (its own submitit folder)."""
    return f"/{submission_id}/"


def build_find_sacct_command(job_names: Iterable[str], starttime: str, sacct: str = "sacct") -> list[str]:
    names = sorted(set(job_names))
    return [sacct, "--parsable2", "--noheader", "-X", f"--format={','.join(FIND_SACCT_FIELDS)}",
            f"--starttime={starttime}", f"--name={','.join(names)}"]


def build_find_squeue_command(job_names: Iterable[str], squeue: str = "squeue") -> list[str]:
    names = sorted(set(job_names))
    return [squeue, "--noheader", "--states=all", "--format=%i|%j|%o", f"--name={','.join(names)}"]


def match_submissions(text: str, submission_ids: Iterable[str]) -> dict[str, str]:
    """``{submission_id: job_id}`` for the lines (``JobID|...|command line``) that name one of
    ``submission_ids``; step rows (``123.batch``) and unreadable lines are skipped."""
    wanted = {sid: marker(sid) for sid in submission_ids}
    found: dict[str, str] = {}
    for line in (text or "").splitlines():
        job_id, sep, rest = line.partition("|")
        job_id = job_id.strip()
        if not sep or not job_id or "." in job_id or not job_id.replace("_", "").isdigit():
            continue
        for sid, m in wanted.items():
            if m in rest:
                found.setdefault(sid, job_id)
    return found
