"""The train/val/test split used by training: deterministic, stratified, duplicate-aware.

Özgenel's release holds 1,519 groups of byte-identical images. A random split puts copies of
training images into the test set and inflates test accuracy, so here every group of identical
files (same SHA-256) goes to one side only. A file identical to one in the *other* class is a label
conflict: all its copies are left out and reported in ``skipped``.

How parts are drawn, per class: groups are ranked by ``sha256("<seed>:<content hash>")`` (so the
assignment depends on the seed and the content, not on file order or names), then the test part
takes groups in rank order until it holds ``round(n * test_fraction)`` (halves up) images (``n``: the usable
images of that class), then the validation part likewise takes ``round(m * val_fraction)`` of the
``m`` images left (validation comes from the training part only, as in Keras' ``validation_split``),
and the rest is training data. Defaults 0.2 and 0.1 give 72 % train, 8 % val, 20 % test.

No TensorFlow here: this module must import fast.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crackops.data.scan import CLASSES, FileInfo, group_by_hash, resolve_class_dirs, scan_class_dirs
from crackops.errors import UsageError

LABELS = {"negative": 0, "positive": 1}   # 1 = crack
PARTS = ("train", "val", "test")


@dataclass
class Split:
    train: list[tuple[str, int]]   # absolute path, label
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]
    skipped: list[dict]            # {"path": ..., "reason": ...}: files not used
    fingerprints: dict[str, str]   # part -> sha256 hex of the sorted "<class>/<filename>" list
    duplicate_groups: int          # groups of byte-identical files found (each kept on one side)
    counts: dict[str, dict[str, int]]  # {"train": {"positive": n, "negative": n}, ...}
    params: dict = field(default_factory=dict)  # how it was made (data_dir, seed, fractions, ...)

    def to_dict(self) -> dict:
        """Everything JSON-able except the long file lists."""
        return {
            **self.params,
            "counts": {p: dict(c) for p, c in self.counts.items()},
            "sizes": {p: len(getattr(self, p)) for p in PARTS},
            "fingerprints": dict(self.fingerprints),
            "duplicate_groups": self.duplicate_groups,
            "skipped": [dict(s) for s in self.skipped],
        }


def fingerprint(keys: list[str]) -> str:
    """sha256 hex of the sorted ``<class>/<filename>`` keys joined by newlines."""
    return hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()


def _rank(seed: int, salt: str, sha: str) -> str:
    return hashlib.sha256(f"{seed}:{salt}:{sha}".encode()).hexdigest()


def _check_fraction(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number between 0 and 1, got {value!r}", f"e.g. {name}=0.2") from None
    if not 0.0 <= v < 1.0:
        raise UsageError(f"{name} must be at least 0 and below 1, got {value!r}", f"e.g. {name}=0.2")
    return v


def _scan_source(root_dir, verify: bool, progress, role: str) -> tuple[str, list[FileInfo]]:
    root, class_dirs = resolve_class_dirs(root_dir)
    missing = [c for c, d in class_dirs.items() if d is None]
    if missing:
        hint = ("the folder must hold positive/ (cracks) and negative/ (no cracks) sub-folders of images; "
                "`crackops data check DIR` shows what it holds")
        if root.name.lower() in CLASSES and len(missing) == 2:
            hint = f"that looks like a class folder itself: give its parent, {str(root.parent)!r}"
        raise UsageError(f"{role} {str(root)!r} has no {' or '.join(m + '/' for m in missing)} folder", hint)
    return str(root), scan_class_dirs(class_dirs, verify=verify, progress=progress)


def _usable(infos: list[FileInfo], skipped: list[dict]) -> tuple[list[FileInfo], int]:
    """Drop unusable files and label conflicts (recorded in ``skipped``). Returns (usable, duplicate groups)."""
    usable = []
    for f in infos:
        if f.ok:
            usable.append(f)
        else:
            skipped.append({"path": f.path, "reason": f.reason})
    dup_groups = 0
    conflicted: set[str] = set()
    for sha, group in group_by_hash(usable).items():
        if len({f.cls for f in group}) > 1:
            conflicted.add(sha)
            others = ", ".join(sorted(g.key for g in group))
            for f in group:
                skipped.append({"path": f.path,
                                "reason": f"label conflict: byte-identical files in both classes ({others})"})
        elif len(group) > 1:
            dup_groups += 1
    return [f for f in usable if f.sha256 not in conflicted], dup_groups


def _take(groups: list[list[FileInfo]], target: int) -> tuple[list[list[FileInfo]], list[list[FileInfo]]]:
    """Take groups in order while they fit in ``target`` images; if none fit but target > 0, take the
    smallest. Returns (taken, rest), both in the original order."""
    taken_idx: list[int] = []
    n = 0
    for i, g in enumerate(groups):
        if n >= target:
            break
        if n + len(g) <= target:
            taken_idx.append(i)
            n += len(g)
    if target > 0 and not taken_idx and groups:
        taken_idx = [min(range(len(groups)), key=lambda i: (len(groups[i]), i))]
    chosen = set(taken_idx)
    return [groups[i] for i in taken_idx], [g for i, g in enumerate(groups) if i not in chosen]


def _ranked_groups(files: list[FileInfo], seed: int, salt: str) -> list[list[FileInfo]]:
    groups = group_by_hash(files)
    order = sorted(groups, key=lambda sha: _rank(seed, salt, sha))
    return [sorted(groups[sha], key=lambda f: f.name) for sha in order]


def _cap(files: list[FileInfo], cap: int | None, seed: int) -> list[FileInfo]:
    """Deterministic subsample of at most ``cap`` images per class (whole duplicate groups)."""
    if cap is None:
        return files
    out: list[FileInfo] = []
    for cls in CLASSES:
        groups = _ranked_groups([f for f in files if f.cls == cls], seed, "cap")
        taken, _ = _take(groups, cap)
        out.extend(f for g in taken for f in g)
    return out


def _entries(files: list[FileInfo]) -> list[tuple[str, int]]:
    return [(f.path, LABELS[f.cls]) for f in sorted(files, key=lambda f: (f.cls, f.name))]


#: What to change when a folder is too small to split: the CLI flags (the TrainConfig fields are
#: max_images, test_fraction and val_fraction).
TOO_FEW_HINT = ("add images, raise --max-images (or leave it out), or change --test-fraction / "
                "--val-fraction; `crackops data check DIR` shows the usable images per class")


def _check_args(seed: Any, test_fraction: float, val_fraction: float, test_dir: str | None,
                max_per_class: Any) -> tuple[float, float]:
    """``UsageError`` for a bad seed, fraction or cap; returns (test fraction, val fraction)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be an integer, got {seed!r}", "e.g. seed=42")
    tf = _check_fraction("test_fraction", test_fraction) if test_dir is None else 0.0
    vf = _check_fraction("val_fraction", val_fraction)
    if max_per_class is not None:
        if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1:
            raise UsageError(f"--max-images must be a positive integer, got {max_per_class!r}",
                             "e.g. --max-images 500 for a quick run, or leave it out to use everything")
    return tf, vf


