"""Faults injected on purpose against a real Slurm: what the user saw, and how many runs were lost.

Each fault runs in a throw-away crackops home with tiny jobs (a few seconds of sleep, then the
files a finished training leaves), through the real CLI (``python -m crackops``) where a user
would type a command:

- the controller (slurmctld) stopped while a job runs, started again after the job's own end;
- slurmctld and slurmdbd both stopped while a job runs;
- slurmdbd stopped for the jobs' whole life (one job that completes, one that fails);
- the submitting process SIGKILLed right after sbatch accepted the job (an ``sbatch`` on PATH that
  runs the real one, then kills its caller), before the registry write;
- the job SIGKILLed inside its manifest's atomic write;
- the registry copied while its WAL was being written (the copy's WAL cut at many offsets);
- concurrent writers (``--writers N``: N processes submitting local runs while N run ``status``
  or ``compare``);
- ``--waits N`` ``crackops wait`` processes at once on one job, their sacct calls counted against
  one ``wait`` alone (the polite-scheduler limit);
- the out folder on a full filesystem, and on a read-only one (1 MB tmpfs mounts; needs root),
  for a local and a Slurm submit;
- the registry deleted, overwritten with garbage, or truncated after two runs ended, then
  ``crackops import`` of the out folder;
- the crackops process 30 minutes fast (clock skew injected in crackops, not in the cluster);
- slurmctld SIGKILLed in the middle of a sweep and started again;
- a running job's process frozen (SIGSTOP), as a crashed node looks while Slurm says RUNNING.

"runs lost" counts jobs the scheduler accepted that the registry does not hold, or holds with a
final state other than sacct's (once accounting answers), or holds as COMPLETED with metrics
while their artifacts are incomplete. It must be 0.

Needs a Slurm whose daemons ``scripts/local-slurm.sh`` manages (it acts only on the cluster
``SLURM_CONF`` names) and root (to stop and start them). The cluster is left up.

    python benchmarks/faults.py [--writers 8] [--waits 8] [--only ctld,dbd,...] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "local-slurm.sh"
SRC = REPO / "src"


# ---------------------------------------------------------------- the jobs (pickled by value: __main__)

def sleep_then_artifacts(config):
    """Sleeps CRACKOPS_TEST_SLEEP seconds, then writes every file of a finished training."""
    from crackops.job import _run

    def body(cfg, out_dir):
        time.sleep(float(os.environ.get("CRACKOPS_TEST_SLEEP", "8")))
        write_artifacts(out_dir)

    return _run(config, body)


def fails(config):
    from crackops.job import _run

    def body(cfg, out_dir):
        raise ValueError("synthetic failure")

    return _run(config, body)


def killed_in_manifest(config):
    """Writes the seed's files, then is SIGKILLed between the manifest's temporary file and its rename."""
    import signal

    from crackops import contract
    from crackops.job import _run

    def body(cfg, out_dir):
        write_artifacts(out_dir, manifest=False)
        real = os.replace

        def die(src, dst):
            if Path(dst).name == contract.MANIFEST:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)

        os.replace = die
        contract.write_json_atomic(out_dir / contract.MANIFEST, {"status": "completed", "metrics": {}})

    return _run(config, body)


def write_artifacts(out_dir, manifest=True):
    """Small but valid files under the run contract's names (what ``crackops collect`` checks)."""
    import h5py
    from PIL import Image

    from crackops import contract

    out_dir = Path(out_dir)
    for name in contract.SEED_ARTIFACTS:
        if name.endswith(".png"):
            Image.new("RGB", (64, 48), (200, 60, 60)).save(out_dir / name)
    (out_dir / "metrics.txt").write_text("[test]\naccuracy 0.9000\n")
    with h5py.File(out_dir / contract.MODEL_FILE, "w") as h:
        h.attrs["model_config"] = "{}"
    # the 10 test images the manifest's metrics count (tp 5, fn 0, tn 4, fp 1): collect checks them
    rows = [f"/x/p{i}.jpg,1,0.900000" for i in range(5)] + [f"/x/n{i}.jpg,0,0.100000" for i in range(4)]
    (out_dir / contract.PREDICTIONS).write_text("path,label,prob_crack\n" + "\n".join(rows + ["/x/n4.jpg,0,0.700000"]) + "\n")
    if manifest:
        split = {"n": 10, "accuracy": 0.9, "precision": 5 / 6, "recall": 1.0, "f1": 10 / 11, "roc_auc": 0.95,
                 "tn": 4, "fp": 1, "fn": 0, "tp": 5, "errors": 1, "threshold": 0.5}   # as the counts say
        contract.write_json_atomic(out_dir / contract.MANIFEST, {
            "schema": contract.MANIFEST_SCHEMA, "job_id": out_dir.name, "status": "completed", "config": {},
            "metrics": {"train": split, "val": split, "test": split}, "history": {"loss": [0.5]},
            "epochs_run": 1, "best_epoch": 1, "started_at": 0, "ended_at": 1, "wall_time_s": 1.0,
            "artifacts": list(contract.SEED_ARTIFACTS) + [contract.PREDICTIONS]})


