"""Checking what a finished run left in out/<job_id>/.

The names are the run contract's (``crackops.contract``): the seed's files plus ``manifest.json``
(written last, atomically: its presence means the training finished). Verification decodes each
file enough to know it is not truncated or empty.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crackops.contract import (EXPECTED, MANIFEST, PREDICTIONS, PREDICTIONS_COLUMNS,  # noqa: F401
                               SEED_ARTIFACTS, read_manifest)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class ArtifactReport:
    out_dir: str
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    def summary(self) -> str:
        """'missing: a, b; corrupt: c (why)' for a reason line."""
        parts = []
        if self.missing:
            parts.append("missing: " + ", ".join(self.missing))
        if self.corrupt:
            parts.append("corrupt: " + ", ".join(f"{k} ({v})" for k, v in self.corrupt.items()))
        return "; ".join(parts) or "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "ok": self.ok, "present": self.present, "missing": self.missing,
                "corrupt": self.corrupt}


def _check_png(p: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(p) as im:
            im.load()
            if im.format != "PNG":
                return f"not a PNG ({im.format})"
            if im.size[0] < 16 or im.size[1] < 16:
                return f"image too small ({im.size[0]}x{im.size[1]})"
    except Exception as e:  # PIL raises many types for broken files
        return f"does not decode: {e}"
    return None


def _check_h5(p: Path) -> str | None:
    with open(p, "rb") as f:
        if f.read(8) != HDF5_MAGIC:
            return "not an HDF5 file"
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with TensorFlow
        return None
    try:
        with h5py.File(p, "r") as h:
            if "model_weights" not in h and "layers" not in h and "model_config" not in h.attrs:
                return "HDF5 file holds no Keras model"
    except Exception as e:
        return f"HDF5 file does not open: {e}"
    return None


def _check_metrics(p: Path) -> str | None:
    text = p.read_text(errors="replace")
    if "accuracy" not in text or "[test]" not in text:
        return "no test accuracy in metrics.txt"
    return None


def read_predictions(p: Path | str) -> tuple[list[tuple[str, int, float]], str | None]:
    """The rows of ``predictions_test.csv`` (path, label, crack probability) and the first problem
    with them (a missing column, a row that does not parse, a last line cut short), or None."""
    import csv

    rows: list[tuple[str, int, float]] = []
    try:
        with open(p, newline="", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        return rows, f"cannot read: {e.strerror or e}"
    reader = csv.reader(io.StringIO(text))
    head = next(reader, None)
    if head is None or tuple(c.strip() for c in head) != PREDICTIONS_COLUMNS:
        return rows, f"the header is not {','.join(PREDICTIONS_COLUMNS)}"
    last = text.count("\n") + (0 if text.endswith("\n") else 1)   # the number of the last line
    for i, rec in enumerate(reader, 2):
        try:
            path, label, prob = rec
            rows.append((path, int(label), float(prob)))
        except ValueError:
            if i == last and not text.endswith("\n"):
                return rows, f"the last line ({i}) is cut short"
            return rows, f"line {i} does not parse ({','.join(rec)[:60]!r})"
        if rows[-1][1] not in (0, 1) or not 0.0 <= rows[-1][2] <= 1.0:
            return rows, f"line {i}: label or probability out of range"
    if not text.endswith("\n"):
        return rows, f"the last line ({len(rows) + 1}) is cut short"
    return rows, None


def predictions_problem(p: Path | str, manifest: dict[str, Any] | None) -> str | None:
    """``predictions_test.csv`` against the manifest: one row per test image, and the errors at the
    manifest's threshold the same as its confusion counts."""
    rows, problem = read_predictions(p)
    if problem:
        return problem
    test = ((manifest or {}).get("metrics") or {}).get("test") or {}
    n = test.get("n")
    if n is not None and len(rows) != int(n):
        return f"{len(rows)} rows for the manifest's {n} test images"
    thr = float(test.get("threshold", 0.5) or 0.5)
    fn = sum(1 for _, y, pr in rows if y == 1 and pr < thr)
    fp = sum(1 for _, y, pr in rows if y == 0 and pr >= thr)
    # probabilities are written with 6 decimals: one within rounding of the threshold may fall either side
    near = [y for _, y, pr in rows if abs(pr - thr) <= 1e-6]
    if test.get("fn") is not None and test.get("fp") is not None and not (
            fn - near.count(1) <= test["fn"] <= fn + near.count(1)
            and fp - near.count(0) <= test["fp"] <= fp + near.count(0)):
        return (f"{fn} missed cracks and {fp} false alarms at threshold {thr:g}, the manifest says "
                f"{test['fn']} and {test['fp']}")
    return None


#: The metrics a split's confusion counts decide: recomputed from them, compared with what is written.
_FROM_COUNTS = {
    "accuracy": lambda tn, fp, fn, tp: (tp + tn) / (tn + fp + fn + tp),
    "precision": lambda tn, fp, fn, tp: tp / (tp + fp) if tp + fp else 0.0,
    "recall": lambda tn, fp, fn, tp: tp / (tp + fn) if tp + fn else 0.0,
    "f1": lambda tn, fp, fn, tp: 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
    "errors": lambda tn, fp, fn, tp: fp + fn,
    "n": lambda tn, fp, fn, tp: tn + fp + fn + tp,
}


