"""Crack probabilities for new images from a trained model (a ``.h5``/``.keras`` file or a run).

    from crackops.ml.predict import load_model, predict
    model = load_model("out/1234/best.h5")      # a model file or a run folder (job ids: crackops.api.predict)
    rows = predict(model, ["photos/", "wall.jpg"])
    # [{"path": ..., "prob_crack": 0.98, "label": "crack", "error": None}, ...]

Images are decoded and resized exactly as in training (``crackops.ml.pipeline.decode_resize``:
bilinear, no crop, to the model's input size) and fed in batches through tf.data; the model's own
``Rescaling(1/255)`` does the scaling. Files that are not images or do not decode become rows with
an ``error`` and no probability; they never stop the others.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from crackops.errors import CheckError, NotFoundError, UsageError

MODEL_SUFFIXES = (".h5", ".keras", ".hdf5")
DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 32
CRACK, NO_CRACK = "crack", "no crack"

Progress = Callable[[int], None]


@dataclass
class LoadedModel:
    model: Any            # the Keras model
    path: str             # the file it came from
    image_size: int       # square input size, from the model's input shape
    job_id: str | None = None


# ------------------------------------------------------------------ finding the model

def _looks_like_path(ref: str) -> bool:
    return ref.lower().endswith(MODEL_SUFFIXES) or os.sep in ref or "/" in ref or ref.startswith(".")


def resolve_model_path(ref: str | os.PathLike, find_run: Callable[[str], Path] | None = None
                       ) -> tuple[Path, str | None]:
    """A model file, a run folder (its ``best.h5``), or a job id that ``find_run`` turns into the
    run's model file (``crackops.api.model_path`` passes the registry lookup).

    Returns ``(path, job_id or None)``. Raises NotFoundError / StateError with a hint."""
    ref_s = str(ref).strip()
    if not ref_s:
        raise UsageError("no model given", "pass a job id (see crackops status) or a .h5/.keras file")
    try:
        p = Path(ref_s).expanduser()
    except RuntimeError:   # "~name" for a user who does not exist: not a path then
        p = Path(ref_s)
    try:
        is_file, is_dir = p.is_file(), p.is_dir()
    except OSError:        # e.g. a name too long for the file system: no such file, maybe a job id
        is_file = is_dir = False
    if is_file:
        return p.resolve(), None
    if is_dir:
        cand = p / "best.h5"
        if cand.is_file():
            return cand.resolve(), None
        raise NotFoundError(f"{p} is a folder without best.h5",
                            "pass a run's artifact folder, a .h5/.keras file, or a job id")
    if _looks_like_path(ref_s) or find_run is None:
        raise NotFoundError(f"model file {ref_s} does not exist",
                            "pass an existing .h5/.keras file, or a job id from crackops status")
    return find_run(ref_s), ref_s


# Lines TensorFlow's C++ side prints on stderr when it loads, whatever TF_CPP_MIN_LOG_LEVEL says.
_LOAD_NOISE = ("All log messages before absl::InitializeLog() is called",
               "oneDNN custom operations are on", "This TensorFlow binary is optimized",
               "To enable the following instructions", "rebuild TensorFlow with the appropriate")


@contextlib.contextmanager
def quiet_tensorflow_load() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 while TensorFlow loads, then pass it on
    without TensorFlow's start-up banner lines (errors and warnings still come through)."""
    import sys
    import tempfile

    if os.environ.get("CRACKOPS_TF_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except ValueError:
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not any(n in ln for n in _LOAD_NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _setup_tensorflow() -> None:
    from crackops.ml.tfsetup import allocated_cpus, configure_environment

    configure_environment()
    import tensorflow as tf

    cpus = allocated_cpus()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cpus)))
    except RuntimeError:  # TensorFlow already running in this process
        pass


def model_image_size(model: Any) -> int:
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else tuple(model.input_shape[0])
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise UsageError(f"the model's input shape {shape} is not a square RGB image",
                         "crackops predicts with models that take (size, size, 3) images, like the seed CNN")
    return int(shape[1])


def load_model(ref: str | os.PathLike, find_run: Callable[[str], Path] | None = None) -> LoadedModel:
    """Load a model from a ``.h5``/``.keras`` file or a run folder (a job id with ``find_run``; see
    :func:`resolve_model_path`)."""
    path, job_id = resolve_model_path(ref, find_run)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UsageError(f"{path} is not a model file (expected .h5 or .keras)",
                         "the first argument is the model: a job id or a .h5/.keras file; the images come after it")
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        with quiet_tensorflow_load():
            _setup_tensorflow()
            import keras

            model = keras.models.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001 - h5py/zipfile/keras raise many types for a bad file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if len(msg) > 200:
            msg = msg[:200].rsplit(" ", 1)[0] + " ..."
        raise CheckError(f"cannot load a Keras model from {path}: {msg}",
                         "pass a best.h5 written by crackops (or any Keras .h5/.keras model file)") from None
    finally:
        absl.setLevel(level)
    return LoadedModel(model=model, path=str(path), image_size=model_image_size(model), job_id=job_id)


