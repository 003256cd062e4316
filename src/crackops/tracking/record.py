"""One run, or one sweep, as the fields an experiment tracker holds. Pure: reads the registry row
and the run's files (manifest, backup state, provenance), calls nothing remote.

``MAPPING`` is the documented correspondence (the README's table is this list): which crackops
key becomes which MLflow field, and which TensorBoard tag shows it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from crackops.contract import MANIFEST, PREDICTIONS, SEED_ARTIFACTS, read_manifest
from crackops.registry import Run, Sweep
from crackops.states import TERMINAL_STATES

RUN_KEY_TAG = "crackops.run_key"     # looked up to make a second export update, never duplicate
DIGEST_TAG = "crackops.digest"       # what was sent last: an unchanged run is not sent again
ARTIFACTS_TAG = "crackops.artifacts_digest"
PARENT_TAG = "mlflow.parentRunId"    # MLflow's own nesting tag (a sweep's members)
RUN_NAME_TAG = "mlflow.runName"

#: Config keys that are plumbing of one submission, not settings of the training: not params.
NOT_PARAMS = ("out_root", "job_id", "submission_id", "resume_from")
#: The per-epoch history (manifest ``history``; the backup's while a run is unfinished), as MLflow
#: metric steps and the TensorBoard tags Keras writes (step: the epoch index from 0 in both).
HISTORY = (("loss", "epoch_loss", "train/epoch_loss"), ("accuracy", "epoch_accuracy", "train/epoch_accuracy"),
           ("val_loss", "epoch_val_loss", "validation/epoch_loss"),
           ("val_accuracy", "epoch_val_accuracy", "validation/epoch_accuracy"),
           ("lr", "epoch_learning_rate", "train/epoch_learning_rate"))
#: Efficiency (``accounting``, from sacct or the local runner): MLflow metrics of the same name.
EFFICIENCY = ("cpu_eff", "mem_eff", "time_eff", "max_rss_mb", "req_mem_mb", "total_cpu_s", "elapsed_s", "alloc_cpus")

#: (crackops key, MLflow field, TensorBoard tag or "") - the README's mapping table.
MAPPING: list[tuple[str, str, str]] = [
    ("config.KEY (manifest / registry `config`)", "param `KEY`", ""),
    ("resources.cpus / mem / time / partition", "param `resources.cpus` ...", ""),
    *[(f"history.{k} (per epoch)", f"metric `{m}`, step = epoch index (0-based)", f"`{t}`") for k, m, t in HISTORY],
    ("-", "-", "`train/batch_loss`, `train/batch_accuracy` (step = optimizer step, every `tensorboard_every`)"),
    ("metrics.{train,val,test}_{accuracy,precision,recall,f1,roc_auc,tn,fp,fn,tp,errors,n}",
     "metric of the same name (final, best weights)", ""),
    ("metrics.epochs_run, best_epoch, wall_time_s, train_images_per_s", "metric of the same name", ""),
    ("metrics.ood_* (out-of-domain sets, where measured)", "metric of the same name", ""),
    ("accounting.cpu_eff, mem_eff, time_eff, max_rss_mb, req_mem_mb, ...", "metric of the same name, "
     "and tags `crackops.cpu_eff`, `crackops.mem_eff` (e.g. `83%`, `1.2G of 4.0G`)", ""),
    ("job_id, backend, state, reason, attempt, continues", "tags `crackops.job_id`, `crackops.backend`, "
     "`crackops.state`, `crackops.reason`, `crackops.attempts`, `crackops.continues`", ""),
    ("state", "run status: COMPLETED -> FINISHED, CANCELLED/PREEMPTED -> KILLED, other ends -> FAILED, "
     "live -> RUNNING", ""),
    ("name (or job id)", "run name (`mlflow.runName`)", "run name in `--logdir_spec`: `JOB_ID-NAME`"),
    ("submitted_at / started_at, ended_at", "start time, end time", ""),
    ("provenance.crackops.source_sha256", "tag `crackops.code_digest`", ""),
    ("provenance.git.commit, dirty", "tags `mlflow.source.git.commit`, `crackops.git_dirty`", ""),
    ("provenance.dataset.data_dir.sha256", "tag `crackops.dataset_fingerprint`", ""),
    ("sweep (name, grid, seeds)", "parent run (tag `crackops.kind = sweep`, params `grid.KEY`, `seeds`); "
     "members carry `mlflow.parentRunId` and `crackops.sweep`", ""),
    ("out/<job_id>/: seed files, predictions_test.csv, manifest.json, best.h5", "artifacts (same names)", ""),
    ("backend:job_id:submitted_at", f"tag `{RUN_KEY_TAG}` (what a second export looks up)", ""),
]


@dataclass
class Record:
    """What one MLflow run holds. ``steps``: metric -> [(step, value, timestamp ms)]."""

    key: str
    name: str
    params: dict[str, str]
    tags: dict[str, str]
    steps: dict[str, list[tuple[int, float, int]]]
    final: dict[str, float]
    artifacts: list[Path]
    status: str
    start_ms: int | None
    end_ms: int | None
    parent_key: str | None = None
    kind: str = "run"
    job_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def digest(self) -> str:
        """Of everything sent but the artifacts (they have ``artifacts_digest``)."""
        doc = {k: getattr(self, k) for k in ("key", "name", "params", "tags", "steps", "final", "status",
                                             "start_ms", "end_ms", "parent_key")}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def artifacts_digest(self) -> str:
        h = hashlib.sha256()
        for p in self.artifacts:
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]


def run_key(run: Run) -> str:
    """The crackops identity of a run across registries and exports: backend, job id, submit time
    (a job id the scheduler hands out again belongs to another submission)."""
    return f"{run.backend}:{run.job_id}:{run.submitted_at:.3f}"


def sweep_key(sweep: Sweep) -> str:
    return f"sweep:{sweep.sweep_id}"


def mlflow_status(state: str) -> str:
    if state == "COMPLETED":
        return "FINISHED"
    if state in ("CANCELLED", "PREEMPTED"):
        return "KILLED"
    return "FAILED" if state in TERMINAL_STATES else "RUNNING"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _history(run: Run, manifest: dict[str, Any] | None) -> tuple[dict[str, list[float]], list[float], float | None]:
    """(history, epoch seconds, when the training started): the manifest's, or the last backup's
    while a run is unfinished (failed, cancelled, running)."""
    if manifest:
        rt = manifest.get("runtime") or {}
        return manifest.get("history") or {}, list(rt.get("epoch_s") or []), manifest.get("started_at")
    from crackops.ml.backup import read_state  # neither TensorFlow nor numpy

    st = read_state(run.out_dir) or {}
    hist = dict(st.get("history") or {})
    timer = st.get("timer") or {}
    if timer.get("lrs"):
        hist["lr"] = list(timer["lrs"])
    return hist, list(timer.get("epoch_s") or []), st.get("started_at")


def _steps(history: dict[str, list[float]], epoch_s: list[float], t0: float | None) -> dict[str, list]:
    """Per-epoch points with timestamps from the epochs' own times (the same every export)."""
    stamps, t = [], (t0 or 0.0)
    n = max((len(v) for v in history.values()), default=0)
    for i in range(n):
        t += epoch_s[i] if i < len(epoch_s) else 1.0
        stamps.append(_ms(t))
    out: dict[str, list] = {}
    for key, metric, _ in HISTORY:
        pts = [(i, float(v), stamps[i]) for i, v in enumerate(history.get(key) or []) if _num(v) is not None]
        if pts:
            out[metric] = pts
    return out


