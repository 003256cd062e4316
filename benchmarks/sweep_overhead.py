"""What a sweep costs to submit and to watch, against the same runs as separate submits.

For each N (default 1, 100, 1000) this submits N trivial runs on Slurm as one sweep
(``crackops.api.sweep``) and as N separate ``crackops.api.submit`` calls, every job held
(``sbatch --hold``) so nothing runs, and measures

- submit seconds and sbatch calls (a PATH shim counts every sbatch / sacct process);
- one ``crackops status --sweep NAME --json`` in a new process: seconds, CPU seconds (the process
  and its sacct child: what a loaded login node does not distort) and sacct calls;
- one ``crackops status --json`` over the N separate runs: seconds and sacct calls.

Separate submits above ``--separate-max`` runs are measured on that many and scaled (marked
"~"). Every job is cancelled at the end. Needs scripts/local-slurm.sh start.

    python benchmarks/sweep_overhead.py [--sizes 1,100,1000] [--max-array-size N] [--separate-max 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def trivial(config):
    from crackops.job import _run

    return _run(config, lambda cfg, out_dir: None)


def shim(bin_dir: Path, log: Path, tool: str) -> None:
    real = shutil.which(tool)
    p = bin_dir / tool
    p.write_text(f"#!/bin/sh\necho {tool} >> {log}\nexec {real} \"$@\"\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def count(log: Path, tool: str) -> int:
    try:
        return sum(1 for l in log.read_text().splitlines() if l.strip() == tool)
    except OSError:
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,100,1000")
    ap.add_argument("--max-array-size", type=int, default=None, help="CRACKOPS_MAX_ARRAY_SIZE (default: the cluster's)")
    ap.add_argument("--separate-max", type=int, default=100)
    ap.add_argument("--max-parallel", type=int, default=4)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]

    base = Path(tempfile.mkdtemp(prefix="crackops-sweep-bench-"))
    bin_dir, log = base / "bin", base / "calls.log"
    bin_dir.mkdir()
    for tool in ("sbatch", "sacct", "squeue"):
        shim(bin_dir, log, tool)
    os.environ.update(CRACKOPS_HOME=str(base / "home"), CRACKOPS_OUT=str(base / "out"),
                      CRACKOPS_LOGS=str(base / "logs"), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    if args.max_array_size:
        os.environ["CRACKOPS_MAX_ARRAY_SIZE"] = str(args.max_array_size)

    from crackops import api
    from crackops.config import Resources, TrainConfig
    from crackops.backends.slurm_batch import max_array_size

    res = Resources(cpus=1, mem="1G", time="10:00", extra={"hold": True})
    cfg = TrainConfig(data_dir=str(base))
    mas = max_array_size()
    rows = []
    all_ids: list[str] = []

    def status_cli(*cli_args: str) -> tuple[float, float, int]:
        log.write_text("")
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "crackops", "status", *cli_args, "--json"],
                           capture_output=True, text=True, env={**os.environ, "CRACKOPS_SACCT_INTERVAL": "0"})
        dt = time.perf_counter() - t
        ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)
        if p.returncode != 0:
            raise SystemExit(f"status failed: {p.stderr.strip()}")
        return dt, cpu, count(log, "sacct")

    for n in sizes:
        log.write_text("")
        t = time.perf_counter()
        h = api.sweep(cfg, {"dropout": [round(0.0001 * i, 4) for i in range(n)]}, resources=res, backend="slurm",
                      name=f"bench-{n}", max_parallel=args.max_parallel, fn=trivial, check_data=False)
        sweep_s = time.perf_counter() - t
        sweep_sbatch = count(log, "sbatch")
        ids = h.job_ids
        all_ids += ids
        st_s, st_cpu, st_sacct = status_cli("--sweep", f"bench-{n}")

        m = min(n, args.separate_max)
        log.write_text("")
        t = time.perf_counter()
        sep = [api.submit(cfg.with_overrides(dropout=0.0001 * i), res, backend="slurm", fn=trivial,
                          check_data=False).job_id for i in range(m)]
        sep_s = (time.perf_counter() - t) * n / m
        sep_sbatch = count(log, "sbatch") * n // m
        all_ids += sep
        sep_st_s, _, sep_st_sacct = status_cli(*sep)
        rows.append({"runs": n, "sweep_submit_s": round(sweep_s, 2), "sweep_sbatch": sweep_sbatch,
                     "arrays": len(h.sweep.extra["arrays"]), "status_sweep_s": round(st_s, 2),
                     "status_sweep_cpu_s": round(st_cpu, 2),
                     "status_sweep_sacct": st_sacct, "separate_submit_s": round(sep_s, 2),
                     "separate_sbatch": sep_sbatch, "separate_scaled": m < n,
                     "status_separate_s": round(sep_st_s, 2), "status_separate_sacct": sep_st_sacct,
                     "status_separate_runs": m})
        print(json.dumps(rows[-1]), flush=True)

    arrays = sorted({j.split("_")[0] for j in all_ids})
    for i in range(0, len(arrays), 500):
        subprocess.run(["scancel", *arrays[i:i + 500]], capture_output=True)
    print(f"\nMaxArraySize {mas}, --max-parallel {args.max_parallel}; jobs held and cancelled\n")
    print("| runs | sweep submit | sbatch | arrays | status --sweep | (CPU) | sacct | separate submits | sbatch | status (separate) | sacct |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        tilde = "~" if r["separate_scaled"] else ""
        print(f"| {r['runs']} | {r['sweep_submit_s']:.2f} s | {r['sweep_sbatch']} | {r['arrays']} | "
              f"{r['status_sweep_s']:.2f} s | {r['status_sweep_cpu_s']:.2f} s | {r['status_sweep_sacct']} | {tilde}{r['separate_submit_s']:.1f} s | "
              f"{tilde}{r['separate_sbatch']} | {r['status_separate_s']:.2f} s ({r['status_separate_runs']} runs) | "
              f"{r['status_separate_sacct']} |")
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
