"""Adopting submissions whose crackops process died between the scheduler's acceptance and the
registry write: the job is found (by the backend) and recorded from the note left before submitting."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crackops import backends
from crackops.errors import CrackopsError
from crackops.paths import predict_out_dir, validate_job_id
from crackops.registry import Registry, Run


#: A pending submission of a live process is left to it this long before others look for its job.
ADOPT_AFTER_S = 120.0


def _holder_gone(holder: str | None) -> bool:
    """Whether the process that noted a pending submission has ended (known on its own host only)."""
    from crackops.holder import gone

    return gone(holder)


@dataclass
class Adoption:
    """What :func:`adopt_submissions` did: runs recorded for jobs whose submitter died, and lines
    for the user (still looking, given up)."""

    runs: list[Run] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def adopt_submissions(registry: Registry | None = None, *, now: float | None = None) -> Adoption:
    """Record the jobs of submissions whose submitting process died between sbatch and the
    registry write (a pending row left behind: see :func:`submit`). The job is found by its
    submission's own folder in the batch script's path (sacct ``SubmitLine``, squeue), or by the
    out dir it claimed; recorded as a run from the pending row. A submission the scheduler does
    not know after the no-record grace period (``CRACKOPS_NO_RECORD_GRACE``, 10 min), asked
    successfully, was never accepted: it is dropped, with a line saying so. Nothing is guessed."""
    reg = registry or Registry()
    now = time.time() if now is None else now
    rows = [p for p in reg.pending() if _holder_gone(p["holder"]) or now - p["created_at"] > ADOPT_AFTER_S]
    result = Adoption()
    if not rows:
        return result
    from crackops.paths import log_paths

    by_backend: dict[str, list[dict[str, Any]]] = {}
    for p in rows:
        by_backend.setdefault(p["backend"], []).append(p)
    for name, group in by_backend.items():
        be = backends.get_backend(name)
        sweeps = [p for p in group if "sweep" in p["run"]]
        group = [p for p in group if "sweep" not in p["run"]]
        claimed = _claimed_in_out_roots(group)
        found = {p["submission_id"]: claimed[p["submission_id"]] for p in group if p["submission_id"] in claimed}
        search_error = None
        # a sweep is searched for by each of its arrays' folders
        rest = [p for p in group if p["submission_id"] not in found] + [
            {**p, "submission_id": a["folder"]} for p in sweeps for a in p["run"]["arrays"]]
        if rest:
            poll = be.search_poll(reg, now)
            if poll.ask:
                ok = False
                try:
                    more, search_error = be.find_submissions(rest)
                    ok = search_error is None
                finally:
                    poll.done(ok, search_error)
                found.update(more)
            else:   # nothing may be concluded from a submission not searched for
                search_error = f"not searched this time: {poll.source or 'searched just now'}"
        for p in sweeps:
            _adopt_sweep(be, reg, p, found, search_error, now, result)
        for p in group:
            sid, tpl = p["submission_id"], p["run"]
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["created_at"]))
            job_id = found.get(sid)
            if job_id is None:
                if search_error is None and now - p["created_at"] > be.no_record_grace_s():
                    reg.drop_pending(sid)
                    result.warnings.append(f"a submission started at {when} ({tpl.get('name') or p['job_name']}) "
                                           f"whose crackops process ended before recording it is unknown to "
                                           f"{name}: it was never accepted, nothing ran")
                else:
                    result.warnings.append(f"a submission started at {when} ({tpl.get('name') or p['job_name']}) "
                                           "was never recorded by its crackops process; its job is not found "
                                           f"yet{f' ({search_error})' if search_error else ''}: crackops keeps looking")
                continue
            job_id = validate_job_id(job_id)
            config = tpl["config"]
            out_dir = predict_out_dir(config["out_root"], job_id, sid)
            log_out, log_err = log_paths(Path(tpl["logs_dir"]), job_id, p["job_name"])
            extra: dict[str, Any] = {**tpl.get("link_extra", {}), "out_dir": str(out_dir), "fn": tpl.get("fn"),
                                     "adopted": f"recorded at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}: "
                                                "the submitting crackops process ended after sbatch"}
            made = dict(be.adopt(sid, job_id))   # runnable again: e.g. its pickle moved into place
            if made.get("note"):
                extra["adopted"] += f"; {made.pop('note')}"
            extra.update(made)
            run = Run(job_id=job_id, backend=name, name=tpl.get("name"), state="PENDING", config=config,
                      resources=tpl["resources"], submitted_at=p["created_at"], out_dir=str(out_dir),
                      log_out=str(log_out), log_err=str(log_err), extra=extra, provenance=tpl.get("provenance"),
                      **tpl.get("link", {}))   # a rerun's continues / attempt / sweep_id / retries
            recorded = reg.record_submission(run, sid, adopting=True)
            if recorded is not None:
                result.runs.append(recorded)
                result.warnings.append(f"adopted job {job_id} ({tpl.get('name') or p['job_name']}, submitted {when}): "
                                       "its crackops process ended after sbatch, before recording it")
    return result


def _adopt_sweep(be: Any, reg: Registry, p: dict[str, Any], found: dict[str, str], search_error: str | None,
                 now: float, result: Adoption) -> None:
    """:func:`adopt_submissions` for a sweep noted before its first submission: the groups (job
    arrays) found (by their folders) are recorded with the sweep, once; a group the scheduler does
    not know, asked successfully, was never accepted (the submitter died before it)."""
    from crackops.paths import log_paths
    from crackops.registry import Sweep
    from crackops.slurm.adopt import array_id
    from crackops.sweeps import member_run

    sid, note = p["submission_id"], p["run"]
    sw = Sweep(**note["sweep"])
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["created_at"]))
    arrays = [(a, array_id(found[a["folder"]])) for a in note["arrays"] if a["folder"] in found]
    if not arrays or (search_error is not None and len(arrays) < len(note["arrays"])):
        if not arrays and search_error is None and now - p["created_at"] > be.no_record_grace_s():
            reg.drop_pending(sid)
            result.warnings.append(f"sweep {sw.name}, started at {when}, whose crackops process ended before "
                                   f"recording it is unknown to {sw.backend}: it was never accepted, nothing ran")
        else:
            result.warnings.append(f"sweep {sw.name}, started at {when}, was never recorded by its crackops process; "
                                   f"its job arrays are not all found yet{f' ({search_error})' if search_error else ''}"
                                   ": crackops keeps looking")
        return
    adopted = (f"recorded at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}: "
               "the submitting crackops process ended after sbatch")
    runs, recorded_arrays, prev = [], [], None
    for a, aid in arrays:
        n = len(a["indices"])
        job_ids = [aid] if n == 1 else [f"{aid}_{i}" for i in range(n)]
        tpls = [note["runs"][i] for i in a["indices"]]
        made = be.adopt_group(a["folder"], aid, job_ids, [t["config"] for t in tpls])
        for job_id, tpl in zip(job_ids, tpls):
            validate_job_id(job_id)
            log_out, log_err = log_paths(Path(note["logs_dir"]), job_id, p["job_name"])
            out_dir = str(predict_out_dir(tpl["config"]["out_root"], job_id, None))
            runs.append(member_run(tpl, job_id, sw.backend, sw.sweep_id, p["created_at"], out_dir, log_out, log_err,
                                   {"out_dir": out_dir, **made["extra"].get(job_id, {}), "adopted": adopted}))
        recorded_arrays.append({"array_id": aid, "n": n, "first_index": a["indices"][0], "sbatch_script": made["script"],
                                "dependency": f"afterany:{prev}" if prev and a.get("dependency") else None})
        prev = aid
    sw.extra = {**sw.extra, "arrays": recorded_arrays, "adopted": adopted}
    try:
        if reg.add_sweep(sw, runs, submission_id=sid, adopting=True) is None:
            return   # recorded meanwhile, by its submitter or another crackops process
    except CrackopsError as e:
        result.warnings.append(f"sweep {sw.name}, started at {when}, could not be adopted: {e.message}")
        return
    result.runs.extend(runs)
    result.warnings.append(f"adopted sweep {sw.name} ({len(runs)} of {len(note['runs'])} runs, job array(s) "
                           f"{', '.join(aid for _, aid in arrays)}, submitted {when}): its crackops process "
                           "ended after sbatch, before recording it")


def _claimed_in_out_roots(pending: list[dict[str, Any]]) -> dict[str, str]:
    """``{submission id: job id}`` of pending submissions whose job already started: it claimed
    ``out/<job_id>`` (or ``out/<job_id>-<8 hex>``) with the submission's id in the owner file. Each
    out root's owner files are read once, whatever the number of pending rows."""
    from crackops.paths import OWNER_FILE

    wanted = {p["submission_id"] for p in pending}
    roots = {str(p["run"].get("config", {}).get("out_root") or "") for p in pending} - {""}
    found: dict[str, str] = {}
    for root in roots:
        if not Path(root).is_dir():
            continue
        for owner in Path(root).glob(f"*/{OWNER_FILE}"):
            try:
                sid = owner.read_text().strip()
            except OSError:
                continue
            if sid in wanted and sid not in found:
                name, suffix = owner.parent.name, f"-{sid[:8]}"
                found[sid] = name[: -len(suffix)] if name.endswith(suffix) else name
    return found