def metrics_problem(manifest: dict[str, Any]) -> str | None:
    """Whether each split's metrics in the manifest agree with its own confusion counts (a number
    edited by hand, or written by a bug, is not shown as a result): None, or the first disagreement."""
    for split, m in sorted((manifest.get("metrics") or {}).items()):
        if not isinstance(m, dict):
            continue
        counts = [m.get(k) for k in ("tn", "fp", "fn", "tp")]
        if any(not isinstance(c, int) or c < 0 for c in counts) or not sum(counts):
            continue   # no counts to check against (older manifests)
        for key, f in _FROM_COUNTS.items():
            v = m.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v - f(*counts)) > 1e-6:
                return (f"its {split} {key} {v:g} disagrees with its own confusion counts "
                        f"(tn {counts[0]}, fp {counts[1]}, fn {counts[2]}, tp {counts[3]}: {f(*counts):.6g})")
    return None


def manifest_problem(out_dir: Path | str) -> str | None:
    """Why ``out_dir`` holds no finished run's manifest (None when it does). Cheap: one file read."""
    p = Path(out_dir) / MANIFEST
    if not p.is_file():
        return f"{p} is missing"
    m = read_manifest(out_dir)
    if m is None:
        return f"{p} is not valid JSON"
    if m.get("status") != "completed" or "metrics" not in m:
        return f"{p} has no completed metrics"
    return None


def verify(out_dir: Path | str) -> ArtifactReport:
    out = Path(out_dir)
    rep = ArtifactReport(out_dir=str(out))
    checks = {".png": _check_png, ".h5": _check_h5, ".txt": _check_metrics}
    for name in EXPECTED:
        p = out / name
        if not p.is_file():
            rep.missing.append(name)
            continue
        if p.stat().st_size == 0:
            rep.corrupt[name] = "empty file"
            continue
        if name == MANIFEST:
            rep.manifest = read_manifest(out)
            if rep.manifest is None:
                rep.corrupt[name] = "not valid JSON"
            elif rep.manifest.get("status") != "completed" or "metrics" not in rep.manifest:
                rep.corrupt[name] = "manifest has no completed metrics"
            elif (problem := metrics_problem(rep.manifest)) is not None:
                rep.corrupt[name] = problem
            else:
                rep.present.append(name)
            continue
        if name == PREDICTIONS:   # checked against the manifest, read last
            continue
        problem = checks.get(p.suffix, lambda _: None)(p)
        if problem:
            rep.corrupt[name] = problem
        else:
            rep.present.append(name)
    if PREDICTIONS not in rep.missing and PREDICTIONS not in rep.corrupt:
        problem = predictions_problem(out / PREDICTIONS, rep.manifest)
        if problem:
            rep.corrupt[PREDICTIONS] = problem
        else:
            rep.present.append(PREDICTIONS)
    return rep


def tail(path: Path | str | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' when there is none)."""
    if not path:
        return ""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# Start-up lines every TensorFlow job writes to stderr, whatever happens next: C++ logs (with their
# own timestamp), absl's, oneDNN/CPU-feature/CUDA notices, Python warnings and their source line.
BANNER = re.compile("|".join((
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\]",      # TF C++ log line
    r"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]",               # absl log line
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"^To enable the following instructions:",                          # cpu_feature_guard's 2nd line
    r"oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS",
    r"^\S+\.py:\d+: \w*Warning: ",                                      # warnings.warn(...) output
    r"^\s*$",
)))
WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")
# what says why a run ended, even inside a C++ log line
EXPLAINS = re.compile(r"Traceback \(most recent call last\)|Error\b|OOM|[Oo]ut of memory|oom[-_]kill|Killed"
                      r"|CANCELLED|TIMEOUT|TIME LIMIT|DUE TO|slurmstepd|^crackops: ")


def failure_tail(path: Path | str | None, lines: int = 15) -> str:
    """The last lines of a failed run's ``.err`` log that say why it ended: the last traceback (its
    tail, down to the exception), the OOM / TIMEOUT / CANCELLED lines, crackops' own messages;
    not TensorFlow's start-up banner. The raw tail when nothing in the log explains anything."""
    raw = tail(path, 2000)
    if not raw:
        return ""
    all_lines = raw.splitlines()
    kept, after_warning = [], False
    for ln in all_lines:
        source_line = after_warning and ln.startswith("  ")   # a warning's source line, printed after it
        after_warning = bool(WARNING.search(ln))
        if not (source_line or BANNER.search(ln)) or EXPLAINS.search(ln):
            kept.append(ln)
    if not any(EXPLAINS.search(ln) for ln in kept):
        return "\n".join(all_lines[-lines:])
    starts = [i for i, ln in enumerate(kept) if ln.startswith("Traceback (most recent call last)")]
    if starts:
        before = [ln for ln in kept[:starts[-1]] if EXPLAINS.search(ln)][-3:]  # e.g. slurmstepd's line
        kept = before + kept[starts[-1]:]
    return "\n".join(kept[-lines:])
