"""Hostile input, property-based (hypothesis): job ids given to the CLI, config values and
profiles given to ``submit --dry-run``, ``--sbatch`` extras, and sacct/squeue text.

Each property: a one-line error with a documented exit code (README "Exit codes"), never a
traceback; nothing read or written outside crackops' own folders; parsers return rows or raise
``CrackopsError``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from crackops.errors import CrackopsError
from helpers import assert_clean_error, invoke, make_run, register, text

DATA = Path(__file__).parent / "data" / "sacct"

# derandomize: CI runs the same examples every time (a failure reproduces); database=None: no
# .hypothesis folder in the work tree
SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

EXIT_USAGE, EXIT_NOT_FOUND = 2, 3

HOSTILE_IDS = ["../x", "../../sentinel", "../sentinel/keep.txt", "1;rm -rf /", "1 && touch pwned", "$(id)",
               "`id`", "9" * 10_000, "ünïcødé", "作业", "", " ", "\t", "~", "~/x", "1234~99999999999",
               "1234~", "x\0y", "\0", "1\n2", "/etc/passwd", ".", "..", "-", "1234/../../sentinel",
               "1234.", "a" * 81, "１２３４", "²", "1234~²"]

job_ids = st.one_of(st.sampled_from(HOSTILE_IDS),
                    st.text(max_size=40),
                    st.text(alphabet="./~;$`()|&<>*?! \t\n-_0123456789az", max_size=30),
                    st.integers(min_value=0).map(lambda n: str(n) * 3))


def _tree(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its size and mtime (the registry's own folder left out)."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == "home" or rel.startswith("home" + os.sep):
            continue
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.path.relpath(p, root) == "home":
                continue
            st_ = os.lstat(p)
            snap[os.path.relpath(p, root)] = (st_.st_size, st_.st_mtime_ns)
    return snap


@pytest.fixture
def world(tmp_path, crackops_dirs, monkeypatch):
    """One known run (1234), a sentinel folder next to the out root, cwd a work folder."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("do not touch\n")
    (sentinel / "best.h5").write_text("not a model\n")
    work = tmp_path / "work"
    work.mkdir()
    crackops_dirs["out"].mkdir()
    crackops_dirs["logs"].mkdir()
    monkeypatch.chdir(work)
    out_dir = crackops_dirs["out"] / "1234"
    out_dir.mkdir()
    register([make_run("1234", out_dir=str(out_dir))])
    return tmp_path


def _one_line_error(res, codes=(EXIT_USAGE, EXIT_NOT_FOUND)):
    assert res.exit_code in codes, (res.exit_code, text(res))
    assert_clean_error(res, res.exit_code)
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert lines and lines[0].startswith("error:"), res.output
    assert len(lines) <= 2 and all(l.startswith(("error:", "hint:")) for l in lines), res.output


COMMANDS = {
    "status": lambda j: ["status", "--no-refresh", "--", j],
    "collect": lambda j: ["collect", "--", j],
    "cancel": lambda j: ["cancel", "--", j],
    "logs": lambda j: ["logs", "--", j],
    "report": lambda j: ["report", "--", j],
    "predict": lambda j: ["predict", "--", j, "."],
    "rerun": lambda j: ["rerun", "--dry-run", "--", j],
    "resume": lambda j: ["resume", "--", j],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@settings(SETTINGS, max_examples=30)
@given(job_id=job_ids)
def test_hostile_job_id_is_a_clean_error_and_touches_nothing_outside(world, command, job_id):
    # "1234" plus blanks is a real run: not hostile, it may succeed (or fail for its state)
    assume(job_id.strip() not in ("1234",))
    before = _tree(world)
    res = invoke(*COMMANDS[command](job_id))
    # predict takes a model file too: "../sentinel/keep.txt" is one, and no image in "." is exit 6
    _one_line_error(res, (EXIT_USAGE, EXIT_NOT_FOUND) + ((6,) if command == "predict" else ()))
    assert _tree(world) == before, f"{command} {job_id!r} changed files outside the registry"
    assert (world / "sentinel" / "keep.txt").read_text() == "do not touch\n"


# ------------------------------------------------------------------ submit --dry-run

@pytest.fixture
def data_dir(tmp_path_factory):
    d = tmp_path_factory.getbasetemp() / "hostile-data"
    if not (d / "positive").is_dir():
        from crackops.data.synth import synthesize

        synthesize(d, n_per_class=12, size=32, seed=1, workers=1)
    return d


INT_FLAGS = ["--image-size", "--batch-size", "--epochs", "--es-patience", "--lr-patience", "--max-images",
             "--seed", "--cpus", "--max-attempts"]
FLOAT_FLAGS = ["--learning-rate", "--bn-momentum", "--dropout", "--test-fraction", "--val-fraction",
               "--warmup-epochs"]
TEXT_FLAGS = ["--mem", "--time", "--partition", "--account", "--qos", "--gres", "--mixed-precision",
              "--lr-schedule", "--augment", "--name"]

numberish = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-0", "0", "1e-400", "10" * 300, "9" * 5000,
                     "0x10", "1_000", " 3", "", "abc", "1.5", "-1", "1e3", "½", "٣"]),
    st.integers().map(str), st.floats().map(str), st.text(max_size=12))


