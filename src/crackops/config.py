"""Training configuration and resource profiles.

``TrainConfig`` is the one object the training job receives: plain data, picklable, JSON-able.
Resource profiles live in ``templates/*.toml`` (shipped) and ``$CRACKOPS_HOME/profiles/*.toml``
(the user's own); ``--profile`` also takes a path to a TOML file.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from crackops.errors import NotFoundError, UsageError
from crackops.paths import state_dir


#: Seeds go to numpy, which takes 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


@dataclass
class TrainConfig:
    """Everything the training job needs.

    The model is the seed report's CNN; the defaults are the recipe that reaches the seed script's
    accuracy on the full 40,000-image dataset in a fraction of its CPU time
    (benchmarks/time_to_accuracy.py): 64 px, batch 64, 5 epochs, Adam 1e-3 with a 0.3-epoch warm-up
    and a cosine decay to 0, every epoch a full reshuffle. The seed's own recipe (150 px, batch 32,
    up to 20 epochs, halved on a plateau) is ``--profile seed``.

    ``bn_momentum`` defaults to None ("auto"): chosen from the steps per epoch so that BatchNorm's
    moving statistics catch up within one epoch (``0.01 ** (1 / steps)``, clamped to 0.5..0.99).
    Keras' fixed 0.99 never catches up on small data (a few hundred images): evaluation-mode
    predictions stay at chance while training accuracy looks fine. On the full dataset auto is 0.99.
    """

    data_dir: str = ""
    test_dir: str | None = None      # optional separate test set (positive/ + negative/)
    image_size: int = 64
    batch_size: int = 64
    epochs: int = 5
    learning_rate: float = 1e-3
    bn_momentum: float | None = None  # None: auto from steps per epoch
    dropout: float = 0.3
    dense_units: int = 128
    es_patience: int = 3
    lr_patience: int = 2
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    test_fraction: float = 0.2       # the seed: 32,000 train / 8,000 test
    val_fraction: float = 0.1        # taken from the training part only
    seed: int = 42
    lr_schedule: str = "cosine"      # cosine (warm-up, then cosine to 0) | plateau (the seed: ReduceLROnPlateau)
    warmup_epochs: float = 0.3       # cosine only: linear warm-up over this many epochs
    augment: str = "off"             # off | geometric (flips, 90-degree turns) | full (+ brightness, contrast, blur)
    mixed_precision: str = "auto"    # auto | off | bfloat16
    fused_batchnorm: bool = True     # TensorFlow's fused BatchNorm kernel (same maths, faster)
    max_images: int | None = None    # cap per class, for quick runs
    max_attempts: int = 3            # Slurm: requeued before the time limit up to this many attempts in all (1: never)
    tensorboard_every: int = 10      # TensorBoard: per-step scalars every this many batches (0: no event files)
    backup_minutes: float = 10.0     # also back up inside an epoch after this many minutes without one (0: epoch ends only)
    resume_from: str | None = None   # an earlier run's out dir: start from its last backup (crackops rerun)
    out_root: str = "out"            # the job writes out_root/<job_id>/
    job_id: str | None = None        # None: taken from the environment (SLURM_JOB_ID)
    submission_id: str | None = None  # set by crackops.api.submit: the job claims its out dir with it

    def validate(self) -> "TrainConfig":
        def bad(msg: str, hint: str) -> None:
            raise UsageError(msg, hint)

        if self.image_size < 32 or self.image_size > 1024:
            bad(f"--image-size {self.image_size} is out of range", "use 32..1024 (default 64; the seed used 150)")
        if self.batch_size < 1:
            bad(f"--batch-size {self.batch_size} must be positive", "the seed used 32")
        if self.epochs < 1:
            bad(f"--epochs {self.epochs} must be at least 1", "the seed used up to 20 with early stopping")
        if not (0 < self.learning_rate < 1):
            bad(f"--learning-rate {self.learning_rate} is out of range", "use a value in (0, 1), e.g. 1e-3")
        if self.bn_momentum is not None and not (0 < self.bn_momentum < 1):
            bad(f"--bn-momentum {self.bn_momentum} is out of range", "use a value in (0, 1), or leave it out for auto")
        if not (0 <= self.dropout < 1):
            bad(f"--dropout {self.dropout} is out of range", "use a value in [0, 1), e.g. 0.3")
        if not (0 < self.test_fraction < 1) and not self.test_dir:
            bad(f"--test-fraction {self.test_fraction} is out of range", "use a value in (0, 1), e.g. 0.2")
        if not (0 < self.val_fraction < 1):
            bad(f"--val-fraction {self.val_fraction} is out of range", "use a value in (0, 1), e.g. 0.1")
        if self.es_patience < 0 or self.lr_patience < 0:
            bad("patience values must be >= 0", "e.g. --es-patience 3 --lr-patience 2")
        if self.mixed_precision not in ("auto", "off", "bfloat16"):
            bad(f"--mixed-precision {self.mixed_precision!r} is not known", "use auto, off or bfloat16")
        if self.lr_schedule not in ("plateau", "cosine"):
            bad(f"--lr-schedule {self.lr_schedule!r} is not known", "use plateau (the seed's) or cosine")
        if not (0 <= self.warmup_epochs < self.epochs):
            bad(f"--warmup-epochs {self.warmup_epochs} is out of range", "use 0 up to fewer than --epochs, e.g. 0.3")
        if self.augment not in ("off", "geometric", "full"):
            bad(f"--augment {self.augment!r} is not known", "use off, geometric or full")
        if not (0 <= self.backup_minutes < 100_000):
            bad(f"--backup-minutes {self.backup_minutes} is out of range",
                "minutes between backups inside an epoch, e.g. 10 (the default); 0 backs up at epoch ends only")
        if self.tensorboard_every < 0:
            bad(f"--tensorboard-every {self.tensorboard_every} must be >= 0",
                "batches between TensorBoard's per-step points, e.g. 10 (the default); 0 writes no event files")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            bad(f"--seed {self.seed} is out of range", f"use a whole number from 0 to {MAX_SEED} (2**32 - 1), e.g. 42")
        if self.max_images is not None and self.max_images < 2:
            bad("--max-images must be at least 2", "it caps the images per class")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_bn_momentum(self, steps_per_epoch: int) -> float:
        if self.bn_momentum is not None:
            return self.bn_momentum
        return auto_bn_momentum(steps_per_epoch)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_overrides(self, **kw: Any) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in kw.items() if v is not None})


def auto_bn_momentum(steps_per_epoch: int) -> float:
    """BatchNorm momentum whose moving statistics are 99 % renewed after one epoch."""
    m = 0.01 ** (1.0 / max(1, steps_per_epoch))
    return round(min(0.99, max(0.5, m)), 4)


# ------------------------------------------------------------------ resources

_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?$")


def parse_mem_mb(text: str | int) -> int:
    """'16G' -> 16384, '512M' -> 512, '1T' -> 1048576, 2048 -> 2048 (MB, as sbatch --mem)."""
    if isinstance(text, int):
        if text <= 0:
            raise UsageError(f"memory {text} must be positive", "e.g. --mem 16G")
        return text
    from crackops.slurm.units import parse_mem_mb as read_mem_mb

    mb = read_mem_mb(str(text), scoped=False)
    if mb is None:
        raise UsageError(f"cannot read memory {text!r}", "use a number with K/M/G/T, e.g. --mem 16G")
    if mb < 1:
        raise UsageError(f"memory {text!r} is too small", "e.g. --mem 16G")
    return int(round(mb))


def parse_time_min(text: str | int) -> int:
    """Slurm time formats -> minutes: 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS'."""
    if isinstance(text, int):
        if text <= 0:
            raise UsageError(f"time {text} must be positive", "e.g. --time 4:00:00")
        return text
    s = str(text).strip()
    m = _TIME_RE.match(s)
    if not m:
        raise UsageError(f"cannot read time {text!r}", "use Slurm's format, e.g. --time 4:00:00 or 1-00:00:00")
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = int(days) * 1440 + int(a) * 60 + int(b or 0) + (1 if c and int(c) > 0 else 0)
    elif c is not None:  # HH:MM:SS
        minutes = int(a) * 60 + int(b) + (1 if int(c) > 0 else 0)
    elif b is not None:  # MM:SS
        minutes = int(a) + (1 if int(b) > 0 else 0)
    else:  # MM
        minutes = int(a)
    if minutes <= 0:
        raise UsageError(f"time {text!r} must be positive", "e.g. --time 4:00:00")
    return minutes


