"""crackops predict and Grad-CAM on the shared trained run (real sample photos when present).

Predictions on the run's own test photos must equal the probabilities the training wrote in
predictions_test.csv; heat maps must have the original photo's size and actually vary.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from crackops.registry import Registry, Run
from helpers import assert_clean_error, invoke

pytestmark = pytest.mark.tf


def training_probs(trained_run) -> dict[str, tuple[int, float]]:
    with open(trained_run["out_dir"] / "predictions_test.csv") as f:
        return {r["path"]: (int(r["label"]), float(r["prob_crack"])) for r in csv.DictReader(f)}


def pick(probs, n_per_class=6):
    """Test photos of both classes, the most confident crack photo first."""
    pos = sorted((p for p, (y, _) in probs.items() if y == 1), key=lambda p: -probs[p][1])
    neg = sorted(p for p, (y, _) in probs.items() if y == 0)
    return pos[:n_per_class] + neg[:n_per_class]


@pytest.fixture(scope="module")
def loaded(trained_run):
    from crackops.ml.predict import load_model

    return load_model(trained_run["out_dir"] / "best.h5")


# ------------------------------------------------------------------ the Python API

def test_predictions_match_the_trainings_own(trained_run, loaded):
    from crackops.ml.predict import predict

    probs = training_probs(trained_run)
    paths = pick(probs, 8)
    assert loaded.image_size == trained_run["manifest"]["config"]["image_size"]
    rows = predict(loaded, paths, batch_size=5)  # batches that do not line up with training's
    assert [r["path"] for r in rows] == paths
    for r in rows:
        assert r["error"] is None
        assert r["prob_crack"] == pytest.approx(probs[r["path"]][1], abs=1e-4), r
        assert r["label"] == ("crack" if r["prob_crack"] >= 0.5 else "no crack")
    # the run learned: its confident crack photo is called a crack
    assert rows[0]["label"] == "crack"


def test_folder_recursive_with_bad_files(tmp_path, trained_run, loaded):
    from crackops.ml.predict import predict

    probs = training_probs(trained_run)
    paths = pick(probs, 2)
    (tmp_path / "a" / "deeper").mkdir(parents=True)
    copies = {}
    for i, p in enumerate(paths):
        dest = tmp_path / "a" / ("deeper" if i % 2 else "") / f"img{i}.jpg"
        shutil.copy(p, dest)
        copies[str(dest)] = probs[p][1]
    real = open(paths[0], "rb").read()
    (tmp_path / "a" / "truncated.jpg").write_bytes(real[: len(real) // 3])
    (tmp_path / "a" / "text.jpg").write_text("not a photo")
    (tmp_path / "a" / "notes.txt").write_text("field notes")
    (tmp_path / "a" / ".hidden.jpg").write_text("ignored")
    rows = predict(loaded, [tmp_path / "a", tmp_path / "missing.png"])
    by = {r["path"]: r for r in rows}
    assert len(rows) == len(copies) + 4
    for p, pr in copies.items():
        assert by[p]["prob_crack"] == pytest.approx(pr, abs=1e-4)
    assert "truncated" in by[str(tmp_path / "a" / "truncated.jpg")]["error"]
    assert "not an image" in by[str(tmp_path / "a" / "text.jpg")]["error"]
    assert "not an image file" in by[str(tmp_path / "a" / "notes.txt")]["error"]
    assert by[str(tmp_path / "missing.png")]["error"] == "no such file or folder"
    assert not any(".hidden" in p for p in by)
    for r in rows:
        assert (r["error"] is None) == (r["prob_crack"] is not None) == (r["label"] is not None)


def test_any_image_size_is_resized_as_in_training(tmp_path, trained_run, loaded):
    """A photo saved at another size and format gets (nearly) the probability of the original:
    the model always sees it resized to its input size."""
    from crackops.ml.predict import predict

    probs = training_probs(trained_run)
    src = pick(probs, 1)[0]
    big = tmp_path / "big.png"
    Image.open(src).convert("RGB").resize((454, 454), Image.Resampling.BICUBIC).save(big)
    grey = tmp_path / "grey.png"
    Image.open(src).convert("L").save(grey)
    rows = predict(loaded, [big, grey])
    assert all(r["error"] is None for r in rows)
    assert rows[0]["prob_crack"] == pytest.approx(probs[src][1], abs=0.1)


# ------------------------------------------------------------------ the command

def test_cli_json_by_job_id(registered_trained_run, trained_run):
    probs = training_probs(trained_run)
    paths = pick(probs, 3)
    res = invoke("predict", "trained1", *paths, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["path"] for r in rows] == paths
    for r in rows:
        assert set(r) == {"path", "prob_crack", "label", "error"}
        assert r["prob_crack"] == pytest.approx(probs[r["path"]][1], abs=1e-4)
    assert "run trained1" in res.stderr


def test_cli_csv_threshold_and_folder(tmp_path, trained_run):
    probs = training_probs(trained_run)
    paths = pick(probs, 3)
    d = tmp_path / "photos"
    d.mkdir()
    for p in paths:
        shutil.copy(p, d / f"{probs[p][0]}_{p.rsplit('/', 1)[-1]}")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    # a threshold between two probabilities flips the labels above and below it
    values = sorted(probs[p][1] for p in paths)
    cut = next(((a + b) / 2 for a, b in zip(values, values[1:]) if b - a > 1e-3), 0.5)
    res = invoke("predict", trained_run["out_dir"] / "best.h5", d, "--csv", "--threshold", cut)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [k for k in rows[0]] == ["path", "prob_crack", "label", "error"]
    assert len(rows) == len(paths) + 1
    good = [r for r in rows if not r["error"]]
    assert len(good) == len(paths)
    for r in good:
        assert r["label"] == ("crack" if float(r["prob_crack"]) >= cut else "no crack")
    bad = [r for r in rows if r["error"]]
    assert bad[0]["path"].endswith("broken.jpg") and bad[0]["prob_crack"] == "" and bad[0]["label"] == ""
    assert "broken.jpg" in res.stderr  # also said on stderr in CSV/JSON mode


def test_cli_table_and_explain(tmp_path, trained_run):
    probs = training_probs(trained_run)
    paths = pick(probs, 2)
    res = invoke("predict", trained_run["out_dir"] / "best.h5", *paths, "--explain", tmp_path / "maps")
    assert res.exit_code == 0, res.output
    assert "crack probability" in res.stdout and "no crack" in res.stdout
    for p in paths:
        png = tmp_path / "maps" / (p.rsplit("/", 1)[-1].rsplit(".", 1)[0] + "_gradcam.png")
        assert png.is_file()
        assert Image.open(png).size == Image.open(p).size


@pytest.mark.parametrize("args, code, fragment", [
    (["nojob", "x.jpg"], 3, "unknown job id 'nojob'"),
    (["missing/model.h5", "x.jpg"], 3, "does not exist"),
    (["--json", "--csv"], 2, "--json and --csv"),
    (["--threshold", "1.5"], 2, "out of range"),
])
def test_cli_bad_input_is_one_line(tmp_path, trained_run, args, code, fragment):
    img = pick(training_probs(trained_run), 1)[0]
    if args[0].startswith("-"):
        args = [trained_run["out_dir"] / "best.h5", img, *args]
    res = invoke("predict", *args)
    assert_clean_error(res, code, fragment)


def test_cli_runs_without_a_usable_model(tmp_path, trained_run):
    img = pick(training_probs(trained_run), 1)[0]
    reg = Registry()
    base = dict(backend="local", config={}, resources={}, submitted_at=time.time(), ended_at=time.time())
    reg.add(Run(job_id="failed1", state="FAILED", out_dir=str(tmp_path / "failed1"), **base))
    reg.add(Run(job_id="empty1", state="COMPLETED", out_dir=str(tmp_path / "empty1"), **base))
    assert_clean_error(invoke("predict", "failed1", img), 4, "ended FAILED")
    assert_clean_error(invoke("predict", "empty1", img), 3, "has no model", "best.h5")
    # nothing usable to predict on
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    assert_clean_error(invoke("predict", trained_run["out_dir"] / "best.h5", txt), 6, "no image could be predicted")
    assert_clean_error(invoke("predict", trained_run["out_dir"] / "best.h5", tmp_path / "nope"), 3, "no such file")


# ------------------------------------------------------------------ Grad-CAM

def test_gradcam_png_has_the_original_size_and_shows_something(tmp_path, trained_run, loaded):
    from crackops.ml.explain import GradCam, explain
    from crackops.ml.predict import iter_batches

    probs = training_probs(trained_run)
    crack = pick(probs, 1)[0]
    wide = tmp_path / "wide.png"  # not square, not the training size
    Image.open(crack).convert("RGB").resize((300, 200), Image.Resampling.BILINEAR).save(wide)
    written = explain(loaded, [crack, wide], tmp_path / "maps")
    assert set(written) == {crack, str(wide)}
    for src, png in written.items():
        assert png.name == src.rsplit("/", 1)[-1].rsplit(".", 1)[0] + "_gradcam.png"
        out = Image.open(png)
        assert out.format == "PNG" and out.size == Image.open(src).size
        diff = np.abs(np.asarray(out.convert("RGB"), float) - np.asarray(Image.open(src).convert("RGB"), float))
        assert diff.mean() > 1.0  # the heat map is drawn
    (idx, batch), = list(iter_batches([crack], loaded.image_size))
    maps, p = GradCam(loaded.model).heatmaps(batch)
    m = maps[0]
    assert m.max() == pytest.approx(1.0) and m.min() >= 0.0 and m.std() > 0.05  # not constant
    assert p[0] == pytest.approx(probs[crack][1], abs=2e-3)


def test_gradcam_names_do_not_collide(tmp_path, trained_run, loaded):
    from crackops.ml.explain import explain

    src = pick(training_probs(trained_run), 1)[0]
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        shutil.copy(src, tmp_path / sub / "same.jpg")
    written = explain(loaded, [tmp_path / "x", tmp_path / "y"], tmp_path / "maps")
    assert sorted(p.name for p in written.values()) == ["same-2_gradcam.png", "same_gradcam.png"]


def test_gradcam_under_mixed_bfloat16(trained_run):
    """The same weights in a float32 and in a mixed_bfloat16 model give finite, varying, nearly
    equal maps (whatever policy the machine trained with)."""
    import keras

    from crackops.config import TrainConfig
    from crackops.ml.explain import GradCam
    from crackops.ml.model import build_model
    from crackops.ml.predict import iter_batches

    probs = training_probs(trained_run)
    crack = pick(probs, 1)[0]
    size = trained_run["manifest"]["config"]["image_size"]
    (_, batch), = list(iter_batches([crack], size))
    before = keras.mixed_precision.global_policy().name
    maps = {}
    try:
        for policy in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(policy)
            model = build_model(TrainConfig(image_size=size))
            model.load_weights(str(trained_run["out_dir"] / "best.h5"))
            assert model.layers[1].compute_dtype == ("bfloat16" if policy != "float32" else "float32")
            m, p = GradCam(model).heatmaps(batch)
            assert np.isfinite(m).all() and m.dtype == np.float32 and m[0].std() > 0.05
            assert p[0] == pytest.approx(probs[crack][1], abs=0.05)
            maps[policy] = m[0]
    finally:
        keras.mixed_precision.set_global_policy(before)
    corr = np.corrcoef(maps["float32"].ravel(), maps["mixed_bfloat16"].ravel())[0, 1]
    assert corr > 0.8, corr