def _check_submit(res):
    if res.exit_code == 0:
        return res.output
    _one_line_error(res, codes=(EXIT_USAGE, EXIT_NOT_FOUND))
    return None


@SETTINGS
@given(flag=st.sampled_from(INT_FLAGS + FLOAT_FLAGS + TEXT_FLAGS), value=numberish, backend=st.sampled_from(["local", "slurm"]))
@example(flag="--learning-rate", value="nan", backend="local")
@example(flag="--image-size", value="9" * 5000, backend="local")
@example(flag="--test-fraction", value="inf", backend="local")
@example(flag="--partition", value="gpu\n#SBATCH --wrap=id", backend="slurm")
def test_submit_dry_run_flag_values(world, data_dir, flag, value, backend):
    # "--" cannot protect an option's value: values that look like options are click's business
    assume(not value.startswith("-") or value.lstrip("-")[:1].isdigit() or value == "-inf")
    res = invoke("submit", "--dry-run", "--backend", backend, "--data", data_dir, f"{flag}={value}")
    if res.exit_code == EXIT_USAGE and "Usage:" in res.output:
        return   # click refused the value's type (e.g. "abc" for an int): its own exit 2, no traceback
    script = _check_submit(res)
    if script is not None and backend == "slurm":
        _assert_safe_script(script, None)


@SETTINGS
@given(content=st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
    st.builds(lambda sec, k, v: f"[{sec}]\n{k} = {v}\n",
              st.sampled_from(["resources", "train", "resources.extra", "other"]),
              st.sampled_from(["cpus", "mem", "time", "job_name", "partition", "extra", "image_size",
                               "batch_size", "learning_rate", "test_fraction", "data_dir", "epochs",
                               "setup", "constraint", "profile", "max_images", "mixed_precision"]),
              st.sampled_from(['"x"', "0", "-1", "1e400", "nan", "inf", "true", "[1, 2]", "{a = 1}",
                               "99999999999999999999", '"a\\nb"', "1979-05-27T07:32:00Z", '""', "3.5",
                               '"16G"', '"4:00:00"', "2"])),
    st.sampled_from(["resources = 3", "train = 'x'", "resources = []", "[resources]\nextra = 5",
                     "\x00\x01", "\ufeff[resources]\ncpus=2"]),
))
def test_garbage_profile_is_a_clean_error(world, data_dir, content):
    p = world / "work" / "garbage.toml"
    p.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    res = invoke("submit", "--dry-run", "--backend", "slurm", "--data", data_dir, "--profile", p)
    script = _check_submit(res)
    if script is not None:
        _assert_safe_script(script, None)


@SETTINGS
@given(p=st.binary(min_size=1, max_size=300))
def test_binary_profile_is_a_clean_error(world, data_dir, p):
    f = world / "work" / "binary.toml"
    f.write_bytes(p)
    res = invoke("submit", "--dry-run", "--backend", "slurm", "--data", data_dir, "--profile", f)
    script = _check_submit(res)
    if script is not None:
        _assert_safe_script(script, None)


# ------------------------------------------------------------------ --sbatch extras

