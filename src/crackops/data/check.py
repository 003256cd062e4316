"""``check_dataset``: what is in a dataset folder and what would go wrong training on it.

It scans with the same code as the split (``crackops.data.scan``), so what the check calls
unusable is exactly what the split leaves out.

No TensorFlow here: this module must import fast.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crackops.data.scan import (CLASSES, FileInfo, extra_folders_problem, group_by_hash, resolve_class_dirs,
                                scan_class_dirs)

IMBALANCE_WARN = 1.5       # larger class / smaller class above this: warning
SMALL_CLASS_WARN = 50      # fewer usable images than this in a class: warning


@dataclass
class CheckReport:
    data_dir: str
    class_dirs: dict[str, str | None]            # class -> folder found (None: missing)
    files: dict[str, int]                        # class -> entries in its folder (files and sub-folders)
    counts: dict[str, int]                       # class -> usable images
    sizes: dict[str, int]                        # "227x227" -> n (decodable images)
    modes: dict[str, int]                        # "RGB" -> n
    formats: dict[str, int]                      # "JPEG" -> n
    unreadable: list[dict] = field(default_factory=list)    # {"path", "reason"}: corrupt / truncated
    non_images: list[dict] = field(default_factory=list)    # {"path", "reason"}: wrong extension/content, folders
    duplicates: list[list[str]] = field(default_factory=list)        # byte-identical groups within one class
    label_conflicts: list[list[str]] = field(default_factory=list)   # byte-identical groups across classes
    missing_classes: list[str] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)           # folder present, no usable image
    imbalance_ratio: float | None = None         # larger / smaller usable count (None if a class is empty)
    problems: list[dict] = field(default_factory=list)  # {"severity": "error"|"warning", "message"}
    ok: bool = True
    seconds: float = 0.0

    @property
    def duplicate_files(self) -> int:
        """Files that are extra copies (a group of k identical files has k - 1)."""
        return sum(len(g) - 1 for g in self.duplicates)

    @property
    def errors(self) -> list[str]:
        return [p["message"] for p in self.problems if p["severity"] == "error"]

    @property
    def warnings(self) -> list[str]:
        return [p["message"] for p in self.problems if p["severity"] == "warning"]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duplicate_files"] = self.duplicate_files
        return d


def _hist(values) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def check_dataset(
    data_dir,
    progress: Callable[[int], None] | None = None,
    *,
    total: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> CheckReport:
    """Scan ``data_dir`` (``positive/`` + ``negative/``) and report on it.

    ``progress(advance)`` is called as files are scanned; ``total(n)``, if given, is told the
    number of files first. Raises ``UsageError`` only when ``data_dir`` itself is missing or not a
    folder; everything else ends up in the report (``ok`` False for errors).
    """
    t0 = time.perf_counter()
    root, class_dirs = resolve_class_dirs(data_dir)
    infos = scan_class_dirs(class_dirs, verify=True, progress=progress, total_callback=total, workers=workers)

    report = CheckReport(
        data_dir=str(root),
        class_dirs={c: (str(d) if d else None) for c, d in class_dirs.items()},
        files={c: sum(1 for f in infos if f.cls == c) for c in CLASSES},
        counts={},
        sizes={},
        modes={},
        formats={},
    )
    decoded = [f for f in infos if f.ok]
    report.unreadable = [{"path": f.path, "reason": f.reason} for f in infos if f.kind == "unreadable"]
    report.non_images = [{"path": f.path, "reason": f.reason} for f in infos
                         if f.kind in ("non-image", "folder", "too-large")]
    report.sizes = _hist(f.size_str for f in decoded)
    report.modes = _hist(f.mode for f in decoded)
    report.formats = _hist(f.format for f in decoded)

    conflict_hashes: set[str] = set()
    for sha, group in sorted(group_by_hash(decoded).items(), key=lambda kv: sorted(f.path for f in kv[1])):
        if len(group) < 2:
            continue
        paths = sorted(f.path for f in group)
        if len({f.cls for f in group}) > 1:
            report.label_conflicts.append(paths)
            conflict_hashes.add(sha)
        else:
            report.duplicates.append(paths)
    usable = [f for f in decoded if f.sha256 not in conflict_hashes]
    report.counts = {c: sum(1 for f in usable if f.cls == c) for c in CLASSES}
    report.missing_classes = [c for c in CLASSES if class_dirs[c] is None]
    report.empty_classes = [c for c in CLASSES if class_dirs[c] is not None and report.counts[c] == 0]
    lo, hi = min(report.counts.values()), max(report.counts.values())
    report.imbalance_ratio = round(hi / lo, 3) if lo > 0 else None

    _problems(report, infos, usable)
    _split_problem(report, usable)
    report.ok = not report.errors
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _problems(r: CheckReport, infos: list[FileInfo], usable: list[FileInfo]) -> None:
    def err(msg: str) -> None:
        r.problems.append({"severity": "error", "message": msg})

    def warn(msg: str) -> None:
        r.problems.append({"severity": "warning", "message": msg})

    from pathlib import Path

    inside_class = Path(r.data_dir).name.lower() in CLASSES and len(r.missing_classes) == len(CLASSES)
    for c in r.missing_classes:
        err(f"no {c}/ folder in {r.data_dir} (a dataset needs positive/ = cracks and negative/ = no cracks"
            + (f"; this looks like a class folder itself: check its parent {Path(r.data_dir).parent}" if inside_class else "")
            + ")")
    for c in r.empty_classes:
        n = r.files[c]
        why = "it is empty" if n == 0 else f"none of its {_plural(n, 'entry', 'entries')} is a usable image"
        err(f"class {c!r} has no usable image: {why}")
    if r.label_conflicts:
        n = sum(len(g) for g in r.label_conflicts)
        err(f"{_plural(len(r.label_conflicts), 'group')} of byte-identical images appear in both classes "
            f"({_plural(n, 'file')}): the same picture is labelled crack and no crack; remove the wrong copies "
            "(training leaves them all out)")
    extra = extra_folders_problem(Path(r.data_dir))
    if extra:
        err(f"{extra[0]}; {extra[1]}")
    n_big = sum(1 for f in infos if f.kind == "too-large")
    if n_big:
        warn(f"{_plural(n_big, 'image')} {'is' if n_big == 1 else 'are'} too large to decode safely (decompression "
             "bombs: more pixels than Pillow's limit); training leaves them out")
    if r.unreadable:
        warn(f"{_plural(len(r.unreadable), 'image')} cannot be decoded (corrupt or truncated); training leaves them out")
    n_non = sum(1 for f in infos if f.kind == "non-image")
    if n_non:
        warn(f"{_plural(n_non, 'file')} in the class folders {'is' if n_non == 1 else 'are'} not usable images "
             "(wrong extension or content); training leaves them out")
    n_dirs = sum(1 for f in infos if f.kind == "folder")
    if n_dirs:
        warn(f"{_plural(n_dirs, 'sub-folder')} inside class folders {'is' if n_dirs == 1 else 'are'} not scanned: "
             "images must sit directly in positive/ and negative/")
    if r.duplicates:
        warn(f"{_plural(len(r.duplicates), 'group')} of byte-identical images within a class "
             f"({_plural(r.duplicate_files, 'extra copy', 'extra copies')}); the split keeps each group on one "
             "side, so test accuracy stays honest")
    if r.imbalance_ratio is not None and r.imbalance_ratio > IMBALANCE_WARN:
        big = max(r.counts, key=r.counts.get)
        warn(f"classes are imbalanced: {r.imbalance_ratio:.2f}x more {big} images "
             f"({r.counts['positive']:,} positive, {r.counts['negative']:,} negative); accuracy alone will flatter a model")
    small = [c for c in CLASSES if 0 < r.counts[c] < SMALL_CLASS_WARN]
    if small:
        warn(f"few images in {', '.join(small)} (under {SMALL_CLASS_WARN}): results will be noisy")
    if len(r.sizes) > 1:
        warn(f"images come in {len(r.sizes)} sizes ({', '.join(list(r.sizes)[:4])}{', ...' if len(r.sizes) > 4 else ''}); "
             "training resizes them all")
    odd_modes = {m: n for m, n in r.modes.items() if m != "RGB"}
    if odd_modes:
        warn("not all images are RGB (" + ", ".join(f"{n:,} {m}" for m, n in odd_modes.items())
             + "); training converts them to RGB")
    # A property that alone tells the classes apart is a shortcut a model will learn instead of cracks.
    if all(r.counts[c] > 0 for c in CLASSES):
        for attr, what in (("size_str", "sizes"), ("mode", "colour modes")):
            per = {c: {getattr(f, attr) for f in usable if f.cls == c} for c in CLASSES}
            if not per["positive"] & per["negative"] and (len(per["positive"]) + len(per["negative"]) > 1):
                warn(f"the classes have different image {what} (positive: {', '.join(sorted(per['positive']))[:60]}; "
                     f"negative: {', '.join(sorted(per['negative']))[:60]}): a model can learn that instead of the cracks")


def _split_problem(r: CheckReport, usable: list[FileInfo]) -> None:
    """An error when training with the default split fractions could not give every part (train,
    val, test) an image of each class: the run would fail at once, so the folder is not ready."""
    if not all(r.counts[c] > 0 for c in CLASSES):
        return  # already an error above
    from crackops.config import TrainConfig
    from crackops.data.split import assign_parts, check_parts
    from crackops.errors import UsageError

    d = TrainConfig()
    try:
        parts = assign_parts(usable, seed=d.seed, test_fraction=d.test_fraction, val_fraction=d.val_fraction)
        check_parts(parts, usable, val_fraction=d.val_fraction, test_fraction=d.test_fraction)
    except UsageError as e:
        r.problems.append({"severity": "error",
                           "message": f"{e.message} with the default --test-fraction {d.test_fraction} and "
                                      f"--val-fraction {d.val_fraction}; add images"})


#: Data folders found free of label conflicts by this process, with their folders' modification
#: times (a file added, removed or renamed changes them): checked again only when they change.
_NO_CONFLICTS: set[tuple] = set()


def _folders_stamp(data_dir: Path) -> tuple:
    return (str(data_dir), data_dir.stat().st_mtime_ns,
            *sorted((c.name, c.stat().st_mtime_ns) for c in data_dir.iterdir() if c.is_dir()))


def refuse_label_conflicts(data_dir: str | Path, cache_dir: str | Path | None = None) -> None:
    """Raise ``UsageError`` when byte-identical images sit in both classes, as ``crackops data
    check`` reports it (an error there). Uses the dataset fingerprint's file digests (cached in
    ``cache_dir``; ``submit`` computes the fingerprint anyway)."""
    from crackops.errors import UsageError
    from crackops.provenance import dataset_fingerprint

    data_dir = Path(data_dir).expanduser().resolve()
    try:
        stamp = _folders_stamp(data_dir)
    except OSError:
        stamp = None
    if stamp is not None and stamp in _NO_CONFLICTS:
        return
    groups = dataset_fingerprint(data_dir, cache_dir=cache_dir)["label_conflicts"]
    if not groups:
        if stamp is not None:
            _NO_CONFLICTS.add(stamp)
        return
    n = sum(len(g) for g in groups)
    example = " = ".join(groups[0][:2])
    raise UsageError(f"{_plural(len(groups), 'group')} of byte-identical images appear in both classes "
                     f"({_plural(n, 'file')}, e.g. {example}): the same picture is labelled crack and no crack",
                     f"remove the wrong copies (crackops data check {data_dir} lists them all)")