# ---------------------------------------------------------------- helpers

def local_slurm(action: str) -> None:
    p = subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        raise SystemExit(f"local-slurm.sh {action} failed ({p.returncode}): {p.stderr.strip()[-500:]}")


def crackops(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
         "COLUMNS": "200", **(env or {})}
    p = subprocess.run([sys.executable, "-m", "crackops", *args], capture_output=True, text=True, env=e, timeout=300)
    return p.returncode, p.stdout, p.stderr


def saw(text: str, *needles: str) -> str:
    """The first line of ``text`` holding one of ``needles`` (what the user would read), with the
    throw-away folder shortened."""
    for line in text.splitlines():
        if any(n in line for n in needles):
            return short(" ".join(line.split()))
    return "(nothing)"


def short(text: str) -> str:
    base = os.environ.get("CRACKOPS_FAULTS_BASE")
    return text.replace(base, "…") if base else text


def fresh_home(base: Path, name: str) -> None:
    for k, sub in (("CRACKOPS_HOME", "home"), ("CRACKOPS_OUT", "out"), ("CRACKOPS_LOGS", "logs")):
        os.environ[k] = str(base / name / sub)


def sacct_state(job_id: str) -> str | None:
    p = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "--format=State", "--starttime=now-1days"],
                       capture_output=True, text=True, timeout=60)
    rows = [l.split()[0] for l in p.stdout.splitlines() if l.strip()]
    return rows[-1] if p.returncode == 0 and rows else None


def wait_until(predicate, timeout: float = 180.0, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(poll)
    return None


def lost(accepted: list[str]) -> tuple[int, list[str]]:
    """Jobs Slurm accepted that the registry lost, or holds in another final state than sacct's, or
    holds as COMPLETED with metrics without a finished manifest."""
    from crackops import artifacts
    from crackops.registry import Registry

    runs = {r.job_id: r for r in Registry().list()}
    bad = []
    for j in accepted:
        r = runs.get(j)
        if r is None:
            bad.append(f"{j}: not in the registry")
            continue
        truth = wait_until(lambda: (s := sacct_state(j)) not in (None, "PENDING", "RUNNING") and s, timeout=120)
        if r.state != truth and not (r.state == "INCOMPLETE" and truth == "COMPLETED"):
            bad.append(f"{j}: registry {r.state}, sacct {truth}")
        if r.state == "COMPLETED" and r.metrics and artifacts.manifest_problem(r.out_dir):
            bad.append(f"{j}: COMPLETED with metrics but {artifacts.manifest_problem(r.out_dir)}")
    return len(bad), bad


def submit(fn, name: str):
    from crackops import api
    from crackops.config import Resources, TrainConfig

    return api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"), backend="slurm",
                      fn=fn, check_data=False, name=name)


