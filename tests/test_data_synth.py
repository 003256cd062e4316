"""crackops.data.synth and `crackops data synth`: layout, determinism, safety, learnable-not-trivial."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from crackops.data.check import check_dataset
from crackops.data.synth import MARKER, render, synthesize
from crackops.errors import UsageError
from helpers import invoke


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def test_layout_and_format(tmp_path):
    res = synthesize(tmp_path / "s", n_per_class=12, size=80, seed=1)
    assert res["counts"] == {"positive": 12, "negative": 12} and res["files"] == 24
    for cls in ("positive", "negative"):
        files = sorted((tmp_path / "s" / cls).iterdir())
        assert [f.name for f in files] == [f"{i:05d}.jpg" for i in range(1, 13)]
        with Image.open(files[0]) as im:
            assert im.format == "JPEG" and im.size == (80, 80) and im.mode == "RGB"
    assert res["bytes"] == sum(p.stat().st_size for p in (tmp_path / "s").rglob("*.jpg"))
    assert json.loads((tmp_path / "s" / MARKER).read_text())["seed"] == 1
    rep = check_dataset(tmp_path / "s")
    assert rep.ok and rep.duplicates == [] and rep.label_conflicts == []


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    synthesize(tmp_path / "a", n_per_class=40, size=64, seed=5, workers=1)
    synthesize(tmp_path / "b", n_per_class=40, size=64, seed=5, workers=2)
    synthesize(tmp_path / "c", n_per_class=40, size=64, seed=6, workers=1)
    synthesize(tmp_path / "d", n_per_class=10, size=64, seed=5, workers=1)
    a, b, c, d = (_digests(tmp_path / x) for x in "abcd")
    assert a == b
    assert all(a[k] != c[k] for k in a)  # another seed changes every image
    assert all(a[k] == v for k, v in d.items())  # a smaller run is a prefix of a larger one


def test_refuses_a_folder_with_other_things(tmp_path):
    target = tmp_path / "mine"
    (target / "photos").mkdir(parents=True)
    (target / "photos" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="not empty") as ei:
        synthesize(target, n_per_class=2)
    assert "new or empty folder" in ei.value.hint
    assert (target / "photos" / "holiday.jpg").read_bytes() == b"x"  # untouched

    # a real-looking dataset without the marker is not ours either
    real = tmp_path / "real"
    (real / "positive").mkdir(parents=True)
    (real / "negative").mkdir()
    (real / "positive" / "00001.jpg").write_bytes(b"precious")
    with pytest.raises(UsageError):
        synthesize(real, n_per_class=2)
    assert (real / "positive" / "00001.jpg").read_bytes() == b"precious"

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        synthesize(f)


def test_overwrites_its_own_output_only(tmp_path):
    t = tmp_path / "s"
    synthesize(t, n_per_class=6, size=32, seed=0)
    synthesize(t, n_per_class=3, size=32, seed=0)  # allowed, and no stale files remain
    assert sorted(p.name for p in (t / "positive").iterdir()) == ["00001.jpg", "00002.jpg", "00003.jpg"]
    (t / "positive" / "my_photo.jpg").write_bytes(b"mine")
    with pytest.raises(UsageError):
        synthesize(t, n_per_class=3, size=32)
    assert (t / "positive" / "my_photo.jpg").exists()


def test_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "e").mkdir()
    assert synthesize(tmp_path / "e", n_per_class=1, size=32)["files"] == 2


@pytest.mark.parametrize("kw", [dict(n_per_class=0), dict(n_per_class=2.5), dict(size=8), dict(size=5000),
                                dict(seed=-1), dict(size=True)])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(UsageError):
        synthesize(tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


def _dark_line_score(arr: np.ndarray) -> float:
    """A one-number heuristic: how dark the darkest 1 % is relative to the median."""
    g = arr.astype(np.float32).mean(axis=2)
    return float(np.percentile(g, 1) / np.median(g))


def test_learnable_but_not_trivial():
    """Positives are darker in their darkest pixels on the whole (there is a signal), but that one
    number does not separate the classes (dark pores and voids in negatives, faint cracks)."""
    n = 150
    pos = np.array([_dark_line_score(render(0, "positive", i, 64)) for i in range(n)])
    neg = np.array([_dark_line_score(render(0, "negative", i, 64)) for i in range(n)])
    assert pos.mean() < neg.mean() - 0.05
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    best = max(((scores < t) == labels).mean() for t in np.unique(scores))
    assert 0.7 < best < 0.98, best
    # same brightness distribution in both classes: mean brightness alone is near chance
    means_p = [render(0, "positive", i, 64).mean() for i in range(n)]
    means_n = [render(0, "negative", i, 64).mean() for i in range(n)]
    allm = np.concatenate([means_p, means_n])
    best_mean = max(max(((allm < t) == labels).mean(), ((allm >= t) == labels).mean()) for t in np.unique(allm))
    assert best_mean < 0.68, best_mean


def test_render_is_deterministic_and_classes_differ():
    a, b = render(3, "positive", 7, 48), render(3, "positive", 7, 48)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, render(3, "negative", 7, 48))


# ---------------------------------------------------------------- the CLI

def test_cli_synth(tmp_path):
    from crackops.cli.data import app

    res = invoke("synth", str(tmp_path / "s"), "--per-class", "5", "--size", "40", "--seed", "2", app=app)
    assert res.exit_code == 0, res.output
    assert "wrote 10 images" in res.stdout
    assert len(list((tmp_path / "s" / "positive").glob("*.jpg"))) == 5
    res = invoke("synth", str(tmp_path / "j"), "-n", "3", "--size", "32", "--json", app=app)
    assert res.exit_code == 0 and json.loads(res.stdout)["files"] == 6


def test_cli_synth_refusal_is_a_message_not_a_traceback(tmp_path):
    from crackops.cli.data import app

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    res = invoke("synth", str(tmp_path / "full"), app=app)
    assert res.exit_code != 0
    text = (res.output or "") + str(res.exception or "")
    assert "not empty" in text and "Traceback" not in (res.stdout or "")