#: An sbatch option name, and a value that stays one word on its own ``#SBATCH`` line.
_SBATCH_KEY_RE = re.compile(r"-{0,2}[A-Za-z][A-Za-z0-9_-]{0,63}")
#: (``$``, ``;``, ``&``, ``|`` are harmless there: sbatch reads ``#SBATCH`` lines, no shell does,
#: and constraints use ``&`` and ``|``; whitespace, quotes and control characters are refused.)
_SBATCH_VALUE_RE = re.compile(r"[^\s'\"\\\x00-\x1f\x7f]{1,1024}")
_HOST_RE = re.compile(r"[A-Za-z0-9_.@%+:\[\]-]{1,255}")   # remote destinations: host, alias, user@host, [v6]


@dataclass
class Resources:
    """What a run asks the scheduler for. The default is the seed's request."""

    job_name: str = "cnn_crack"
    cpus: int = 4
    mem: str = "16G"
    time: str = "4:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gres: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more sbatch options, e.g. {"constraint": "avx512"}
    profile: str = "default"
    #: where a remote backend runs the job (a host name, an alias of the user's client
    #: configuration, user@host); None for backends that run here
    host: str | None = None

    def validate(self) -> "Resources":
        if not isinstance(self.cpus, int) or isinstance(self.cpus, bool) or self.cpus < 1:
            raise UsageError(f"--cpus {self.cpus} must be a positive whole number", "the seed asked 4")
        parse_mem_mb(self.mem)
        parse_time_min(self.time)
        if not isinstance(self.job_name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.job_name):
            raise UsageError(f"job name {self.job_name!r} is not usable", "letters, digits, '_', '-', '.'")
        # these become "#SBATCH --key=value" lines: a newline in one would start a line of its own
        for k in ("partition", "account", "qos", "gres"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, str) or not _SBATCH_VALUE_RE.fullmatch(v) or not v.isprintable()):
                raise UsageError(f"--{k} {v!r} is not usable", "no spaces, quotes or control characters")
        if self.host is not None and (not isinstance(self.host, str) or not _HOST_RE.fullmatch(self.host)
                                      or self.host.startswith("-")):
            raise UsageError(f"--host {self.host!r} is not a usable host",
                             "a host name, an alias or user@host: no spaces, not starting with '-'")
        if not isinstance(self.extra, dict):
            raise UsageError(f"extra sbatch options {self.extra!r} are not KEY = VALUE pairs",
                             "e.g. [resources.extra] constraint = \"avx512\"")
        for k, v in self.extra.items():
            if k == "setup":   # shell lines run before Python: a profile's own business, checked as text
                lines = [v] if isinstance(v, str) else v
                if not isinstance(lines, list) or not all(isinstance(x, str) and "\0" not in x for x in lines):
                    raise UsageError(f"extra setup {v!r} is not shell lines", "a string or a list of strings")
                continue
            if not _SBATCH_KEY_RE.fullmatch(str(k)):
                raise UsageError(f"extra sbatch option {k!r} is not an option name", "e.g. constraint, exclusive")
            if isinstance(v, bool) or v is None:
                continue
            if (not isinstance(v, (str, int, float)) or not _SBATCH_VALUE_RE.fullmatch(str(v))
                    or not str(v).isprintable()):
                raise UsageError(f"extra sbatch option {k}={v!r} is not usable",
                                 "one word: no spaces, quotes or control characters")
        return self

    @property
    def mem_mb(self) -> int:
        return parse_mem_mb(self.mem)

    @property
    def time_min(self) -> int:
        return parse_time_min(self.time)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Resources":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def templates_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    dirs = [state_dir() / "profiles", here / "templates", here.parents[1] / "templates"]
    return [d for d in dirs if d.is_dir()]