def finish(job_ids: list[str]) -> None:
    from crackops import api

    for _ in api.wait(job_ids, poll_s=1, timeout_s=300):
        pass


# ---------------------------------------------------------------- the faults

def running_job(name: str):
    """A job that sleeps 8 s then writes a finished training's files, once Slurm says RUNNING."""
    from crackops import api

    os.environ["CRACKOPS_TEST_SLEEP"] = "8"
    run = submit(sleep_then_artifacts, name)
    wait_until(lambda: api.status([run.job_id]).runs[0].state == "RUNNING", timeout=120)
    return run


def controller_restart() -> dict:
    from crackops import api

    run = running_job("ctld-restart")
    local_slurm("stop-ctld")
    try:
        rc, _out, err = crackops("status")
        try:
            submit(sleep_then_artifacts, "submitted-while-down")
            refused = "accepted?!"
        except Exception as e:  # noqa: BLE001 - shown as the user would see it
            refused = f"{type(e).__name__} (exit {getattr(e, 'exit_code', '?')}): {e}"
        # the job ends on its node while the controller is away
        wait_until(lambda: "completed" in (Path(run.out_dir) / "status.json").read_text(), timeout=120)
    finally:
        local_slurm("start-ctld")
    finish([run.job_id])
    crc, _cout, _cerr = crackops("collect", run.job_id)
    n, why = lost([run.job_id])
    final = api.get_run(run.job_id)
    return {"fault": "slurmctld stopped while the job runs, started after the job's end",
            "affected": 1, "lost": n, "why": why, "code": rc,
            "saw": saw(err, "error:") + f"; after the restart: {final.state}, collect exit {crc}. "
                   f"A submit meanwhile: {short(refused)}"}


def both_down() -> dict:
    from crackops import api

    run = running_job("both-down")
    local_slurm("stop-dbd")
    try:
        local_slurm("stop-ctld")
        try:
            t = time.monotonic()
            rc, _out, err = crackops("status")
            took = time.monotonic() - t
        finally:
            local_slurm("start-ctld")
    finally:
        local_slurm("start-dbd")
    finish([run.job_id])
    n, why = lost([run.job_id])
    return {"fault": "slurmctld and slurmdbd both stopped while the job runs", "affected": 1, "lost": n,
            "why": why, "code": rc,
            "saw": saw(err, "error:") + f" (status took {took:.1f} s, states from the artifacts); "
                   f"after the restart: {api.get_run(run.job_id).state}"}


def dbd_down() -> dict:
    from crackops import api

    os.environ["CRACKOPS_TEST_SLEEP"] = "3"
    local_slurm("stop-dbd")
    try:
        runs = [submit(sleep_then_artifacts, "no-dbd-ok"), submit(fails, "no-dbd-fails")]
        rc, _out, err = crackops("status")
        wait_until(lambda: all(r.terminal for r in api.status().runs), timeout=180)
        states = [api.get_run(r.job_id).state for r in runs]
    finally:
        local_slurm("start-dbd")
    n, why = lost([r.job_id for r in runs])
    return {"fault": "slurmdbd stopped for the jobs' whole life (one completes, one fails)",
            "affected": 2, "lost": n, "why": why, "code": rc,
            "saw": saw(err, "sacct failed") + f"; ended {'/'.join(states)} from squeue+artifacts, as sacct says later"}


SUBMITTER = """
import sys
sys.path.insert(0, {bench!r})
import cloudpickle, faults
cloudpickle.register_pickle_by_value(faults)
from crackops import api
from crackops.config import Resources, TrainConfig
api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"), backend="slurm",
           fn=faults.sleep_then_artifacts, check_data=False, name="killed-submitter")
print("RECORDED")
"""


