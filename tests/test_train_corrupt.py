"""A real (small) training on a folder with broken files completes and says what it skipped.

60 + 60 real sample photos (synthetic ones when the sample is absent), plus a truncated JPEG in
positive/ and a text file named .jpg in negative/, trained through the local backend at 48 px for
2 epochs: the run must end COMPLETED, list both files in manifest.json's dataset.skipped, and its
.out/.err logs must name them.
"""

from __future__ import annotations

import shutil

import pytest

from crackops import api
from crackops.artifacts import read_manifest
from crackops.config import Resources, TrainConfig
from helpers import sample_data_dir

pytestmark = pytest.mark.tf
N = 60


def make_folder(root):
    src = sample_data_dir()
    if src is None:
        from crackops.data.synth import synthesize

        src = root / "synth"
        synthesize(src, n_per_class=N, size=96, seed=0)
    data = root / "data"
    for cls in ("positive", "negative"):
        (data / cls).mkdir(parents=True)
        for p in sorted((src / cls).iterdir())[:N]:
            shutil.copy(p, data / cls / p.name)
    whole = sorted((data / "positive").iterdir())[0].read_bytes()
    truncated = data / "positive" / "zz_truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    text = data / "negative" / "zz_notes.jpg"
    text.write_text("these are field notes, not a photo\n")
    return data, truncated, text


def test_training_skips_broken_files_and_says_so(tmp_path, crackops_dirs):
    data, truncated, text = make_folder(tmp_path)
    run = api.submit(TrainConfig(data_dir=str(data), image_size=48, epochs=2, seed=3),
                     Resources(cpus=2, mem="4G", time="0:20:00"), name="corrupt")
    for rep in api.wait([run.job_id], poll_s=1.0, timeout_s=900):
        last = rep
    done = last.runs[0]
    err_log = open(done.log_err, errors="replace").read()
    out_log = open(done.log_out, errors="replace").read()
    assert done.state == "COMPLETED", (done.reason, err_log[-3000:])

    manifest = read_manifest(done.out_dir)
    skipped = {s["path"]: s["reason"] for s in manifest["dataset"]["skipped"]}
    assert set(skipped) == {str(truncated), str(text)}, skipped
    assert "truncated" in skipped[str(truncated)] or "decode" in skipped[str(truncated)]
    assert "not an image" in skipped[str(text)]
    # every other image was used
    sizes = manifest["dataset"]["sizes"]
    assert sum(sizes.values()) == 2 * N

    logs = out_log + err_log
    for p in (truncated, text):
        assert f"skipped {p}" in logs, logs[-3000:]
    assert "2 skipped" in out_log
    assert api.collect(run.job_id).ok