def _pct(v: Any) -> str | None:
    return None if _num(v) is None else f"{float(v):.0%}"


def _mem(mb: Any) -> str:
    return f"{float(mb) / 1024:.1f}G"


def _tags(run: Run, manifest: dict[str, Any] | None, sweep_name: str | None) -> dict[str, str]:
    prov = run.provenance or {}
    git = prov.get("git") or {}
    data_fp = ((prov.get("dataset") or {}).get("data_dir") or {}).get("sha256")
    acct = run.accounting or {}
    mem = None
    if _num(acct.get("max_rss_mb")) is not None and _num(acct.get("req_mem_mb")):
        mem = f"{_pct(acct.get('mem_eff')) or '?'} ({_mem(acct['max_rss_mb'])} of {_mem(acct['req_mem_mb'])})"
    attempts = (manifest or {}).get("attempts") or run.attempt
    ood = sorted(k for k in (run.metrics or {}) if k.startswith("ood"))
    tags = {
        RUN_NAME_TAG: run.name or run.job_id, "crackops.kind": "run", "crackops.job_id": run.shown_id,
        "crackops.backend": run.backend, "crackops.state": run.state, "crackops.reason": run.reason,
        "crackops.attempts": attempts, "crackops.continues": run.continues, "crackops.sweep": sweep_name,
        "crackops.out_dir": run.out_dir, "crackops.cpu_eff": _pct(acct.get("cpu_eff")), "crackops.mem_eff": mem,
        "crackops.code_digest": (prov.get("crackops") or {}).get("source_sha256"),
        "crackops.version": (prov.get("crackops") or {}).get("version"),
        "mlflow.source.git.commit": git.get("commit"),
        "crackops.git_dirty": None if git.get("dirty") is None else str(bool(git["dirty"])).lower(),
        "crackops.dataset_fingerprint": data_fp,
        "crackops.ood_sets": ", ".join(ood) if ood else None,
    }
    return {k: str(v) for k, v in tags.items() if v is not None and v != ""}