def submitter_killed(base: Path) -> dict:
    from crackops.registry import Registry

    real = shutil.which("sbatch")
    shim, log = base / "shim", base / "sbatch.log"
    shim.mkdir(exist_ok=True)
    (shim / "sbatch").write_text(f'#!/bin/sh\nout=$("{real}" "$@"); rc=$?\necho "$out" >> "{log}"\n'
                                 '[ $rc -eq 0 ] && kill -9 $PPID\necho "$out"; exit $rc\n')
    (shim / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "CRACKOPS_TEST_SLEEP": "3",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", SUBMITTER.format(bench=str(Path(__file__).resolve().parent))],
                       env=env, capture_output=True, text=True, timeout=300)
    job_id = log.read_text().split()[-1] if log.exists() else "?"
    before = len(Registry().list())
    rc, _out, err = crackops("status")
    finish([job_id])
    n, why = lost([job_id])
    return {"fault": f"submitting process SIGKILLed after sbatch accepted job (exit {p.returncode}), "
                     f"before the registry write ({before} runs recorded)",
            "affected": 1, "lost": n, "why": why, "code": rc,
            "saw": saw(err, "adopted") + f"; then {Registry().get(job_id).state}"}


def killed_writing_manifest() -> dict:
    from crackops.registry import Registry

    run = submit(killed_in_manifest, "killed-in-manifest")
    finish([run.job_id])
    rc, _out, err = crackops("collect", run.job_id)
    r = Registry().get(run.job_id)
    n, why = lost([run.job_id])
    return {"fault": "job SIGKILLed inside its manifest's write (seed files written)",
            "affected": 1, "lost": n, "why": why, "code": rc,
            "saw": short(f"status: {r.state} ({r.reason}); collect: ") + saw(err, "error:")}


def registry_copied(base: Path) -> dict:
    from crackops.registry import Registry, Run

    src = base / "live" / "registry.db"
    reg = Registry(src)
    reg._conn.execute("PRAGMA wal_autocheckpoint = 0")
    n = 50
    for i in range(n):
        reg.add(Run(job_id=str(i + 1), backend="slurm", state="COMPLETED", config={"seed": i}, resources={},
                    submitted_at=1000.0 + i, out_dir="/x", name=f"r{i + 1}"))
    data = Path(str(src) + "-wal").read_bytes()
    opened, bad, kept = 0, [], []
    for k in range(25):
        cut = len(data) * k // 24
        d = base / f"copy-{k}"
        d.mkdir()
        shutil.copyfile(src, d / "registry.db")
        (d / "registry.db-wal").write_bytes(data[:cut])
        try:
            copy = Registry(d / "registry.db")
            ok = copy._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            ids = [r.job_id for r in copy.list()]
            copy.close()
        except Exception as e:  # noqa: BLE001 - counted, shown
            bad.append(f"cut at {cut}: {e}")
            continue
        opened += 1
        if not ok or ids != [str(i + 1) for i in range(len(ids))]:
            bad.append(f"cut at {cut}: integrity {ok}, ids {ids[:5]}...")
        kept.append(len(ids))
    return {"fault": "registry.db + its WAL copied mid-write (WAL cut at 25 offsets)",
            "affected": n, "lost": 0 if not bad and kept[-1] == n else len(bad) or n - kept[-1], "why": bad,
            "code": 0 if not bad else 1,
            "saw": f"{opened}/25 copies open, integrity ok, each a prefix of the committed runs "
                   f"({min(kept)}..{max(kept)} of {n})"}