NASTY = st.sampled_from(["\n", "\r", ";", "$(touch /tmp/pwned)", "`id`", " ", "\n#SBATCH --wrap=id", "&&",
                         "'", '"', "\\", "\0", "#", "=", "|", "\t", "\x0b", "\x85", "\u2028"])
sbatch_values = st.lists(st.one_of(NASTY, st.text(alphabet="abcxyz01:-_.,", min_size=1, max_size=5)),
                         max_size=6).map("".join)
sbatch_keys = st.one_of(st.sampled_from(["constraint", "comment", "exclusive", "nice", "setup", "wrap",
                                         "output", "job-name", "mail-user", "a b", "x\ny", "", "--begin",
                                         "#SBATCH", "$(id)"]),
                        st.text(max_size=10))


def _sbatch_lines(script: str) -> list[str]:
    return [l for l in script.splitlines() if l.startswith("#SBATCH")]


def _assert_safe_script(script: str, extra: dict[str, str] | None) -> None:
    lines = script.splitlines()
    # the script is submitit's: its header, then setup lines (none from --sbatch), then the command
    body = [l for l in lines if l.strip() and not l.startswith("#")]
    for l in body:
        assert not any(x in l for x in ("pwned", "--wrap", "rm -rf")), script
    for l in _sbatch_lines(script):
        assert "\r" not in l and "\0" not in l, script
    if extra:
        for k, v in extra.items():
            flag = f"--{k.strip().lstrip('-').replace('_', '-')}"
            mine = [l for l in _sbatch_lines(script) if l.startswith(f"#SBATCH {flag}")]
            assert len(mine) == 1, (k, v, script)
            assert v.strip() in mine[0], (k, v, mine[0])


@SETTINGS
@given(items=st.lists(st.tuples(sbatch_keys, sbatch_values), min_size=1, max_size=3))
@example(items=[("constraint", "avx\n#SBATCH --wrap=id")])
@example(items=[("comment", "x; touch /tmp/pwned")])
@example(items=[("setup", "touch /tmp/pwned")])
@example(items=[("comment", "a\rb")])
def test_sbatch_extras_cannot_inject(world, data_dir, items):
    args = []
    for k, v in items:
        args += ["--sbatch", f"{k}={v}"]
    res = invoke("submit", "--dry-run", "--backend", "slurm", "--data", data_dir, *args)
    script = _check_submit(res)
    if script is None:
        return
    extra = {}
    for k, v in items:
        extra[k.strip().lstrip("-").replace("-", "_")] = (k, v)
    _assert_safe_script(script, {k: v for k, v in dict(extra.values()).items()
                                 if v.strip() and v.strip().lower() not in ("false",)})
    n_sbatch = len(_sbatch_lines(script))
    assert n_sbatch == len(_sbatch_lines(_plain_script(data_dir))) + len(extra), script


_PLAIN: dict[str, str] = {}


def _plain_script(data_dir) -> str:
    if "s" not in _PLAIN:
        res = invoke("submit", "--dry-run", "--backend", "slurm", "--data", data_dir)
        assert res.exit_code == 0, text(res)
        _PLAIN["s"] = res.output
    return _PLAIN["s"]


# ------------------------------------------------------------------ sacct / squeue parsing

from crackops.slurm.sacct import SACCT_FIELDS, SQUEUE_FIELDS, index_jobs, parse_sacct, parse_squeue, select_job  # noqa: E402

SACCT_CAPTURES = sorted(p.read_text() for p in DATA.glob("*.txt")
                        if not p.name.startswith(("squeue", "README", "error")))
SQUEUE_CAPTURES = sorted(p.read_text() for p in DATA.glob("squeue*.txt"))


def _parse_ok(fn, text_):
    try:
        out = fn(text_)
    except CrackopsError:
        return None
    return out


def _use_sacct(jobs):
    """What the backend does with parsed rows: index, select, accounting, to_dict."""
    idx = index_jobs(jobs)
    for j in jobs:
        assert isinstance(j.job_id, str) and j.job_id
        select_job(idx, j.job_id, submitted_at=j.submit, job_name=j.name)
        j.accounting()
        j.to_dict()
        _ = (j.terminal, j.incomplete, j.finished, j.placeholder, j.max_rss_mb, j.total_cpu_s)


