"""crackops.data.check / scan and `crackops data check`: exact findings on crafted folders."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from crackops.data import scan
from crackops.data.check import check_dataset
from crackops.errors import EXIT_CHECK, UsageError
from helpers import copy_file, invoke, make_crafted_dataset, source_images
from helpers import text as _text


@pytest.fixture
def crafted(tmp_path):
    root = tmp_path / "ds"
    return root, make_crafted_dataset(root)


def test_crafted_dataset_exact_findings(crafted):
    root, exp = crafted
    rep = check_dataset(root)
    assert rep.counts == exp["usable"]
    assert rep.files == {"positive": 20 + 6, "negative": 20 + 2}
    assert rep.sizes == {exp["size"]: exp["decodable"]}
    assert rep.modes == {"RGB": exp["decodable"] - 1, "L": 1}
    assert rep.formats == {"JPEG": exp["decodable"] - 1, "PNG": 1}
    assert [u["path"] for u in rep.unreadable] == [exp["truncated"]]
    assert "truncated" in rep.unreadable[0]["reason"].lower()
    assert sorted(x["path"] for x in rep.non_images) == exp["non_images"]
    reasons = {Path(x["path"]).name: x["reason"] for x in rep.non_images}
    assert "not an image" in reasons["fake.jpg"] and "'.txt'" in reasons["notes.txt"]
    assert rep.duplicates == [exp["duplicate_group"]]
    assert rep.duplicate_files == 2
    assert rep.label_conflicts == [exp["conflict_group"]]
    assert rep.missing_classes == [] and rep.empty_classes == []
    assert rep.imbalance_ratio == round(24 / 19, 3)
    # label conflicts stop a training run; the rest are warnings
    assert rep.ok is False
    assert len(rep.errors) == 1 and "both classes" in rep.errors[0]
    warnings = " | ".join(rep.warnings)
    for needle in ("cannot be decoded", "not usable images", "byte-identical images within a class", "not all images are RGB"):
        assert needle in warnings, warnings


def test_report_to_dict_is_json(crafted):
    root, exp = crafted
    d = check_dataset(root).to_dict()
    again = json.loads(json.dumps(d))
    assert again["counts"] == exp["usable"] and again["ok"] is False and again["duplicate_files"] == 2
    assert again["problems"][0]["severity"] == "error"


def test_clean_dataset_is_ok(tmp_path):
    pos, neg = source_images(tmp_path, 12)
    for f in pos:
        copy_file(f, tmp_path / "ds" / "positive" / f.name)
    for f in neg:
        copy_file(f, tmp_path / "ds" / "negative" / f.name)
    rep = check_dataset(tmp_path / "ds")
    assert rep.ok and rep.counts == {"negative": 12, "positive": 12}
    assert rep.imbalance_ratio == 1.0
    assert rep.errors == []
    # only the "few images" warning for such a tiny set
    assert len(rep.warnings) == 1 and "few images" in rep.warnings[0]


def test_empty_and_missing_classes(tmp_path):
    pos, _ = source_images(tmp_path, 5)
    ds = tmp_path / "ds"
    for f in pos:
        copy_file(f, ds / "positive" / f.name)
    rep = check_dataset(ds)
    assert rep.missing_classes == ["negative"] and not rep.ok
    assert rep.imbalance_ratio is None
    assert any("no negative/ folder" in e for e in rep.errors)

    (ds / "negative").mkdir()
    rep = check_dataset(ds)
    assert rep.missing_classes == [] and rep.empty_classes == ["negative"] and not rep.ok
    assert any("'negative' has no usable image: it is empty" in e for e in rep.errors)

    (ds / "negative" / "broken.jpg").write_bytes(pos[0].read_bytes()[:500])
    rep = check_dataset(ds)
    assert rep.empty_classes == ["negative"] and len(rep.unreadable) == 1
    assert any("none of its 1 entry is a usable image" in e for e in rep.errors)


def test_missing_or_wrong_data_dir_raises(tmp_path):
    with pytest.raises(UsageError, match="does not exist") as ei:
        check_dataset(tmp_path / "nope")
    assert ei.value.hint and "positive/" in ei.value.hint
    f = tmp_path / "file.zip"
    f.write_bytes(b"PK")
    with pytest.raises(UsageError, match="is not a folder"):
        check_dataset(f)


def test_class_folders_are_found_case_insensitively(tmp_path):
    pos, neg = source_images(tmp_path, 3)
    for f in pos:
        copy_file(f, tmp_path / "ds" / "Positive" / f.name)
    for f in neg:
        copy_file(f, tmp_path / "ds" / "Negative" / f.name)
    rep = check_dataset(tmp_path / "ds")
    assert rep.counts == {"negative": 3, "positive": 3}
    assert rep.class_dirs["positive"].endswith("/Positive")
    (tmp_path / "ds" / "positive").mkdir()
    with pytest.raises(UsageError, match="more than one folder for class 'positive'"):
        check_dataset(tmp_path / "ds")


def test_class_shortcut_warning(tmp_path):
    """All positives grayscale, all negatives RGB: a model could learn the mode, not the crack."""
    pos, neg = source_images(tmp_path, 4)
    for f in pos:
        with Image.open(f) as im:
            (tmp_path / "ds" / "positive").mkdir(parents=True, exist_ok=True)
            im.convert("L").save(tmp_path / "ds" / "positive" / f.name)
    for f in neg:
        copy_file(f, tmp_path / "ds" / "negative" / f.name)
    rep = check_dataset(tmp_path / "ds")
    assert any("different image colour modes" in w for w in rep.warnings), rep.warnings
    assert not any("different image sizes" in w for w in rep.warnings)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99, -2])
def test_truncation_caught_by_reduced_scale_decode(tmp_path, keep):
    """The fast check decodes JPEGs at 1/8 scale; truncation must still be caught."""
    from crackops.data.synth import render

    buf = io.BytesIO()
    Image.fromarray(render(0, "positive", 0, 227)).save(buf, "JPEG", quality=75)  # ~6 KB, like the real ones
    data = buf.getvalue()
    cut = data[:keep] if isinstance(keep, int) else data[: int(len(data) * keep)]
    f = tmp_path / "t.jpg"
    f.write_bytes(cut)
    info = scan.scan_one(str(f), "positive", verify=True)
    assert not info.ok and info.kind == "unreadable" and "truncated" in info.reason.lower()
    # without verification it is only hashed, and looks fine
    assert scan.scan_one(str(f), "positive", verify=False).ok
    # the intact file passes
    good = tmp_path / "g.jpg"
    good.write_bytes(data)
    assert scan.scan_one(str(good), "positive", verify=True).ok


def test_scan_rejects_unsupported_content_and_empty_files(tmp_path):
    src = source_images(tmp_path, 1)[0][0]
    with Image.open(src) as im:
        im.save(tmp_path / "really_tiff.jpg", format="TIFF")
    (tmp_path / "empty.png").write_bytes(b"")
    a = scan.scan_one(str(tmp_path / "really_tiff.jpg"), "negative")
    b = scan.scan_one(str(tmp_path / "empty.png"), "negative")
    assert not a.ok and "TIFF" in a.reason
    assert not b.ok and "empty file" in b.reason


def test_parallel_scan_matches_serial(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    make_crafted_dataset(root)
    _, dirs = scan.resolve_class_dirs(root)
    serial = scan.scan_class_dirs(dirs, workers=1)
    monkeypatch.setattr(scan, "PARALLEL_MIN_FILES", 0)
    seen = []
    parallel = scan.scan_class_dirs(dirs, workers=2, progress=seen.append)
    assert parallel == serial
    assert sum(seen) == 20 + 6 + 20 + 1  # every file with an image extension


def test_progress_reports_every_file(crafted):
    root, _ = crafted
    seen, totals = [], []
    check_dataset(root, progress=seen.append, total=totals.append)
    assert totals == [20 + 6 + 20 + 1]  # images by extension: notes.txt is never opened
    assert sum(seen) == totals[0]


# ---------------------------------------------------------------- the CLI

def _app():
    from crackops.cli.data import app

    return app


def test_cli_check_table_and_exit_code(crafted):
    root, _ = crafted
    res = invoke("check", str(root), app=_app())
    assert res.exit_code == EXIT_CHECK, _text(res)
    out = res.stdout
    assert "usable images" in out and "positive/conflict.jpg" in out and "not ok" in out
    assert "positive/truncated.jpg" in out


def test_cli_check_json_only(crafted):
    root, exp = crafted
    res = invoke("check", str(root), "--json", app=_app())
    assert res.exit_code == EXIT_CHECK
    d = json.loads(res.stdout)  # nothing but JSON on stdout
    assert d["counts"] == exp["usable"] and d["label_conflicts"] == [exp["conflict_group"]]


def test_cli_check_ok_exits_zero(tmp_path):
    pos, neg = source_images(tmp_path, 6)
    for f in pos:
        copy_file(f, tmp_path / "ds" / "positive" / f.name)
    for f in neg:
        copy_file(f, tmp_path / "ds" / "negative" / f.name)
    res = invoke("check", str(tmp_path / "ds"), app=_app())
    assert res.exit_code == 0, _text(res)
    assert "ok" in res.stdout and "12 usable images" in res.stdout


def test_cli_check_missing_dir_is_a_usage_error(tmp_path):
    res = invoke("check", str(tmp_path / "nope"), app=_app())
    assert res.exit_code != 0
    assert "does not exist" in _text(res)
    assert "Traceback" not in (res.stdout or "")


def test_cli_help_has_examples():
    for cmd in ("check", "synth"):
        res = invoke(cmd, "--help", app=_app())
        assert res.exit_code == 0 and "Examples" in res.stdout and "crackops data " + cmd in res.stdout


def test_check_module_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, crackops.data.check, crackops.data.split, crackops.data.synth, crackops.cli.data\n"
            "print([m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.strip() == "[]", p.stderr


def test_sample_data_is_clean_when_present():
    from helpers import require_sample_data

    d = require_sample_data()
    rep = check_dataset(d)
    assert rep.ok and rep.counts == {"negative": 400, "positive": 400}
    assert rep.sizes == {"227x227": 800} and rep.modes == {"RGB": 800}
    assert rep.duplicates == [] and rep.problems == []


def test_class_folder_given_by_mistake(tmp_path):
    pos, _ = source_images(tmp_path, 2)
    for f in pos:
        copy_file(f, tmp_path / "ds" / "positive" / f.name)
    rep = check_dataset(tmp_path / "ds" / "positive")
    assert not rep.ok and rep.missing_classes == ["negative", "positive"]
    assert all("looks like a class folder" in e for e in rep.errors)


def test_workers_are_never_forked_from_a_process_running_tensorflow(monkeypatch):
    import sys
    import threading
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    for lib in scan._THREADED_LIBS:  # as in a fresh `crackops data check` process
        monkeypatch.delitem(sys.modules, lib, raising=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    with scan.worker_pool(2) as pool:
        assert isinstance(pool, ProcessPoolExecutor)  # nothing threaded: forked processes
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with scan.worker_pool(2) as pool:
        assert isinstance(pool, ThreadPoolExecutor)


def test_unguarded_script_runs_once_even_when_forking_is_unsafe(tmp_path):
    """A user script without ``if __name__ == "__main__"`` that scans while another thread runs
    (as in any process that loaded TensorFlow): the workers must not re-run the script."""
    import subprocess
    import sys

    from crackops.data.synth import synthesize

    data = tmp_path / "ds"
    synthesize(data, n_per_class=250, size=32, seed=0, workers=1)  # 500 files: the parallel path
    script = tmp_path / "user_script.py"
    script.write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "from crackops.data.scan import scan_class_dirs\n"
        "print('TOP-LEVEL RAN', flush=True)\n"
        f"infos = scan_class_dirs({{'positive': {str(data / 'positive')!r}, 'negative': {str(data / 'negative')!r}}}, workers=2)\n"
        "print('SCANNED', len(infos), sum(i.ok for i in infos), flush=True)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("TOP-LEVEL RAN") == 1, proc.stdout
    assert "SCANNED 500 500" in proc.stdout, proc.stdout