def registry_gone(kind: str) -> dict:
    """Two Slurm runs end (one completes, one fails) and are collected; then the registry is deleted,
    or overwritten with garbage, or truncated to a third. What ``status`` and ``compare`` say, then
    ``crackops import`` of the out folder (after moving a damaged file away): the runs come back,
    in sacct's states, the completed one with the same test accuracy."""
    import hashlib

    from crackops.registry import Registry

    os.environ["CRACKOPS_TEST_SLEEP"] = "2"
    runs = [submit(sleep_then_artifacts, f"reg-{kind}-ok"), submit(fails, f"reg-{kind}-fails")]
    ids = [r.job_id for r in runs]
    finish(ids)
    crackops("collect", ids[0])
    before = {r.job_id: (r.state, (r.metrics or {}).get("test_accuracy")) for r in Registry().list()}
    db = Path(os.environ["CRACKOPS_HOME"]) / "registry.db"
    reg = Registry()
    reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    reg.close()
    if kind == "deleted":
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            p.unlink(missing_ok=True)
    elif kind == "garbage":
        db.write_bytes(os.urandom(db.stat().st_size))
    else:
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    digest = hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None
    rc, out, err = crackops("status")
    crc, _cout, cerr = crackops("compare")
    untouched = digest == (hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else None)
    if kind != "deleted":
        db.rename(f"{db}.damaged")
    irc, iout, ierr = crackops("import", os.environ["CRACKOPS_OUT"])
    again = crackops("import", os.environ["CRACKOPS_OUT"])[2]
    n, why = lost(ids)
    after = {r.job_id: (r.state, (r.metrics or {}).get("test_accuracy")) for r in Registry().list()}
    if after != before:
        n, why = max(n, 1), why + [f"before {before}, after import {after}"]
    if kind != "deleted" and not untouched:
        n, why = max(n, 1), why + ["the damaged registry was written to"]
    said = saw(err + out, "error:", "no runs yet")
    hint = saw(err, "crackops import") if kind == "deleted" else ""
    return {"fault": {"deleted": "registry deleted after 2 runs ended",
                      "garbage": "registry overwritten with random bytes after 2 runs ended",
                      "truncated": "registry truncated to a third after 2 runs ended"}[kind],
            "affected": 2, "lost": n, "why": why, "code": rc,
            "saw": f"`status` (exit {rc}): {said}" + (f" / {hint}" if hint else "")
                   + f"; `compare` exit {crc}" + ("" if kind == "deleted" else
                                                  f"; file {'unchanged' if untouched else 'CHANGED'}") + "; `crackops import "
                   f"out`: {saw(ierr, 'imported,')} (exit {irc}), again: {saw(again, 'imported,')}; "
                   + ", ".join(f"{j} {s}" + (f" {a:.4f}" if a is not None else "") for j, (s, a) in sorted(after.items()))}


WRITER = """
import sys, time
sys.path.insert(0, {bench!r})
from crackops import api
from crackops.config import Resources, TrainConfig
import faults
ok = 0
for i in range({each}):
    api.submit(TrainConfig(data_dir="unused"), Resources(cpus=1, mem="256M", time="10"), backend="local",
               fn=faults.trivial, check_data=False, name=f"w{{sys.argv[1]}}-{{i}}")
    ok += 1
print("SUBMITTED", ok)
"""


def trivial(config):
    from crackops.job import _run

    return _run(config, lambda cfg, out_dir: None)