def list_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(templates_dirs()):  # user profiles win
        for p in sorted(d.glob("*.toml")):
            found[p.stem] = p
    return found


def _read_profile(name_or_path: str) -> tuple[Path, dict[str, Any]]:
    """A profile's file and its parsed TOML."""
    p = Path(name_or_path)
    if not (p.suffix == ".toml" and p.is_file()):
        profiles = list_profiles()
        if name_or_path not in profiles:
            raise NotFoundError(
                f"unknown profile {name_or_path!r}",
                f"known: {', '.join(sorted(profiles)) or 'none'}; or pass a path to a .toml file",
            )
        p = profiles[name_or_path]
    try:
        return p, tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:   # binary garbage: UnicodeDecodeError
        raise UsageError(f"cannot read profile {p}: {e}", "fix the TOML syntax") from None


#: A profile's ``[tracking]`` table: export every run to MLflow when ``collect`` reads it.
TRACKING_KEYS = {"mlflow_uri": str, "mlflow_experiment": str}


def load_tracking(name_or_path: str = "default") -> dict[str, Any]:
    """A profile's ``[tracking]`` settings (``mlflow_uri``, ``mlflow_experiment``), {} when none."""
    p, data = _read_profile(name_or_path)
    table = data.get("tracking", {})
    if not isinstance(table, dict):
        raise UsageError(f"profile {p.name}: tracking must be a [tracking] table", "see templates/default.toml")
    for k, v in table.items():
        if k not in TRACKING_KEYS:
            raise UsageError(f"profile {p.name}: unknown [tracking] key {k!r}", f"known: {', '.join(TRACKING_KEYS)}")
        if not isinstance(v, TRACKING_KEYS[k]):
            raise UsageError(f"profile {p.name}: [tracking] {k} = {v!r} is not a string",
                             'e.g. mlflow_uri = "http://127.0.0.1:5000"')
    return dict(table)