@st.composite
def mangled_capture(draw, captures, n_fields):
    text_ = draw(st.sampled_from(captures))
    lines = text_.splitlines()
    op = draw(st.sampled_from(["truncate", "extra_column", "unknown_state", "pipe_in_name", "newline_in_name",
                               "garbage_cell", "drop_cells"]))
    if op == "truncate":
        return text_[:draw(st.integers(0, len(text_)))]
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if not lines:
        return text_
    cols = lines[i].split("|")
    cell = draw(st.one_of(st.text(max_size=12), st.sampled_from(
        ["", "Unknown", "None", "9" * 5000, "²", "1-²", "-1", "99999999999-00:00:00", "1e400", "nan",
         "12_[0-3:²]", "5_[9999999999999999999-0]", "7_[²]", "4_[0-" + "9" * 5000 + "]", "1_[]",
         "0000-00-00T00:00:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00", "1.2.3", ".batch", "x.",
         "CANCELLED by", "FROBNICATED", "by by by", "1Gc", "5Tn", "1e5G", "NaNG"])))
    if op == "extra_column":
        cols.insert(draw(st.integers(0, len(cols))), cell)
    elif op == "unknown_state":
        if len(cols) > 2:
            cols[2 if n_fields == len(SACCT_FIELDS) else 1] = draw(st.sampled_from(
                ["FROBNICATED", "", "cancelled by 0", "RUNNING+", "REQUEUE_HOLD", "PENDING by"]))
    elif op == "pipe_in_name":
        k = 1 if n_fields == len(SACCT_FIELDS) else 3
        if len(cols) > k:
            cols[k] = cols[k] + "|" + draw(st.text(max_size=5)) + "|x"
    elif op == "newline_in_name":
        k = 1 if n_fields == len(SACCT_FIELDS) else 3
        if len(cols) > k:
            cols[k] = cols[k] + "\n" + draw(st.text(max_size=8))
    elif op == "garbage_cell":
        if cols:
            cols[draw(st.integers(0, len(cols) - 1))] = cell
    elif op == "drop_cells":
        cols = cols[:draw(st.integers(0, len(cols)))]
    lines[i] = "|".join(cols)
    return "\n".join(lines)


@settings(SETTINGS, max_examples=150)
@given(text_=mangled_capture(SACCT_CAPTURES, len(SACCT_FIELDS)))
def test_sacct_parser_survives_mangled_captures(text_):
    jobs = _parse_ok(parse_sacct, text_)
    if jobs is not None:
        _use_sacct(jobs)


@settings(SETTINGS, max_examples=100)
@given(text_=st.lists(st.sampled_from(list("0123456789_[]-%:,.|\n ²xK") + ["Unknown", "T", "COMPLETED", "by"]),
                      max_size=200).map("".join))
def test_sacct_parser_survives_random_text(text_):
    jobs = _parse_ok(parse_sacct, text_)
    if jobs is not None:
        _use_sacct(jobs)


@settings(SETTINGS, max_examples=100)
@given(cells=st.lists(st.one_of(st.text(max_size=12), st.sampled_from(
    ["23_[0-3%2]", "7_[²]", "12_[1:²]", "²", "1-²", "1²:00", "00:0²", "9" * 5000, "5_[0-" + "9" * 5000 + "]",
     "0001-01-01T00:00:00", "9999-12-31T23:59:59", "4Gc", "PENDING", "COMPLETED", "1.batch"])),
    min_size=len(SACCT_FIELDS), max_size=len(SACCT_FIELDS) + 2))
def test_sacct_parser_survives_random_rows(cells):
    text_ = "|".join(cells)
    jobs = _parse_ok(parse_sacct, text_)
    if jobs is not None:
        _use_sacct(jobs)


@settings(SETTINGS, max_examples=100)
@given(text_=mangled_capture(SQUEUE_CAPTURES, len(SQUEUE_FIELDS)))
def test_squeue_parser_survives_mangled_captures(text_):
    out = _parse_ok(parse_squeue, text_)
    if out is not None:
        for jid, j in out.items():
            assert jid == j.job_id
            _ = j.terminal