def _separate_test_set(test_dir: str, root: str, usable: list[FileInfo], *, seed: int,
                       max_per_class: int | None, verify: bool, progress: Callable[[int], None] | None,
                       skipped: list[dict]) -> tuple[str, list[FileInfo], list[FileInfo], int]:
    """Scan ``test_dir``; returns (its root, its usable files, the training files left once every
    file identical to a test image is taken out, each reported in ``skipped``, and the number of
    duplicate groups inside the test folder)."""
    test_root, tinfos = _scan_source(test_dir, verify, progress, "test folder")
    if os.path.realpath(test_root) == os.path.realpath(root):
        raise UsageError("test_dir is the same folder as the data folder",
                         "give a separate folder of test images, or leave test_dir unset to split the data folder")
    test_files, tdups = _usable(tinfos, skipped)
    test_files = _cap(test_files, max_per_class, seed)
    test_hashes = {f.sha256: f for f in test_files}
    kept = []
    for f in usable:
        twin = test_hashes.get(f.sha256)
        if twin is None:
            kept.append(f)
        else:
            what = "label conflict with" if twin.cls != f.cls else "byte-identical to"
            skipped.append({"path": f.path,
                            "reason": f"warning: {what} test image {twin.path}: left out of training"})
    return test_root, test_files, kept, tdups


def _require_each_class(usable: list[FileInfo], root: str, test_files: list[FileInfo] | None,
                        test_root: str | None) -> None:
    """``UsageError`` when a class has no usable image (in the data folder, or the test folder)."""
    for cls in CLASSES:
        if not any(f.cls == cls for f in usable):
            raise UsageError(
                f"class {cls!r} in {root!r} has no usable images",
                f"put images into {cls}/ (`crackops data check {root}` lists what is wrong with the files there)",
            )
        if test_files is not None and not any(f.cls == cls for f in test_files):
            raise UsageError(
                f"class {cls!r} in test folder {test_root!r} has no usable images",
                f"put test images into its {cls}/ (`crackops data check {test_root}` shows what it holds)",
            )


