"""Recording runs from their folders: ``crackops import OUT_DIR...``.

Every run's folder (``out/<job_id>/``) holds what its registry row needs, so a lost or damaged
registry, or runs copied from another machine, can be recorded again:

- ``provenance.json``: the submit section (config, code, data fingerprint, command) and, under
  ``"run"``, the row's own fields (``submit_record``: backend, name, resources, submit time, logs);
- ``status.json``: the job's phase (completed, failed, cancelled...) and its times;
- ``manifest.json``: written last by a run that finished its training (metrics are read from it
  by ``collect``, which checks the artifacts, as for any run).

A folder is recorded when its job ended (a completed manifest, or ``status.json`` in a final phase)
and no recorded run has its submission id or its folder; anything else is skipped with the reason.
Importing twice records nothing new. Nothing here reads TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from crackops import contract, provenance
from crackops.artifacts import manifest_problem
from crackops.errors import UsageError
from crackops.paths import JOB_ID_RE
from crackops.registry import Registry, Run

#: The row fields kept in ``provenance.json`` (``submit.run``) for ``import``.
RECORD_FIELDS = ("job_id", "backend", "name", "config", "resources", "submitted_at", "log_out", "log_err",
                 "extra", "sweep_id", "attempt", "continues")
#: ``status.json`` phases of a job that ended, and the state recorded for them.
ENDED_PHASES = {"completed": "COMPLETED", "failed": "FAILED", "cancelled": "CANCELLED"}
_MARKERS = (contract.MANIFEST, contract.STATUS_FILE, provenance.PROVENANCE_FILE)


def submit_record(run: Run) -> dict[str, Any]:
    """What ``import`` needs of ``run``'s registry row beyond its provenance, kept beside its
    artifacts at submit."""
    return {k: getattr(run, k) for k in RECORD_FIELDS}


@dataclass
class ImportReport:
    imported: list[Run] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (folder, why)

    def to_dict(self) -> dict[str, Any]:
        return {"imported": [{"job_id": r.shown_id, "state": r.state, "backend": r.backend,
                              "out_dir": r.out_dir} for r in self.imported],
                "skipped": [{"out_dir": d, "reason": why} for d, why in self.skipped]}


def is_run_folder(d: Path) -> bool:
    return any((d / m).is_file() for m in _MARKERS)


def run_folders(paths: Iterable[str | Path]) -> list[Path]:
    """The run folders named by ``paths``: each a run folder itself, or a folder of them (an out
    root). Sorted, each once."""
    found: dict[Path, None] = {}
    given = list(paths)
    if not given:
        raise UsageError("no folder given", "crackops import OUT_DIR (the folder that holds <job_id>/ folders)")
    for p in given:
        d = Path(p).expanduser()
        if not d.is_dir():
            raise UsageError(f"{str(d)!r} is not a folder", "give an out folder (default ./out) or a run's folder")
        d = d.resolve()
        if is_run_folder(d):
            found[d] = None
            continue
        try:
            children = sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError as e:
            raise UsageError(f"cannot read folder {str(d)!r}: {e.strerror or e}", "check its permissions") from None
        for c in children:
            found[c] = None
    return list(found)


def count_run_folders(out_root: str | Path) -> int:
    """How many run folders ``out_root`` holds (0 when it is not a folder): ``status`` with an
    empty registry points at ``crackops import`` when there are some."""
    try:
        return sum(1 for c in Path(out_root).iterdir() if c.is_dir() and is_run_folder(c))
    except OSError:
        return 0


def _folder_run(d: Path) -> Run | str:
    """The run recorded in folder ``d``, or why it cannot be recorded."""
    if not is_run_folder(d):
        return "not a run folder (no manifest.json, status.json or provenance.json)"
    status = contract.read_status(d) or {}
    manifest = contract.read_manifest(d)
    doc = provenance.read_file(d) or {}
    submit = doc.get("submit") or {}
    record = submit.get("run") or {}
    if manifest_problem(d) is None:
        state = "COMPLETED"
    elif status.get("phase") in ENDED_PHASES:
        state = ENDED_PHASES[status["phase"]]
    else:
        phase = status.get("phase")
        return (f"not finished: status.json says {phase!r}" if phase else
                "not finished: no completed manifest.json and no status.json")
    config = dict(record.get("config") or submit.get("config") or (manifest or {}).get("config") or {})
    job_id = str(record.get("job_id") or status.get("job_id") or (manifest or {}).get("job_id") or d.name)
    if not JOB_ID_RE.match(job_id):
        return f"no usable job id ({job_id!r})"
    if not config:
        return "no config (neither provenance.json nor manifest.json has one)"
    config["job_id"] = None
    started = status.get("started_at") or (manifest or {}).get("started_at")
    ended = status.get("ended_at") or (manifest or {}).get("ended_at")
    submitted = record.get("submitted_at") or submit.get("recorded_at") or started or d.stat().st_mtime
    provenance_doc = {k: v for k, v in submit.items() if k != "run"} or None
    if provenance_doc is not None and "start" in doc:
        provenance_doc = {**provenance_doc, "start": doc["start"], "code_changed": doc.get("code_changed")}
    reason = None if state == "COMPLETED" else (status.get("error") or f"status.json: {status.get('phase')}")
    return Run(job_id=job_id, backend=str(record.get("backend") or "unknown"), state=state, config=config,
               resources=dict(record.get("resources") or {}), submitted_at=float(submitted), out_dir=str(d),
               name=record.get("name"), reason=reason, started_at=started, ended_at=ended,
               log_out=record.get("log_out"), log_err=record.get("log_err"),
               extra={**(record.get("extra") or {}), "out_dir": str(d), "imported_from": str(d),
                      "imported_at": time.time()},
               state_source="imported", provenance=provenance_doc, sweep_id=record.get("sweep_id"),
               attempt=record.get("attempt"), continues=record.get("continues"))


def import_runs(paths: Iterable[str | Path], registry: Registry | None = None) -> ImportReport:
    """Record every ended run found in ``paths`` (out roots or run folders) that the registry does
    not have (same submission id, or same folder), in one transaction. Returns what was recorded
    and what was skipped, with why."""
    folders = run_folders(paths)
    reg = registry or Registry()
    submissions, out_dirs = reg.identities()
    rep = ImportReport()
    for d in folders:
        got = _folder_run(d)
        if isinstance(got, str):
            rep.skipped.append((str(d), got))
            continue
        sid = got.config.get("submission_id")
        if str(d) in out_dirs or (sid and sid in submissions):
            rep.skipped.append((str(d), f"recorded already (job {got.job_id})"))
            continue
        if got.backend == "unknown":
            got.reason = "imported from a folder without its submit record: backend and resources unknown"
        rep.imported.append(got)
        submissions.add(sid)
        out_dirs.add(str(d))
    if rep.imported:
        reg.add_many(rep.imported)
        mine = {r.out_dir for r in rep.imported}
        rep.imported = [r for r in reg.list() if r.out_dir in mine]   # with their keys and refs
    return rep