def load_profile(name_or_path: str = "default") -> tuple[Resources, dict[str, Any]]:
    """Return (resources, train overrides) of a profile name or a TOML path."""
    p, data = _read_profile(name_or_path)
    res = data.get("resources", {})
    if not isinstance(res, dict):   # "resources = 3": a table is needed
        raise UsageError(f"profile {p.name}: resources must be a [resources] table", "see templates/default.toml")
    unknown = set(res) - {f.name for f in fields(Resources)} - {"profile"}
    if unknown or "profile" in res:
        raise UsageError(f"profile {p.name}: unknown keys {sorted(unknown | ({'profile'} & set(res)))}",
                         "known: job_name, cpus, mem, time, partition, account, qos, gres, extra")
    for k, v in res.items():
        if k in ("mem", "time") and isinstance(v, int) and not isinstance(v, bool):
            continue
        _check_type(p.name, "resources", k, v, Resources)
    resources = Resources(**res, profile=p.stem if p.parent != Path(".") else str(p)).validate()
    train = data.get("train", {})
    if not isinstance(train, dict):
        raise UsageError(f"profile {p.name}: train must be a [train] table", "see templates/seed.toml")
    unknown = set(train) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise UsageError(f"profile {p.name}: unknown [train] keys {sorted(unknown)}", "see `crackops submit --help`")
    for k, v in train.items():
        _check_type(p.name, "train", k, v, TrainConfig)
    return resources, train


_TOML_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                            "dict[str, Any]": (dict,)}


def _check_type(profile: str, section: str, key: str, value: Any, cls: type) -> None:
    """A profile value of the field's type (``image_size = "x"`` would fail later as a TypeError;
    a float must be finite: ``nan`` compares false with every bound)."""
    import math

    ftype = str({f.name: f.type for f in fields(cls)}[key])
    optional = ftype.endswith(" | None")
    want = _TOML_TYPES.get(ftype.removesuffix(" | None"))
    if want is None or (optional and value is None):
        return
    ok = isinstance(value, want) and (bool in want or not isinstance(value, bool))
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        raise UsageError(f"profile {profile}: [{section}] {key} = {value!r} is not a {ftype.removesuffix(' | None')}",
                         "fix the value's type, e.g. image_size = 64, learning_rate = 0.001")
