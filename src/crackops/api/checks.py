"""Checks made before anything is submitted, and the settings the API starts from: data folders
and datasets a run could not use, resource profiles, ``--retries``, plot paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crackops.config import Resources, TrainConfig, list_profiles, load_profile
from crackops.errors import UsageError


def check_data_dir(path: str | Path, what: str = "--data") -> Path:
    """Fail fast, before anything is submitted, on a data dir training cannot use.

    The layout rules are the scanner's (``crackops.data.scan``), the ones training and
    ``crackops data check`` apply: class folders found case-insensitively (the release ships
    ``Positive/`` and ``Negative/``), one folder per class, images directly inside."""
    from crackops.data.scan import CLASSES, extra_folders_problem, list_class_files, resolve_class_dirs

    if not str(path).strip():
        raise UsageError("no data directory given", f"pass {what} DIR, or make one: crackops data synth data/synth")
    root, class_dirs = resolve_class_dirs(path)
    extra = extra_folders_problem(root)   # a third class folder is refused, as `data check` does
    if extra:
        raise UsageError(*extra)
    for c in sorted(CLASSES, reverse=True):   # positive first
        d = class_dirs[c]
        if d is None:
            hint = "the data dir needs positive/ (cracks) and negative/ subfolders"
            if root.name.lower() in CLASSES:
                hint = f"that looks like a class folder itself: give its parent, {root.parent}"
            raise UsageError(f"{root} has no {c}/ folder", hint)
        images, _rejected = list_class_files(d, c)
        if not images:
            raise UsageError(f"{d} holds no images",
                             f"put .jpg/.png images in {d.name}/ (`crackops data check {root}` lists what is there)")
    from crackops.data.check import refuse_label_conflicts   # an error in `data check`: refused here too
    from crackops.paths import state_dir

    refuse_label_conflicts(root, cache_dir=state_dir())
    return root


#: Below this many image files in the smaller class, ``check_training_data`` reads and decodes
#: every file and computes the real split; above, counting files is enough (and fast on 40,000).
EXACT_SPLIT_CHECK_BELOW = 1000


def check_training_data(config: TrainConfig) -> None:
    """Refuse, before submitting, a dataset the run's split could not use: a class folder missing
    or without images, or too few images to give train, val and test an image of each class with
    these ``--max-images`` / ``--test-fraction`` / ``--val-fraction`` (the job would fail at once)."""
    from crackops.data.scan import CLASSES, list_class_files, resolve_class_dirs
    from crackops.data.split import TOO_FEW_HINT, make_split

    config.validate()   # the arithmetic below needs sane fractions (--test-fraction inf: OverflowError)
    data = check_data_dir(config.data_dir)
    if config.test_dir:
        check_data_dir(config.test_dir, "--test-dir")
    _root, class_dirs = resolve_class_dirs(data)
    counts = {c: len(list_class_files(class_dirs[c], c)[0]) for c in CLASSES}  # type: ignore[arg-type]
    if config.max_images:
        counts = {c: min(n, config.max_images) for c, n in counts.items()}
    tf = 0.0 if config.test_dir else config.test_fraction
    for c, n in counts.items():   # the split's arithmetic, every file assumed usable and distinct
        test = int(n * tf + 0.5)
        val = int((n - test) * config.val_fraction + 0.5)
        sizes = {"train": n - test - val, "val": val, "test": test if not config.test_dir else 1}
        empty = [p for p in ("train", "val", "test") if sizes[p] < 1]
        if empty:
            raise UsageError(f"too few images to split: the {empty[0]} part would have no {c} image "
                             f"({counts['positive']} positive, {counts['negative']} negative image files"
                             + (f", at most {config.max_images} per class with --max-images" if config.max_images else "")
                             + ")", TOO_FEW_HINT)
    if min(counts.values()) < EXACT_SPLIT_CHECK_BELOW:
        make_split(data, seed=config.seed, test_fraction=config.test_fraction, val_fraction=config.val_fraction,
                   test_dir=config.test_dir or None, max_per_class=config.max_images, verify=True)


def resolve_resources(profile: str = "default", **overrides: Any) -> tuple[Resources, dict[str, Any]]:
    """The profile's resources with ``overrides`` (cpus, mem, time, partition, ..., ``extra`` for
    more sbatch options) applied, validated; and the profile's ``[train]`` settings, which
    :func:`config_from_profile` merges into a ``TrainConfig``."""
    res, train_overrides = load_profile(profile)
    extra = overrides.pop("extra", None)
    for k, v in overrides.items():
        if v is not None:
            setattr(res, k, v)
    if extra:
        res.extra = {**res.extra, **extra}
    return res.validate(), train_overrides


def config_from_profile(profile: str = "default", data_dir: str = "", **overrides: Any) -> TrainConfig:
    """A ``TrainConfig``: the defaults, then the profile's ``[train]`` section, then ``overrides``
    (keyword arguments named like ``TrainConfig`` fields; None means "not given")."""
    _, train = load_profile(profile)
    return TrainConfig(data_dir=data_dir).with_overrides(**train).with_overrides(**overrides)


def check_retries(retries: int | None) -> int | None:
    if retries is None:
        return None
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise UsageError(f"--retries {retries} must be a whole number from 0 to 100", "e.g. --retries 2")
    return retries


def profiles() -> list[dict[str, Any]]:
    """The resource profiles: name, path, the resources and the ``train`` settings of each."""
    rows = []
    for name, path in list_profiles().items():
        res, train = load_profile(str(path))
        rows.append({"name": name, "path": str(path), **{k: v for k, v in res.to_dict().items() if k != "profile"},
                     "train": train})
    return rows


def check_plot_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UsageError(f"--plot {p}: the plot is a PNG file", f"e.g. --plot {p.with_suffix('.png').name}")
    if not p.expanduser().resolve().parent.is_dir():
        raise UsageError(f"--plot {p}: folder {p.expanduser().resolve().parent} does not exist",
                         "create it, or pick a path in an existing folder")
    return p


def _one_line(text: Any) -> str:
    lines = [l.strip() for l in str(text or "an error").splitlines() if l.strip()]
    return lines[0] if lines else "an error"