def run_record(run: Run, *, sweep_name: str | None = None, parent_key: str | None = None) -> Record:
    """``run`` (a registry row, collected when finished) as one MLflow run's fields."""
    manifest = read_manifest(run.out_dir) if run.out_dir else None
    history, epoch_s, t0 = _history(run, manifest)
    params = {k: str(v) for k, v in sorted((run.config or {}).items()) if k not in NOT_PARAMS}
    params.update({f"resources.{k}": str(v) for k, v in sorted((run.resources or {}).items())
                   if k in ("cpus", "mem", "time", "partition", "gres") and v not in (None, "")})
    final = {k: float(v) for k, v in (run.metrics or {}).items() if _num(v) is not None}
    final.update({k: float(v) for k in EFFICIENCY if _num(v := (run.accounting or {}).get(k)) is not None})
    out = Path(run.out_dir) if run.out_dir else None
    names = (*SEED_ARTIFACTS, PREDICTIONS, MANIFEST)
    artifacts = [out / n for n in names if out is not None and (out / n).is_file()]
    started = run.started_at or run.submitted_at
    return Record(key=run_key(run), name=run.name or run.job_id, params=params,
                  tags={**_tags(run, manifest, sweep_name), RUN_KEY_TAG: run_key(run)},
                  steps=_steps(history, epoch_s, t0 or started), final=final, artifacts=artifacts,
                  status=mlflow_status(run.state), start_ms=_ms(started),
                  end_ms=_ms(run.ended_at) if run.terminal else None, parent_key=parent_key,
                  job_id=run.shown_id)


def sweep_record(sweep: Sweep, members: Iterable[Run]) -> Record:
    """A sweep as the parent run of its members: its grid and seeds as params."""
    runs = list(members)
    params = {f"grid.{k}": json.dumps(v) for k, v in sorted(sweep.grid.items())}
    params["seeds"] = json.dumps(sweep.seeds)
    params.update({k: str(v) for k, v in sorted(sweep.base_config.items())
                   if k not in NOT_PARAMS and k not in sweep.grid and k != "seed"})
    states = [r.state for r in runs]
    status = ("RUNNING" if any(s not in TERMINAL_STATES for s in states) else
              "FINISHED" if states and all(s == "COMPLETED" for s in states) else "FAILED")
    done = sum(s == "COMPLETED" for s in states)
    final = {"runs": float(len(runs)), "runs_completed": float(done)}
    accs = [v for r in runs if r.state == "COMPLETED" and (v := _num((r.metrics or {}).get("test_accuracy"))) is not None]
    if accs:
        final["best_test_accuracy"] = max(accs)
    ends = [r.ended_at for r in runs if r.ended_at is not None]
    tags = {RUN_NAME_TAG: sweep.name, "crackops.kind": "sweep", "crackops.sweep": sweep.name,
            "crackops.sweep_id": sweep.sweep_id, "crackops.backend": sweep.backend, RUN_KEY_TAG: sweep_key(sweep)}
    return Record(key=sweep_key(sweep), name=sweep.name, params=params, tags=tags, steps={}, final=final,
                  artifacts=[], status=status, start_ms=_ms(sweep.created_at),
                  end_ms=_ms(max(ends)) if ends and status != "RUNNING" else None, kind="sweep")