def concurrent_writers(n: int) -> dict:
    from crackops.registry import Registry

    each = 3
    bench = str(Path(__file__).resolve().parent)       # the local jobs import faults.trivial
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), bench, os.environ.get("PYTHONPATH", "")])}
    code = WRITER.format(bench=str(Path(__file__).resolve().parent), each=each)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    readers = [subprocess.Popen([sys.executable, "-m", "crackops", cmd, "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for i in range(n) for cmd in (("status",) if i % 2 == 0 else ("compare",))]
    outs = [p.communicate(timeout=600) for p in procs + readers]
    codes = [p.returncode for p in procs + readers]
    errs = " ".join(e for _o, e in outs)
    submitted = sum(int(o.split()[-1]) for o, _e in outs[:n] if o.startswith("SUBMITTED"))
    rows = Registry().list()
    names = [r.name for r in rows]
    return {"fault": f"{n} processes submitting {each} local runs each while {n} run status/compare",
            "affected": n * each, "lost": n * each - len(set(names)) + (len(names) - len(set(names))),
            "why": [], "code": max(codes),
            "saw": f"{submitted} submitted, {len(rows)} rows, 'database is locked' shown "
                   f"{errs.count('database is locked')} times, tracebacks {errs.count('Traceback')}"}


def many_waits(base: Path, n: int = 8) -> dict:
    """``n`` ``crackops wait`` at once on one job, beside one ``wait`` alone on a twin job (its own
    home, so its own sacct budget); a PATH shim counts each side's sacct calls."""
    real = shutil.which("sacct")
    os.environ["CRACKOPS_TEST_SLEEP"] = "40"       # outlasts the start of 9 CLI processes on a busy machine
    sides = {}
    for side in ("many", "one"):
        fresh_home(base, side)
        shim, log = base / side / "shim", base / side / "sacct.log"
        shim.mkdir(parents=True)
        (shim / "sacct").write_text(f'#!/bin/sh\necho "$(date +%s.%N)" >> "{log}"\nexec "{real}" "$@"\n')
        (shim / "sacct").chmod(0o755)
        run = submit(sleep_then_artifacts, f"waits-{side}")
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "CRACKOPS_SACCT_INTERVAL": "5",
               "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        sides[side] = (run, log, env)
    t0 = time.time()
    procs = {side: [subprocess.Popen([sys.executable, "-m", "crackops", "wait", run.job_id, "--timeout", "300"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for _ in range(n if side == "many" else 1)]
             for side, (run, log, env) in sides.items()}
    outs = {side: [p.communicate(timeout=400) for p in ps] for side, ps in procs.items()}
    elapsed = time.time() - t0
    calls = {side: len(log.read_text().split()) if log.exists() else 0 for side, (_r, log, _e) in sides.items()}
    codes = [p.returncode for ps in procs.values() for p in ps]
    errs = " ".join(e for o in outs.values() for _out, e in o)
    fresh_home(base, "many")
    n_lost, why = lost([sides["many"][0].job_id])
    return {"fault": f"{n} `crackops wait` at once on one job (sacct interval 5 s)", "affected": 1, "lost": n_lost,
            "why": why, "code": max(codes),
            "saw": f"{calls['many']} sacct calls for the {n} waits, {calls['one']} for one wait alone, in {elapsed:.0f} s; "
                   f"'database is locked' {errs.count('database is locked')} times, tracebacks {errs.count('Traceback')}"}


def disk_faults(base: Path) -> list[dict]:
    """``crackops submit`` with its out folder on a full and on a read-only filesystem (a 1 MB
    tmpfs each), on both backends: refused at submit, nothing recorded, nothing queued."""
    from crackops.registry import Registry

    data = base / "data"
    rc, _o, err = crackops("data", "synth", str(data), "--per-class", "20", "--size", "64")
    if rc != 0:
        raise SystemExit(f"data synth failed: {err.strip()[-300:]}")
    rows = []
    for fault, opts in (("full", "size=1m"), ("read-only", "size=1m,ro")):
        mnt = base / fault
        mnt.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"# disk: cannot mount a tmpfs ({p.stderr.strip()}): skipped", file=sys.stderr)
            return rows
        try:
            if fault == "full":
                with open(mnt / "filler", "wb") as f:
                    try:
                        while True:
                            f.write(b"x" * 65536)
                            f.flush()
                    except OSError:
                        pass
            for backend in ("local", "slurm"):
                fresh_home(base, f"disk-{fault}-{backend}")
                queued = len(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())
                rc, _o, err = crackops("submit", "--data", str(data), "--backend", backend, "--out", str(mnt / "out"),
                                       "--epochs", "1", "--cpus", "1", "--mem", "1G")
                recorded = len(Registry().list())
                queued_after = len(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())
                rows.append({"fault": f"out folder on a {fault} filesystem, `submit --backend {backend}`",
                             "affected": 1, "lost": 0, "why": [], "code": rc,
                             "saw": saw(err, "error:") + f" ({recorded} runs recorded, "
                                    f"{queued_after - queued} jobs queued)"})
                if rc == 0 or recorded or queued_after != queued:
                    rows[-1]["lost"] = 1
                    rows[-1]["why"] = ["submitted onto a filesystem it cannot write"]
        finally:
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    return rows


def clock_skew() -> dict:
    """This crackops process 30 minutes fast (its ``time.time``): a run that completes and one that
    fails, submitted and waited on; then ``crackops status`` from a process with a true clock."""
    from crackops import api
    from crackops.registry import Registry

    os.environ["CRACKOPS_TEST_SLEEP"] = "3"
    real = time.time
    time.time = lambda: real() + 1800.0
    try:
        runs = [submit(sleep_then_artifacts, "skewed-ok"), submit(fails, "skewed-fails")]
        reports = list(api.wait([r.job_id for r in runs], poll_s=1, timeout_s=300))
        warned = [w for rep in reports for w in rep.warnings]
    finally:
        time.time = real
    rc, _out, err = crackops("status")
    row = Registry().scheduler_call("sacct") or {}
    held = max(0.0, float(row.get("next_at") or 0) - real())
    n, why = lost([r.job_id for r in runs])
    states = [api.get_run(r.job_id).state for r in runs]
    acct = sum(1 for r in runs if api.get_run(r.job_id).accounting)
    bad = [w for w in warned if "start time" in w.lower() or "asks again" in w]
    return {"fault": "the crackops process 30 minutes fast (submit, wait), then status with a true clock",
            "affected": 2, "lost": n, "why": why, "code": rc,
            "saw": f"ended {'/'.join(states)} (efficiency recorded for {acct} of 2); sacct warnings {len(bad)}; "
                   f"the next process waited {held:.0f} s for sacct"}


def ctld_killed_mid_sweep() -> dict:
    """slurmctld SIGKILLed while a 4-run sweep (2 at once) runs, started again; then ``crackops wait
    --sweep`` (bounded) and ``status --sweep`` as the user runs them. A controller killed without
    saving its state can hand job ids out again and drain the node ("Duplicate jobid"); the row says
    what crackops showed, and the node is resumed after it. Lost: a member the registry no longer
    holds, or holds COMPLETED without a finished manifest."""
    import signal

    from crackops import api, artifacts
    from crackops.config import Resources, TrainConfig

    os.environ["CRACKOPS_TEST_SLEEP"] = "6"
    h = api.sweep(TrainConfig(data_dir="unused"), {"dropout": [0.1, 0.2, 0.3, 0.4]}, seeds=1,
                  resources=Resources(cpus=1, mem="256M", time="10"), backend="slurm", name="ctld-killed",
                  max_parallel=2, fn=sleep_then_artifacts, check_data=False)
    wait_until(lambda: h.status().counts["running"] >= 1, timeout=120)
    pidfile = Path(os.environ.get("CRACKOPS_SLURM_DIR", "/tmp/crackops-slurm")) / "run" / "slurmctld.pid"
    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
    time.sleep(3)
    local_slurm("start-ctld")
    env = {"CRACKOPS_HEARTBEAT_STALE_S": "30"}
    rc, _out, err = crackops("wait", "--sweep", "ctld-killed", "--timeout", "90", "--poll", "2", env=env)
    _src, _sout, serr = crackops("status", "--sweep", "ctld-killed", env=env)
    drained = subprocess.run(["sinfo", "-h", "-R", "-o", "%E"], capture_output=True, text=True, timeout=60).stdout.strip()
    crackops("cancel", "--sweep", "ctld-killed")
    if drained:
        subprocess.run(["scontrol", "update", "nodename=ALL", "state=resume"], capture_output=True, timeout=60)
    runs = h.runs
    bad = [f"{r.shown_id}: COMPLETED without a finished manifest" for r in runs
           if r.state == "COMPLETED" and artifacts.manifest_problem(r.out_dir)]
    n = (4 - len(runs)) + len(bad)
    said = saw(err + serr, "no sign of life", "will not start by itself", "unfinished", "did not complete")
    return {"fault": "slurmctld SIGKILLed mid-sweep (4 runs, 2 at once) and started again",
            "affected": 4, "lost": n, "why": bad, "code": rc,
            "saw": f"wait --sweep (90 s) exit {rc}: {said}; node drained: {drained or 'no'}; "
                   f"the 4 runs stay recorded ({', '.join(sorted({r.state for r in runs}))} after cancel)"}


def node_silent() -> dict:
    """A running job whose process is frozen (SIGSTOP): what a crashed node looks like from outside
    while Slurm still says RUNNING. The job's heartbeat stops; status says so; then it goes on."""
    import json
    import signal

    from crackops import api

    os.environ.update(CRACKOPS_HEARTBEAT_S="1", CRACKOPS_HEARTBEAT_STALE_S="6", CRACKOPS_TEST_SLEEP="20")
    run = submit(sleep_then_artifacts, "silent-node")
    wait_until(lambda: api.status([run.job_id]).runs[0].state == "RUNNING", timeout=120)
    pid = json.loads((Path(run.out_dir) / "status.json").read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        crackops("status", run.job_id)
        time.sleep(9)
        rc, _out, err = crackops("status")
    finally:
        os.kill(pid, signal.SIGCONT)
    finish([run.job_id])
    n, why = lost([run.job_id])
    return {"fault": "a running job's process frozen (SIGSTOP), as a crashed node looks while Slurm says RUNNING",
            "affected": 1, "lost": n, "why": why, "code": rc,
            "saw": saw(err, "no sign of life") + f"; resumed: {api.get_run(run.job_id).state}"}


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8, help="concurrent writers and readers (0: skip)")
    ap.add_argument("--waits", type=int, default=8, help="concurrent `crackops wait`s on one job (0: skip)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--only", help="some faults: ctld,both,dbd,submitter,manifest,copy,writers,waits,disk,"
                                   "registry-deleted,registry-garbage,registry-truncated,skew,ctld-kill,silent")
    args = ap.parse_args(argv)
    os.environ.setdefault("CRACKOPS_SACCT_INTERVAL", "0")      # every status asks: the fault shows at once
    sys.path.insert(0, str(SRC))
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    base = Path(tempfile.mkdtemp(prefix="crackops-faults-"))
    os.environ["CRACKOPS_FAULTS_BASE"] = str(base)
    rows = []
    t0 = time.time()
    steps = [("ctld", controller_restart), ("both", both_down), ("dbd", dbd_down), ("submitter", lambda: submitter_killed(base / "submitter")),
             ("manifest", killed_writing_manifest), ("copy", lambda: registry_copied(base / "copy"))]
    if args.writers:
        steps.append(("writers", lambda: concurrent_writers(args.writers)))
    if args.waits:
        steps.append(("waits", lambda: many_waits(base / "waits", args.waits)))
    steps.append(("disk", lambda: disk_faults(base / "disk")))
    steps += [(f"registry-{k}", lambda k=k: registry_gone(k)) for k in ("deleted", "garbage", "truncated")]
    steps += [("skew", clock_skew), ("ctld-kill", ctld_killed_mid_sweep), ("silent", node_silent)]
    if args.only:
        steps = [s for s in steps if s[0] in args.only.split(",")]
    for name, step in steps:
        fresh_home(base, name)
        (base / name).mkdir(parents=True, exist_ok=True)
        t = time.time()
        got = step()
        for row in got if isinstance(got, list) else [got]:
            row["s"] = time.time() - t
            rows.append(row)
            print(f"# {name}: {row['s']:.0f} s, lost {row['lost']} {row['why'] or ''}", file=sys.stderr, flush=True)
    if args.markdown:
        print("| fault injected | runs affected | runs lost | what the user saw | exit code |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['fault']} | {r['affected']} | {r['lost']} | {r['saw'].replace('|', '/')} | {r['code']} |")
    else:
        for r in rows:
            print(f"{r['fault']}\n    affected {r['affected']}, lost {r['lost']}, exit {r['code']}: {r['saw']}")
    print(f"\n{len(rows)} faults in {time.time() - t0:.0f} s, {sum(r['lost'] for r in rows)} runs lost "
          f"(files in {base})", file=sys.stderr)
    return 1 if any(r["lost"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