# ------------------------------------------------------------------ finding the images

def list_images(paths: Iterable[str | os.PathLike]) -> list[tuple[str, str | None]]:
    """Files as given plus image files found in folders (recursively, sorted, hidden ones skipped).

    Returns ``[(path, problem or None)]`` in input order, duplicates dropped: a problem for a path
    that does not exist and for a non-image file inside a folder. Files named explicitly are tried
    whatever their extension (the content decides); whether images decode is checked later."""
    from crackops.data.scan import extension_problem

    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()

    def add(p: str, problem: str | None = None) -> None:
        if p not in seen:
            seen.add(p)
            out.append((p, problem))

    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    add(os.path.abspath(os.path.join(dirpath, name)), extension_problem(name))
        elif p.exists():
            add(os.path.abspath(p))
        else:
            add(str(raw), "no such file or folder")
    return out


def check_images(paths: Sequence[str]) -> dict[str, str]:
    """``{path: reason}`` for files that are not decodable images: the check training's split
    makes (``crackops.data.scan``), over several processes when there are many files."""
    from crackops.data.scan import extension_problem, scan_files

    infos = scan_files([(p, "") for p in paths], verify=True)
    # a file named explicitly is tried whatever its extension; when its content is no image either,
    # it is skipped for the reason a folder listing gives (one reason for one file)
    return {p: (info.kind == "non-image" and extension_problem(p)) or info.reason
            for p, info in zip(paths, infos) if not info.ok}


# ------------------------------------------------------------------ batches

def iter_batches(paths: Sequence[str], image_size: int, batch_size: int = DEFAULT_BATCH_SIZE
                 ) -> Iterator[tuple[list[int], Any]]:
    """``(indices into paths, uint8 batch of shape (n, size, size, 3))`` in order, decoded and
    resized as in training. Files TensorFlow cannot decode are left out (their index is missing)."""
    import tensorflow as tf

    from crackops.ml.pipeline import decode_resize, without_autotune

    if not paths:
        return
    AUTOTUNE = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), list(paths)))
    ds = ds.map(lambda i, p: (i, decode_resize(p, image_size)), num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors()  # a file that slipped past check_images must not end the run
    ds = without_autotune(ds.batch(batch_size).prefetch(AUTOTUNE))
    for idx, imgs in ds:
        yield [int(i) for i in idx.numpy()], imgs


def _probs(model: Any, batch: Any) -> list[float]:
    import numpy as np
    import tensorflow as tf

    out = model.predict_on_batch(tf.cast(batch, tf.float32))
    return [float(v) for v in np.asarray(tf.cast(out, tf.float32)).reshape(-1)]


def label_for(prob: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    return CRACK if prob >= threshold else NO_CRACK


def check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise UsageError(f"--threshold {threshold!r} is not a number", "use a value between 0 and 1, e.g. 0.5") from None
    if not 0.0 <= t <= 1.0:
        raise UsageError(f"--threshold {threshold} is out of range", "use a value between 0 and 1, e.g. 0.5")
    return t


def predict(model: LoadedModel | Any, paths: Iterable[str | os.PathLike], *, threshold: float = DEFAULT_THRESHOLD,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None,
            total_callback: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """One row per input file: ``{"path", "prob_crack", "label", "error"}``.

    ``model`` is a ``LoadedModel`` (from ``load_model``) or a Keras model. ``paths`` are files and
    folders (searched recursively). Rows come in input order; files that could not be used have
    ``prob_crack``/``label`` None and say why in ``error``. ``progress(n)`` is called as images are
    done; ``total_callback(n)`` once with the number of images to do."""
    threshold = check_threshold(threshold)
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size} must be positive", "e.g. --batch-size 32")
    lm = model if isinstance(model, LoadedModel) else LoadedModel(model, "", model_image_size(model))
    entries = list_images(paths)
    if not entries:
        raise UsageError("no images given", "pass image files or folders of images")
    candidates = [p for p, problem in entries if problem is None]
    bad = check_images(candidates)
    good = [p for p in candidates if p not in bad]
    if total_callback:
        total_callback(len(good))
    probs: dict[str, float] = {}
    for idx, batch in iter_batches(good, lm.image_size, batch_size):
        for i, pr in zip(idx, _probs(lm.model, batch)):
            probs[good[i]] = pr
        if progress:
            progress(len(idx))
    rows: list[dict[str, Any]] = []
    for p, problem in entries:
        if p in probs:
            rows.append({"path": p, "prob_crack": probs[p], "label": label_for(probs[p], threshold), "error": None})
        else:
            rows.append({"path": p, "prob_crack": None, "label": None,
                         "error": problem or bad.get(p, "image does not decode (TensorFlow could not read it)")})
    return rows