@settings(SETTINGS, max_examples=60)
@given(cells=st.lists(st.text(max_size=15), min_size=len(SQUEUE_FIELDS), max_size=len(SQUEUE_FIELDS) + 3))
def test_squeue_parser_survives_random_rows(cells):
    _parse_ok(parse_squeue, "|".join(cells))


# ------------------------------------------------------------------ hostile folders, numbers, settings

def _copy_data(data_dir, dst: Path) -> Path:
    import shutil

    shutil.copytree(data_dir, dst, symlinks=True)
    return dst


def _ok_or_one_line(res, codes=(EXIT_USAGE,)):
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit)), res.output
    if res.exit_code != 0:
        _one_line_error(res, codes)


@pytest.mark.parametrize("limit", ["99999999999999999999", str(2**63), str(2**63 - 1), "1"])
def test_status_limit_beyond_sqlite_is_all_runs(world, limit):
    res = invoke("status", "--limit", limit, "--no-refresh", "--json")
    assert res.exit_code == 0, text(res)
    assert [r["job_id"] for r in json.loads(res.stdout)] == ["1234"]


@pytest.mark.parametrize("limit", ["0", "-1", "-99999999999999999999"])
def test_status_limit_below_one_is_a_clean_error(world, limit):
    _one_line_error(invoke("status", "--limit", limit, "--no-refresh"))


def test_symlink_loops_in_a_data_folder_are_reported_not_raised(world, data_dir, tmp_path):
    d = _copy_data(data_dir, tmp_path / "loops")
    os.symlink("self.jpg", d / "positive" / "self.jpg")
    os.symlink("b", d / "negative" / "a")
    os.symlink("a", d / "negative" / "b")
    os.symlink("loop", d / "loop")
    res = invoke("data", "check", d)
    assert res.exit_code == 0 and "Traceback" not in res.output, text(res)
    assert " ".join(res.output.split()).count("symbolic link loop") == 3, res.output
    res = invoke("submit", "--data", d, "--dry-run", "--json")
    assert res.exit_code == 0, text(res)


def test_a_file_name_that_is_not_utf8_is_left_out_with_a_reason(world, data_dir, tmp_path):
    d = _copy_data(data_dir, tmp_path / "names")
    first = sorted((d / "positive").iterdir())[0]
    os.link(first, os.fsencode(d / "positive") + b"/caf\xe9.jpg")
    res = invoke("data", "check", d, "--json")
    assert res.exit_code == 0, text(res)
    assert "not valid UTF-8" in res.stdout
    res = invoke("submit", "--data", d, "--dry-run", "--json")   # the split's exact check reads every name
    assert res.exit_code == 0, text(res)


def test_environment_settings_are_read_when_used(world):
    import subprocess
    import sys

    from helpers import REPO

    env = {**os.environ, "CRACKOPS_REQUEUE_MARGIN_S": "abc", "CRACKOPS_CANCEL_GRACE_S": "abc",
           "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = subprocess.run([sys.executable, "-m", "crackops", "--help"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    from crackops.backends.local import cancel_grace_s
    from crackops.job import requeue_margin_s

    os.environ["CRACKOPS_REQUEUE_MARGIN_S"] = "abc"
    os.environ["CRACKOPS_CANCEL_GRACE_S"] = "-5"
    try:
        for read, name in ((requeue_margin_s, "CRACKOPS_REQUEUE_MARGIN_S"),
                           (cancel_grace_s, "CRACKOPS_CANCEL_GRACE_S")):
            with pytest.raises(CrackopsError) as e:
                read()
            assert e.value.message.startswith(name + "=") and "\n" not in str(e.value)
    finally:
        del os.environ["CRACKOPS_REQUEUE_MARGIN_S"], os.environ["CRACKOPS_CANCEL_GRACE_S"]


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**64), "-99999999999999999999"])
def test_seeds_numpy_cannot_take_are_refused_at_submit(world, data_dir, seed):
    res = invoke("submit", "--data", data_dir, "--seed", seed, "--dry-run")
    _one_line_error(res)
    assert "--seed" in res.output


