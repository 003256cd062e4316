"""What ``submit`` refuses before anything is submitted: one source of truth for the dataset layout
(the scanner's), and a folder too small to split (``submit`` and ``data check`` agree)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from crackops import api
from crackops.cli import app
from crackops.config import TrainConfig
from crackops.data.check import check_dataset
from crackops.registry import Registry
from helpers import assert_clean_error

runner = CliRunner()


def make_images(root, n_pos, n_neg, names=("positive", "negative"), size=32):
    """``n_pos`` / ``n_neg`` distinct JPEGs in class folders called ``names``."""
    from PIL import Image

    for cls, n in zip(names, (n_pos, n_neg)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shade = (i * 7 + (0 if cls.lower() == "positive" else 3)) % 256
            Image.new("RGB", (size, size), (shade, 255 - shade, (i * 13) % 256)).save(root / cls / f"{i}.jpg")
    return root


# ------------------------------------------------------------------ 1. the release layout

def test_release_layout_with_capitalised_folders_is_accepted_by_submit(tmp_path):
    d = make_images(tmp_path / "release", 10, 10, names=("Positive", "Negative"))
    assert api.check_data_dir(d) == d.resolve()
    res = runner.invoke(app, ["submit", "--data", str(d), "--dry-run"])
    assert res.exit_code == 0, res.output
    # and data check says the same about the same folder
    assert check_dataset(d).ok


def test_submit_and_data_check_refuse_the_same_layouts(tmp_path):
    d = make_images(tmp_path / "twice", 10, 10)
    (d / "POSITIVE").mkdir()          # two folders for one class: ambiguous for both
    assert_clean_error(runner.invoke(app, ["submit", "--data", str(d), "--dry-run"]), 2, "more than one folder")
    res = runner.invoke(app, ["data", "check", str(d)])
    assert res.exit_code == 2 and "more than one folder" in res.output
    assert Registry().list() == []


def test_class_folder_with_files_but_no_images_is_refused(tmp_path):
    d = make_images(tmp_path / "d", 3, 0)
    (d / "negative" / "notes.txt").write_text("x")
    assert_clean_error(runner.invoke(app, ["submit", "--data", str(d), "--dry-run"]), 2, "holds no images")


# ------------------------------------------------------------------ 6. too small to split

@pytest.mark.parametrize("args", [[], ["--max-images", "2"]])
def test_too_small_to_split_is_refused_before_submitting(tmp_path, args):
    d = make_images(tmp_path / "small", 2, 2) if not args else make_images(tmp_path / "capped", 30, 30)
    res = runner.invoke(app, ["submit", "--data", str(d), *args])
    assert_clean_error(res, 2, "too few images to split", "--max-images", "--test-fraction", "--val-fraction")
    for internal in ("max_per_class", "test_fraction", "val_fraction"):
        assert internal not in res.output.replace("--test-fraction", "").replace("--val-fraction", ""), res.output
    assert Registry().list() == []    # nothing submitted, nothing recorded
    dry = runner.invoke(app, ["submit", "--data", str(d), "--dry-run", *args])
    assert_clean_error(dry, 2, "too few images to split")


def test_data_check_says_a_tiny_folder_is_not_ready(tmp_path):
    d = make_images(tmp_path / "small", 2, 2)
    rep = check_dataset(d)
    assert not rep.ok and any("too few images to split" in e for e in rep.errors), rep.problems
    res = runner.invoke(app, ["data", "check", str(d)])
    assert res.exit_code == 6 and "ready to train" not in res.output, res.output
    js = json.loads(runner.invoke(app, ["data", "check", str(d), "--json"]).stdout)
    assert js["ok"] is False


def test_a_folder_just_big_enough_passes_both(tmp_path):
    # 5 + 5: test 1, val round(4 * 0.1) = 0 -> the val part would be empty; 10 + 10 is enough
    d = make_images(tmp_path / "ok", 10, 10)
    assert check_dataset(d).ok
    api.check_training_data(TrainConfig(data_dir=str(d)))
    res = runner.invoke(app, ["submit", "--data", str(d), "--dry-run"])
    assert res.exit_code == 0, res.output


def test_split_error_names_the_flags(tmp_path):
    from crackops.data.split import make_split
    from crackops.errors import UsageError

    d = make_images(tmp_path / "small", 2, 2)
    with pytest.raises(UsageError) as e:
        make_split(d)
    assert "--max-images" in e.value.hint and "--test-fraction" in e.value.hint
    assert "max_per_class" not in e.value.hint