def assign_parts(usable: list[FileInfo], *, seed: int, test_fraction: float, val_fraction: float,
                 test_files: list[FileInfo] | None = None) -> dict[str, list[FileInfo]]:
    """Deal usable files into train/val/test, whole duplicate groups at a time, class by class
    (``test_files``: a separate test set; then only val is taken from ``usable``)."""
    parts: dict[str, list[FileInfo]] = {p: [] for p in PARTS}
    for cls in CLASSES:
        files = [f for f in usable if f.cls == cls]
        n = len(files)
        groups = _ranked_groups(files, seed, "split")
        if test_files is None:
            test_g, groups = _take(groups, int(n * test_fraction + 0.5))
            parts["test"].extend(f for g in test_g for f in g)
        m = sum(len(g) for g in groups)
        val_g, groups = _take(groups, int(m * val_fraction + 0.5))
        parts["val"].extend(f for g in val_g for f in g)
        parts["train"].extend(f for g in groups for f in g)
    if test_files is not None:
        parts["test"] = list(test_files)
    return parts


def check_parts(parts: dict[str, list[FileInfo]], usable: list[FileInfo], *, val_fraction: float,
                test_fraction: float, separate_test: bool = False) -> dict[str, dict[str, int]]:
    """Counts per part and class; ``UsageError`` when a part that should hold images of both
    classes would miss one (the folder is too small for these fractions)."""
    counts = {p: {c: sum(1 for f in parts[p] if f.cls == c) for c in ("positive", "negative")} for p in PARTS}
    wanted = {"train": True, "val": val_fraction > 0, "test": separate_test or test_fraction > 0}
    for p in PARTS:
        empty = [c for c, k in counts[p].items() if k == 0]
        if wanted[p] and empty:
            total = {c: sum(1 for f in usable if f.cls == c) for c in ("positive", "negative")}
            raise UsageError(
                f"too few images to split: the {p} part would have no {' or '.join(empty)} image "
                f"(usable images: {total['positive']} positive, {total['negative']} negative)",
                TOO_FEW_HINT,
            )
    return counts


def make_split(
    data_dir,
    *,
    seed: int = 42,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    test_dir: str | None = None,
    max_per_class: int | None = None,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Split:
    """Split ``data_dir`` (holding ``positive/`` and ``negative/``) into train/val/test.

    - ``test_fraction``: share of each class's usable images held out for testing;
      ``val_fraction``: share of the remaining training part used for validation.
    - ``test_dir``: a separate folder laid out the same way becomes the test set
      (``test_fraction`` is then ignored); images of ``data_dir`` identical to a test image are
      left out of training and reported in ``skipped``.
    - ``max_per_class``: use at most this many images per class from each folder (quick runs).
    - ``verify``: decode every image and leave out those that fail (otherwise only hash them and
      read their headers: a truncated file goes unnoticed).

    Raises ``UsageError`` (with a hint) for a missing folder or class, an empty class, bad
    fractions, or too few images to give every part an image of each class.
    """
    tf, vf = _check_args(seed, test_fraction, val_fraction, test_dir, max_per_class)
    skipped: list[dict] = []
    root, infos = _scan_source(data_dir, verify, progress, "data folder")
    usable, dup_groups = _usable(infos, skipped)
    test_files: list[FileInfo] | None = None
    test_root = None
    if test_dir is not None:
        test_root, test_files, usable, test_dups = _separate_test_set(
            test_dir, root, usable, seed=seed, max_per_class=max_per_class, verify=verify, progress=progress,
            skipped=skipped)
        dup_groups += test_dups
    _require_each_class(usable, root, test_files, test_root)
    usable = _cap(usable, max_per_class, seed)
    parts = assign_parts(usable, seed=seed, test_fraction=tf, val_fraction=vf, test_files=test_files)
    counts = check_parts(parts, usable, val_fraction=vf, test_fraction=tf, separate_test=test_dir is not None)

    return Split(
        train=_entries(parts["train"]),
        val=_entries(parts["val"]),
        test=_entries(parts["test"]),
        skipped=sorted(skipped, key=lambda s: s["path"]),
        fingerprints={p: fingerprint([f.key for f in parts[p]]) for p in PARTS},
        duplicate_groups=dup_groups,
        counts=counts,
        params={
            "data_dir": root,
            "test_dir": test_root,
            "seed": seed,
            "test_fraction": None if test_dir is not None else tf,
            "val_fraction": vf,
            "max_per_class": max_per_class,
            "verify": bool(verify),
        },
    )
