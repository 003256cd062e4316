"""Helpers shared by tests."""

from __future__ import annotations

import os
from pathlib import Path

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