def test_a_sweep_whose_seeds_cross_2_32_is_refused_at_plan_time(world, data_dir):
    res = invoke("sweep", "--data", data_dir, "--grid", "dropout=0.2,0.3", "--seed", str(2**32 - 2),
                 "--seeds", "3", "--dry-run")
    _one_line_error(res)
    assert "4294967296" in res.output
    res = invoke("sweep", "--data", data_dir, "--grid", "dropout=0.2,0.3", "--seed", str(2**32 - 3),
                 "--seeds", "3", "--dry-run")
    assert res.exit_code == 0, text(res)


def test_a_label_conflict_is_refused_by_submit_as_data_check_reports_it(world, data_dir, tmp_path):
    import shutil

    d = _copy_data(data_dir, tmp_path / "conflict")
    shutil.copy(sorted((d / "positive").iterdir())[0], d / "negative" / "twin.png")
    res = invoke("data", "check", d)
    assert res.exit_code == 6 and "appear in both classes" in " ".join(res.output.split()), text(res)
    for args in (["submit", "--dry-run"], ["submit"], ["sweep", "--grid", "dropout=0.2,0.3", "--dry-run"],
                 ["sweep", "--grid", "dropout=0.2,0.3"]):
        res = invoke(args[0], "--data", d, *args[1:])
        _one_line_error(res)
        assert "appear in both classes" in res.output and "crackops data check" in res.output, (args, res.output)
    assert not (Path(os.environ["CRACKOPS_OUT"])).exists() or not any(Path(os.environ["CRACKOPS_OUT"]).iterdir()) \
        or [p.name for p in Path(os.environ["CRACKOPS_OUT"]).iterdir()] == ["1234"]


def test_a_decompression_bomb_is_called_one(world, data_dir, tmp_path):
    from PIL import Image

    d = _copy_data(data_dir, tmp_path / "bomb")
    Image.new("1", (20000, 20000)).save(d / "positive" / "huge.png")
    res = invoke("data", "check", d, "--json")
    assert res.exit_code == 0, text(res)
    rep = json.loads(res.stdout)
    bomb = [f for f in rep["non_images"] if f["path"].endswith("huge.png")]
    assert bomb and bomb[0]["reason"].startswith("decompression bomb: 400,000,000 pixels"), rep
    assert not any(f["path"].endswith("huge.png") for f in rep["unreadable"])
    assert any("decompression bomb" in p["message"] for p in rep["problems"]), rep["problems"]


def test_a_third_class_folder_is_refused_by_data_check_and_submit(world, data_dir, tmp_path):
    import shutil

    d = _copy_data(data_dir, tmp_path / "three")
    shutil.copytree(d / "positive", d / "maybe")
    (d / ".hidden").mkdir()
    res = invoke("data", "check", d)
    assert res.exit_code == 6 and "maybe/" in res.output and "two classes" in " ".join(res.output.split()), text(res)
    res = invoke("submit", "--data", d, "--dry-run")
    _one_line_error(res)
    assert "maybe/" in res.output and ".hidden" not in res.output


@pytest.mark.parametrize("message, flag", [
    ("Batch job submission failed: More processors requested than permitted", "--cpus"),
    ("Batch job submission failed: Requested node configuration is not available", "--cpus"),
    ("CPU count per node can not be satisfied", "--cpus"),
    ("Memory required by task is not available", "--mem"),
    ("invalid partition specified: gpu; Batch job submission failed: Invalid partition name specified", "--partition"),
    ("Batch job submission failed: Invalid feature specification", "--sbatch"),
    ("Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)", "--qos"),
])
def test_sbatch_refusals_of_the_request_point_at_the_request(message, flag):
    from crackops.backends.slurm import sbatch_hint

    hint = sbatch_hint(message)
    assert flag in hint and "not about the request" not in hint, hint


@pytest.mark.slurm
def test_too_many_cpus_on_the_real_cluster_points_at_cpus(world, data_dir, slurm_cluster):
    res = invoke("submit", "--backend", "slurm", "--data", data_dir, "--cpus", "33", "--mem", "1G", "--time", "5")
    _one_line_error(res, codes=(5,))
    assert "--cpus" in res.output and "not about the request" not in res.output, res.output
