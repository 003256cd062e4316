"""Prediction with a finished run's model (TensorFlow loads only when ``predict`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from crackops.api.states import refresh
from crackops.errors import CheckError, NotFoundError, StateError, UsageError
from crackops.registry import Registry


def _run_model(job_id: str, registry: Registry | None = None) -> Path:
    """A finished run's ``best.h5``, refreshing its state once if needed."""
    reg = registry or Registry()
    run = reg.get(job_id)  # NotFoundError with a hint when unknown
    if not run.terminal:
        run = refresh([run], reg).runs[0]
    if not run.terminal:
        raise StateError(f"run {run.job_id} is still {run.state}: it has no final model yet",
                         f"wait for it: crackops wait {run.job_id}")
    if run.state != "COMPLETED":
        raise StateError(f"run {run.job_id} ended {run.state}: it left no usable model",
                         f"see why: crackops status {run.job_id}")
    best = Path(run.out_dir) / "best.h5"
    if not best.is_file():
        raise NotFoundError(f"run {run.job_id} has no model: {best} is missing",
                            f"check its artifacts: crackops collect {run.job_id}")
    return best


def model_path(ref: str | Path, registry: Registry | None = None) -> tuple[Path, str | None]:
    """A model file, a run folder (its ``best.h5``) or a job id (that run's ``best.h5``) ->
    ``(path, job_id or None)``. Loads no TensorFlow."""
    from crackops.ml.predict import resolve_model_path

    return resolve_model_path(ref, find_run=lambda job_id: _run_model(job_id, registry))


class Progress:
    """What ``predict`` reports progress to (the CLI's progress bar); does nothing by default."""

    def __init__(self, what: str):
        self.what = what

    def total(self, n: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class PredictResult:
    rows: list[dict[str, Any]]        # one per file: path, prob_crack, label, error (+ gradcam)
    model_path: str
    job_id: str | None
    image_size: int
    threshold: float
    explain_dir: str | None = None

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["error"]]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["error"]]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_path, "job_id": self.job_id, "image_size": self.image_size,
                "threshold": self.threshold, "rows": self.rows}


def predict(model: str | Path, paths: Iterable[str | Path], *, threshold: float = 0.5, batch_size: int = 32,
            explain_dir: str | Path | None = None, progress: Callable[[str], Progress] = Progress,
            on_model: Callable[[PredictResult], None] | None = None,
            registry: Registry | None = None) -> PredictResult:
    """Crack probabilities for image files and folders (searched recursively) with a model file,
    a run folder or a finished run's job id; with ``explain_dir``, a Grad-CAM overlay per image
    there too (``row["gradcam"]``). Unusable files become rows with an ``error`` (``result.ok``
    is empty when none could be predicted). ``progress(what)`` makes a progress
    reporter per phase; ``on_model`` is called once the model is loaded."""
    from crackops.ml.predict import check_threshold, list_images, load_model, predict as run_predict

    paths = [str(p) for p in paths]
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size} must be positive", "e.g. --batch-size 32")
    threshold = check_threshold(threshold)
    path, job_id = model_path(model, registry)  # fail fast, before TensorFlow loads
    entries = list_images(paths)
    if not any(problem is None for _, problem in entries):
        missing = [p for p, problem in entries if problem == "no such file or folder"]
        if missing and len(missing) == len(paths):
            raise NotFoundError(f"no such file or folder: {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""),
                                "pass image files or folders of images")
        raise CheckError("no image files found in " + ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else ""),
                         "pass .jpg/.jpeg/.png/.bmp/.gif files or folders holding them")
    loaded = load_model(path)
    result = PredictResult(rows=[], model_path=loaded.path, job_id=job_id, image_size=loaded.image_size,
                           threshold=threshold, explain_dir=str(explain_dir) if explain_dir else None)
    if on_model is not None:
        on_model(result)
    bar = progress("predicting")
    try:
        result.rows = run_predict(loaded, paths, threshold=threshold, batch_size=batch_size,
                                  progress=bar.advance, total_callback=bar.total)
    finally:
        bar.close()
    if explain_dir:
        _explain(loaded, result, explain_dir, batch_size, progress)
    return result


def _explain(loaded: Any, result: PredictResult, explain_dir: str | Path, batch_size: int,
             progress: Callable[[str], Progress]) -> None:
    ok = result.ok
    written: dict[str, Any] = {}
    if ok:
        from crackops.ml.explain import explain as run_explain

        bar = progress("heat maps")
        bar.total(len(ok))
        try:
            written = run_explain(loaded, [r["path"] for r in ok], explain_dir, batch_size=batch_size,
                                  progress=bar.advance)
        finally:
            bar.close()
    for r in result.rows:
        png = written.get(r["path"])
        r["gradcam"] = str(png) if png else None
