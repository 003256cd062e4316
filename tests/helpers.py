"""Helpers shared by tests."""

from __future__ import annotations

import os
from pathlib import Path

from crackops.backends.base import Backend

REPO = Path(__file__).resolve().parents[1]


def sample_data_dir() -> Path | None:
    """The 400 + 400 real photos (../shared/data/concrete-sample or $CRACKOPS_SAMPLE_DATA), or None."""
    env = os.environ.get("CRACKOPS_SAMPLE_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "concrete-sample")
    for c in candidates:
        if (c / "positive").is_dir() and (c / "negative").is_dir():
            return c.resolve()
    return None


LOCAL_SLURM = REPO / "scripts" / "local-slurm.sh"
EXIT_OTHER_CLUSTER = 3   # local-slurm.sh: SLURM_CONF names a cluster the script does not manage


def local_slurm(action: str, timeout: float = 120) -> None:
    """``scripts/local-slurm.sh ACTION`` (e.g. stop-dbd, start-dbd) on the cluster the tests run
    against: the script follows SLURM_CONF, and refuses to touch any other cluster's daemons. A test
    that needs this on a cluster the script does not manage is skipped, never run on another one."""
    import subprocess

    import pytest

    p = subprocess.run(["bash", str(LOCAL_SLURM), action], capture_output=True, text=True, timeout=timeout)
    if p.returncode == EXIT_OTHER_CLUSTER:
        pytest.skip(f"local-slurm.sh {action}: {p.stderr.strip().splitlines()[0]}")
    assert p.returncode == 0, (action, p.returncode, p.stderr[-2000:])


# ---------------------------------------------------------------- the CLI

def invoke(*args, app=None):
    """Run a CLI command in-process (``typer.testing.CliRunner``); arguments may be paths or numbers.
    ``app``: another typer app (e.g. ``crackops.cli.data.app``), default the whole CLI. The result's
    ``stdout`` holds the data, ``output`` everything (click 8.2: stdout and stderr); :func:`text`
    gives everything, whatever the click version."""
    from typer.testing import CliRunner

    if app is None:
        from crackops.cli import app
    return CliRunner().invoke(app, [str(a) for a in args])


def text(res) -> str:
    """All a CliRunner result printed (stdout, stderr when kept apart, the exception), for messages."""
    parts = [res.output or ""]
    try:
        parts.append(res.stderr or "")
    except (ValueError, AttributeError):  # older click without mix_stderr=False: stderr is in output
        pass
    if res.exception is not None:
        parts.append(str(res.exception))
    return "\n".join(parts)


def assert_clean_error(res, code, *fragments):
    """A CliRunner result that failed as crackops should: exit ``code``, no traceback, the
    message holds every fragment."""
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    for f in fragments:
        assert f in res.output, res.output


def require_sample_data() -> Path:
    """The real sample photos, or a skip; a failure when ``CRACKOPS_REQUIRE_DATA=1`` (CI)."""
    import pytest

    d = sample_data_dir()
    if d is None:
        msg = ("no sample data here (../shared/data/concrete-sample next to the repository, "
               "or CRACKOPS_SAMPLE_DATA)")
        if os.environ.get("CRACKOPS_REQUIRE_DATA") == "1":
            pytest.fail(f"CRACKOPS_REQUIRE_DATA=1 but {msg}")
        pytest.skip(msg)
    return d


# ---------------------------------------------------------------- crafted datasets for the data tests

def source_images(tmp_root: Path, n: int = 20) -> tuple[list[Path], list[Path]]:
    """``n`` distinct positive and ``n`` distinct negative JPEGs: real sample photos when present,
    otherwise freshly synthesized ones (64 px)."""
    sample = sample_data_dir()
    if sample is not None:
        pos = sorted((sample / "positive").glob("*.jpg"))[:n]
        neg = sorted((sample / "negative").glob("*.jpg"))[:n]
        if len(pos) == n and len(neg) == n:
            return pos, neg
    from crackops.data.synth import synthesize

    d = tmp_root / "_source"
    if not (d / "positive").is_dir():
        synthesize(d, n_per_class=n, size=64, seed=123, workers=1)
    return sorted((d / "positive").glob("*.jpg"))[:n], sorted((d / "negative").glob("*.jpg"))[:n]


def copy_file(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(Path(src).read_bytes())  # no permission bits copied: the sample is read-only
    return dst


def make_crafted_dataset(root: Path, n: int = 20) -> dict:
    """A dataset with one of everything that goes wrong, and the numbers a check must find.

    positive/: n good images, 2 extra copies of the first one (a duplicate group of 3), a truncated
    JPEG, a copy of the first negative (label conflict), a grayscale JPEG, a PNG.
    negative/: n good images, a text file named .jpg, a .txt file.
    """
    from PIL import Image

    pos, neg = source_images(root.parent, n)
    p, q = root / "positive", root / "negative"
    for f in pos:
        copy_file(f, p / f.name)
    for f in neg:
        copy_file(f, q / f.name)
    copy_file(pos[0], p / "dup_a.jpg")
    copy_file(pos[0], p / "dup_b.jpg")
    data = pos[1].read_bytes()
    (p / "truncated.jpg").write_bytes(data[: len(data) * 85 // 100])  # past the headers: opens, fails to decode
    copy_file(neg[0], p / "conflict.jpg")
    with Image.open(pos[2]) as im:
        im.convert("L").save(p / "gray.jpg", quality=90)
        w, h = im.size
    with Image.open(pos[3]) as im:
        im.convert("RGB").save(p / "image.png")
    (q / "fake.jpg").write_text("this is not a picture\n")
    (q / "notes.txt").write_text("taken on site 3\n")
    return {
        "size": f"{w}x{h}",
        "usable": {"positive": n + 2 + 2, "negative": n - 1},        # conflicts excluded
        "decodable": 2 * n + 2 + 1 + 2,                               # every image that decodes
        "duplicate_group": sorted(str((p / x).resolve()) for x in (pos[0].name, "dup_a.jpg", "dup_b.jpg")),
        "conflict_group": sorted([str((p / "conflict.jpg").resolve()), str((q / neg[0].name).resolve())]),
        "truncated": str((p / "truncated.jpg").resolve()),
        "non_images": sorted(str((q / x).resolve()) for x in ("fake.jpg", "notes.txt")),
    }


# ---------------------------------------------------------------- registry runs, crafted

T0 = 1_764_000_000.0  # a fixed "now" for crafted submit times

BASE_CONFIG = {
    "data_dir": "/data/concrete", "test_dir": None, "image_size": 64, "batch_size": 32, "epochs": 10,
    "learning_rate": 0.001, "bn_momentum": 0.9, "dropout": 0.3, "dense_units": 128, "es_patience": 3,
    "lr_patience": 2, "lr_factor": 0.5, "min_lr": 1e-6, "test_fraction": 0.2, "val_fraction": 0.1,
    "seed": 1, "cache": True, "mixed_precision": "auto", "max_images": None, "out_root": "/x/out", "job_id": None,
}


def split_metrics(tn: int, fp: int, fn: int, tp: int, auc: float = 0.95) -> dict:
    n = tn + fp + fn + tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": n, "accuracy": (tp + tn) / n, "precision": precision, "recall": recall, "f1": f1,
            "roc_auc": auc, "tn": tn, "fp": fp, "fn": fn, "tp": tp, "errors": fp + fn, "threshold": 0.5}


def collected(fn: int, fp: int, *, n: int = 100, fingerprint: str = "testA", epochs: int = 6, best: int = 4,
              wall: float = 300.0, auc: float = 0.95) -> dict:
    """The metrics dict ``api.collect`` stores, for a balanced test set of ``n`` images."""
    half = n // 2
    by_split = {"train": split_metrics(400, 2, 3, 395), "val": split_metrics(45, 1, 2, 42),
                "test": split_metrics(half - fp, fp, fn, half - fn, auc)}
    m = {f"{s}_{k}": v for s, d in by_split.items() for k, v in d.items()}
    m.update({"epochs_run": epochs, "best_epoch": best, "wall_time_s": wall, "train_images_per_s": 250.0,
              "split_fingerprint": {"train": "tr-" + fingerprint, "val": "va-" + fingerprint, "test": fingerprint}})
    return m


def make_run(job_id: str, *, metrics: dict | None = None, state: str = "COMPLETED", name: str | None = None,
             backend: str = "local", accounting: dict | None = None, submitted_at: float | None = None,
             reason: str | None = None, out_dir: str = "/nonexistent", **config):
    """A registry ``Run`` as crackops records it: ``BASE_CONFIG`` updated with ``config``."""
    from crackops.registry import Run

    return Run(job_id=job_id, backend=backend, state=state, config={**BASE_CONFIG, **config},
               resources={"cpus": 8, "mem": "16G", "time": "4:00:00", "profile": "default"},
               submitted_at=submitted_at if submitted_at is not None else T0, out_dir=str(out_dir), name=name,
               metrics=metrics, accounting=accounting, reason=reason,
               started_at=(submitted_at or T0) + 5, ended_at=(submitted_at or T0) + 305)


def register(runs: list):
    """Record ``runs`` in this test's registry; returns it."""
    from crackops.registry import Registry

    reg = Registry()
    for r in runs:
        reg.add(r)
    return reg


# ---------------------------------------------------------------- a finished run's files, crafted

def write_predictions(out_dir: Path, *, tn: int, fp: int, fn: int, tp: int) -> Path:
    """A ``predictions_test.csv`` that agrees with these confusion counts (threshold 0.5): cracks
    ``/x/p<i>.jpg`` (the first ``fn`` missed), sound ``/x/n<i>.jpg`` (the first ``fp`` false alarms)."""
    rows = ([f"/x/p{i}.jpg,1,{0.1 if i < fn else 0.9:.6f}" for i in range(fn + tp)]
            + [f"/x/n{i}.jpg,0,{0.9 if i < fp else 0.1:.6f}" for i in range(fp + tn)])
    p = Path(out_dir) / "predictions_test.csv"
    p.write_text("path,label,prob_crack\n" + "\n".join(rows) + "\n")
    return p


def make_artifacts(out_dir: Path, *, job_id: str = "fake1", test_accuracy: float = 0.9) -> Path:
    """What a finished training leaves in ``out_dir`` (the run contract's names), small but each
    file valid for ``crackops.artifacts.verify``: PNGs, metrics.txt, an HDF5 file that holds a model
    config, predictions and a completed manifest. No TensorFlow."""
    import json

    from PIL import Image

    from crackops import contract

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in contract.SEED_ARTIFACTS:
        if name.endswith(".png"):
            Image.new("RGB", (64, 48), (200, 60, 60)).save(out_dir / name)
    (out_dir / "metrics.txt").write_text(f"[test]\naccuracy {test_accuracy:.4f}\n")
    model = out_dir / contract.MODEL_FILE
    try:
        import h5py
    except ImportError:   # without h5py verify checks only the signature
        model.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    else:
        with h5py.File(model, "w") as h:
            h.attrs["model_config"] = "{}"
    test = split_metrics(45, 5, 5, 45)
    write_predictions(out_dir, tn=45, fp=5, fn=5, tp=45)
    manifest = {"schema": contract.MANIFEST_SCHEMA, "job_id": job_id, "status": "completed", "config": BASE_CONFIG,
                "metrics": {"train": test, "val": test, "test": test}, "history": {"loss": [0.6, 0.4]},
                "epochs_run": 2, "best_epoch": 2, "started_at": T0, "ended_at": T0 + 60, "wall_time_s": 60.0,
                "artifacts": list(contract.SEED_ARTIFACTS) + [contract.PREDICTIONS]}
    (out_dir / contract.MANIFEST).write_text(json.dumps(manifest))
    return out_dir


class FakeBackend(Backend):
    """A backend for tests that stand in for a scheduler: the interface's defaults (no polling
    policy, no adoption, resources honoured), and each abstract method refusing until a test's
    subclass gives it."""

    name = "fake"

    def submit(self, sub):
        raise NotImplementedError("this fake backend does not submit")

    def refresh(self, runs):
        raise NotImplementedError("this fake backend does not refresh")

    def cancel(self, runs):
        raise NotImplementedError("this fake backend does not cancel")

    def dry_run(self, sub):
        raise NotImplementedError("this fake backend has no dry run")
