"""crackops.data.split: deterministic, stratified, duplicate-aware, honest about what it skips."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from crackops.data.split import LABELS, Split, fingerprint, make_split
from crackops.errors import UsageError
from helpers import copy_file, make_crafted_dataset, require_sample_data, sample_data_dir, source_images


def _tiny_jpeg(rng: random.Random) -> bytes:
    """A distinct 16x16 JPEG (random pixels: distinct content, distinct bytes)."""
    im = Image.frombytes("RGB", (16, 16), bytes(rng.randrange(256) for _ in range(16 * 16 * 3)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def make_dup_dataset(root: Path, n_unique: int, n_groups: int, seed: int = 0) -> dict[str, list[str]]:
    """Per class: ``n_unique`` distinct images plus ``n_groups`` groups of 2-5 identical copies.
    Returns {sha256: [paths]} for the groups with more than one file."""
    rng = random.Random(seed)
    groups: dict[str, list[str]] = {}
    for cls in ("positive", "negative"):
        d = root / cls
        d.mkdir(parents=True)
        k = 0
        for _ in range(n_unique):
            (d / f"u{k:04d}.jpg").write_bytes(_tiny_jpeg(rng))
            k += 1
        for _ in range(n_groups):
            data = _tiny_jpeg(rng)
            paths = []
            for _ in range(rng.randint(2, 5)):
                p = d / f"d{k:04d}.jpg"
                p.write_bytes(data)
                paths.append(str(p.resolve()))
                k += 1
            groups[hashlib.sha256(data).hexdigest()] = paths
    return groups


def _side_of(split: Split) -> dict[str, str]:
    side = {}
    for part in ("train", "val", "test"):
        for path, _ in getattr(split, part):
            assert path not in side, f"{path} in two parts"
            side[path] = part
    return side


@pytest.fixture(scope="module")
def dup_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dups") / "ds"
    groups = make_dup_dataset(root, n_unique=60, n_groups=25)
    return root, groups


# ---------------------------------------------------------------- the core properties

def test_duplicate_groups_never_cross_parts_over_many_seeds(dup_data):
    root, groups = dup_data
    n_files = sum(1 for _ in root.rglob("*.jpg"))
    seen_fps = set()
    for seed in range(40):
        s = make_split(root, seed=seed, verify=False)
        side = _side_of(s)
        assert len(side) == n_files  # nothing lost, nothing doubled
        for paths in groups.values():
            assert len({side[p] for p in paths}) == 1, f"seed {seed}: a duplicate group was split"
        assert s.duplicate_groups == 50
        seen_fps.add(s.fingerprints["test"])
    assert len(seen_fps) == 40  # different seeds, different test sets


def test_split_is_stratified_with_exact_sizes(tmp_path):
    root = tmp_path / "ds"
    make_dup_dataset(root, n_unique=100, n_groups=0)
    s = make_split(root, seed=3)
    # per class: test round(100 * 0.2) = 20; val round(80 * 0.1) = 8; train the rest
    for cls in ("positive", "negative"):
        assert s.counts["test"][cls] == 20
        assert s.counts["val"][cls] == 8
        assert s.counts["train"][cls] == 72
    for part in ("train", "val", "test"):
        labels = [lab for _, lab in getattr(s, part)]
        assert labels.count(1) == s.counts[part]["positive"] and labels.count(0) == s.counts[part]["negative"]
        for path, lab in getattr(s, part):
            assert lab == LABELS[Path(path).parent.name]
            assert Path(path).is_absolute()


def test_same_seed_same_split_different_seed_different(dup_data):
    root, _ = dup_data
    a, b, c = make_split(root, seed=7), make_split(root, seed=7), make_split(root, seed=8)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert a.fingerprints == b.fingerprints
    assert a.test != c.test and a.fingerprints["test"] != c.fingerprints["test"]


def test_fingerprints_are_the_documented_hash_and_path_independent(tmp_path, dup_data):
    root, _ = dup_data
    s = make_split(root, seed=1)
    for part in ("train", "val", "test"):
        keys = sorted(f"{Path(p).parent.name}/{Path(p).name}" for p, _ in getattr(s, part))
        assert s.fingerprints[part] == hashlib.sha256("\n".join(keys).encode()).hexdigest()
        assert s.fingerprints[part] == fingerprint(keys)
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    t = make_split(moved, seed=1)
    assert t.fingerprints == s.fingerprints  # depends on content and names, not on where the folder is
    assert t.train[0][0].startswith(str(moved.resolve()))


def test_fingerprints_stable_on_the_real_sample():
    """Frozen values: if the split algorithm changes, past runs stop being comparable. Change on purpose only."""
    d = require_sample_data()
    s = make_split(d, seed=42)
    assert s.counts == {"train": {"positive": 288, "negative": 288}, "val": {"positive": 32, "negative": 32},
                        "test": {"positive": 80, "negative": 80}}
    assert s.fingerprints == FROZEN_SAMPLE_FINGERPRINTS


FROZEN_SAMPLE_FINGERPRINTS = {
    "train": "8a7d16de2f24b32bf3e40c9c671dcc304f6f8e279165b8322417f7ec9b71f34c",
    "val": "3d79c8632b3d49bd4cc74a66de3055869dc8a01320c759a11bca2b97f66e4ef9",
    "test": "47adb4b5b285d18cddc8aab044553567f15d72758b731f231ae1d9e2db03ab02",
}


def test_file_order_does_not_matter(tmp_path):
    """Same content under different names: the assignment follows the content hash."""
    rng = random.Random(5)
    blobs = {cls: [_tiny_jpeg(rng) for _ in range(30)] for cls in ("positive", "negative")}
    for variant, names in (("a", lambda i: f"{i:03d}.jpg"), ("b", lambda i: f"{999 - i:03d}.jpg")):
        for cls, bl in blobs.items():
            (tmp_path / variant / cls).mkdir(parents=True)
            for i, b in enumerate(bl):
                (tmp_path / variant / cls / names(i)).write_bytes(b)
    sa, sb = make_split(tmp_path / "a", seed=2), make_split(tmp_path / "b", seed=2)

    def contents(split, part):
        return sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p, _ in getattr(split, part))

    for part in ("train", "val", "test"):
        assert contents(sa, part) == contents(sb, part)


# ---------------------------------------------------------------- what gets skipped

def test_crafted_dataset_skips_exactly_the_bad_files(tmp_path):
    root = tmp_path / "ds"
    exp = make_crafted_dataset(root)
    s = make_split(root, seed=0)
    skipped = {x["path"]: x["reason"] for x in s.skipped}
    expected = {exp["truncated"], *exp["non_images"], *exp["conflict_group"]}
    assert set(skipped) == expected
    assert "truncated" in skipped[exp["truncated"]].lower()
    for p in exp["conflict_group"]:
        assert skipped[p].startswith("label conflict")
    total = {c: sum(s.counts[p][c] for p in ("train", "val", "test")) for c in ("positive", "negative")}
    assert total == exp["usable"]
    side = _side_of(s)
    assert len({side[p] for p in exp["duplicate_group"]}) == 1
    assert s.duplicate_groups == 1
    assert not any(p in side for p in expected)


def test_verify_false_only_hashes(tmp_path):
    root = tmp_path / "ds"
    exp = make_crafted_dataset(root)
    s = make_split(root, seed=0, verify=False)
    side = _side_of(s)
    # the truncated JPEG is not decoded, so it is used; headers are still read, so the text file
    # named .jpg and the .txt file are still left out, and so are label conflicts
    assert exp["truncated"] in side
    skipped = {x["path"] for x in s.skipped}
    assert skipped == {*exp["non_images"], *exp["conflict_group"]}


def test_to_dict_is_json_without_file_lists(tmp_path):
    root = tmp_path / "ds"
    make_crafted_dataset(root)
    s = make_split(root, seed=4, max_per_class=15)
    d = json.loads(json.dumps(s.to_dict()))
    assert set(d) >= {"counts", "fingerprints", "skipped", "duplicate_groups", "seed", "sizes"}
    assert "train" not in d and d["seed"] == 4 and d["max_per_class"] == 15
    assert d["sizes"]["train"] == len(s.train)
    assert len(d["skipped"]) == len(s.skipped) == 5


# ---------------------------------------------------------------- test_dir and max_per_class

def test_test_dir_is_the_test_set_and_its_copies_leave_training(tmp_path):
    pos, neg = source_images(tmp_path, 20)
    data, test = tmp_path / "data", tmp_path / "test"
    for f in pos[:16]:
        copy_file(f, data / "positive" / f.name)
    for f in neg[:16]:
        copy_file(f, data / "negative" / f.name)
    for f in pos[14:]:  # pos[14], pos[15] are in both folders
        copy_file(f, test / "positive" / ("t_" + f.name))
    for f in neg[16:]:
        copy_file(f, test / "negative" / ("t_" + f.name))
    s = make_split(data, seed=0, test_fraction=0.5, val_fraction=0.25, test_dir=str(test))
    assert s.counts["test"] == {"positive": 6, "negative": 4}  # test_fraction ignored
    assert all(Path(p).parent.parent == test.resolve() for p, _ in s.test)
    leaked = {str((data / "positive" / pos[i].name).resolve()) for i in (14, 15)}
    skipped = {x["path"]: x["reason"] for x in s.skipped}
    assert set(skipped) == leaked
    assert all(r.startswith("warning:") and "test image" in r for r in skipped.values())
    side = _side_of(s)
    assert not leaked & set(side)
    # the rest of data/ is train + val: 14 positive, 16 negative; val = round(n * 0.25)
    assert s.counts["val"] == {"positive": 4, "negative": 4}
    assert s.counts["train"] == {"positive": 10, "negative": 12}
    assert s.to_dict()["test_dir"] == str(test.resolve()) and s.to_dict()["test_fraction"] is None


def test_test_dir_must_differ_and_have_both_classes(tmp_path):
    pos, neg = source_images(tmp_path, 6)
    data, test = tmp_path / "data", tmp_path / "test"
    for f in pos:
        copy_file(f, data / "positive" / f.name)
    for f in neg:
        copy_file(f, data / "negative" / f.name)
    with pytest.raises(UsageError, match="same folder"):
        make_split(data, test_dir=str(data))
    copy_file(pos[0], test / "positive" / "a.jpg")
    with pytest.raises(UsageError, match="test folder .* has no negative/ folder"):
        make_split(data, test_dir=str(test))
    (test / "negative").mkdir()
    with pytest.raises(UsageError, match="'negative' in test folder .* has no usable images"):
        make_split(data, test_dir=str(test))


def test_max_per_class_caps_deterministically_keeping_groups_whole(dup_data):
    root, groups = dup_data
    a = make_split(root, seed=11, max_per_class=50, verify=False)
    b = make_split(root, seed=11, max_per_class=50, verify=False)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    for cls in ("positive", "negative"):
        n = sum(a.counts[p][cls] for p in ("train", "val", "test"))
        assert 45 <= n <= 50  # whole groups only, so possibly a little under the cap
    side = _side_of(a)
    for paths in groups.values():
        assert len({side.get(p, "left out") for p in paths}) == 1  # all in one part, or all left out


# ---------------------------------------------------------------- bad input

def test_bad_inputs_raise_usage_errors_with_hints(tmp_path):
    with pytest.raises(UsageError, match="does not exist") as ei:
        make_split(tmp_path / "nope")
    assert "crackops data synth" in ei.value.hint

    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        make_split(f)

    ds = tmp_path / "ds"
    pos, neg = source_images(tmp_path, 10)
    for x in pos:
        copy_file(x, ds / "positive" / x.name)
    with pytest.raises(UsageError, match="no negative/ folder") as ei:
        make_split(ds)
    assert "positive/" in ei.value.hint

    (ds / "negative").mkdir()
    (ds / "negative" / "a.jpg").write_text("not an image")
    with pytest.raises(UsageError, match="'negative' .* has no usable images") as ei:
        make_split(ds)
    assert "crackops data check" in ei.value.hint

    for x in neg[:2]:
        copy_file(x, ds / "negative" / x.name)
    with pytest.raises(UsageError, match="too few images to split") as ei:
        make_split(ds)  # 2 negatives cannot fill train, val and test
    assert "2 negative" in ei.value.message

    for x in neg[2:]:
        copy_file(x, ds / "negative" / x.name)
    assert make_split(ds).counts["test"] == {"positive": 2, "negative": 2}
    for kw in (dict(test_fraction=1.0), dict(test_fraction=-0.1), dict(val_fraction=1.5), dict(test_fraction="x"),
               dict(max_per_class=0), dict(max_per_class=2.5), dict(seed="1")):
        with pytest.raises(UsageError):
            make_split(ds, **kw)


def test_zero_fractions_leave_parts_empty_on_purpose(tmp_path):
    ds = tmp_path / "ds"
    make_dup_dataset(ds, n_unique=10, n_groups=0)
    s = make_split(ds, val_fraction=0.0)
    assert s.val == [] and s.counts["val"] == {"positive": 0, "negative": 0}
    s = make_split(ds, test_fraction=0.0, val_fraction=0.0)
    assert s.test == [] and len(s.train) == 20


def test_capitalised_class_folders_work(tmp_path):
    ds = tmp_path / "ds"
    make_dup_dataset(ds, n_unique=10, n_groups=0)
    (ds / "positive").rename(ds / "Positive")
    (ds / "negative").rename(ds / "Negative")
    s = make_split(ds)
    assert {lab for _, lab in s.train} == {0, 1}
    assert all(Path(p).parent.name in ("Positive", "Negative") for p, _ in s.train)


def test_verify_runs_in_parallel_on_a_larger_set(tmp_path, monkeypatch):
    from crackops.data import scan

    ds = tmp_path / "ds"
    make_dup_dataset(ds, n_unique=30, n_groups=5)
    serial = make_split(ds, seed=9)
    monkeypatch.setattr(scan, "PARALLEL_MIN_FILES", 0)
    monkeypatch.setattr(scan, "default_workers", lambda: 2)
    parallel = make_split(ds, seed=9)
    assert (parallel.train, parallel.val, parallel.test) == (serial.train, serial.val, serial.test)


def test_per_class_groups_stay_in_class(dup_data):
    root, _ = dup_data
    s = make_split(root, seed=0)
    by_part = defaultdict(set)
    for part in ("train", "val", "test"):
        for p, lab in getattr(s, part):
            by_part[part].add((Path(p).parent.name, lab))
    for part, pairs in by_part.items():
        assert pairs == {("positive", 1), ("negative", 0)}, part


def test_a_class_folder_given_by_mistake_gets_a_hint(tmp_path):
    ds = tmp_path / "ds"
    make_dup_dataset(ds, n_unique=5, n_groups=0)
    with pytest.raises(UsageError, match="no negative/ or positive/ folder") as ei:
        make_split(ds / "positive")
    assert "give its parent" in ei.value.hint and str(ds.resolve()) in ei.value.hint
