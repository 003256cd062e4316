"""What working from a laptop costs: the ssh backend side by side with the same work on the local Slurm.

Needs the local Slurm and the local OpenSSH login node (as root: scripts/local-slurm.sh start,
scripts/local-sshd.sh start; the sample photos in the remote user's ~/data/concrete-sample, which
the ssh tests copy there). Measures, in a throw-away registry:

- ``status`` over N runs (default 100) waiting in the queue (submitted with ``begin=now+2hours``, so
  they cost the cluster nothing): over ssh (ssh processes started, counted by a PATH shim that runs
  the real ssh; seconds) and the same number of runs on the local Slurm (sacct calls, seconds), each
  the median of ``--repeat`` refreshes with the throttle off;
- submit latency: one ``api.submit`` over ssh against one on the local Slurm (median);
- ``collect``: the bytes rsync moves for one small real training, the first time and again.

    python benchmarks/ssh_overhead.py [--runs 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", default="data/concrete-sample", help="the photos' path on the ssh host")
    args = ap.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="crackops-bench-ssh-"))
    env = dict(line.removeprefix("export ").split("=", 1) for line in subprocess.run(
        ["bash", str(REPO / "scripts/local-sshd.sh"), "env"], capture_output=True, text=True, check=True).stdout.splitlines())
    host = env["CRACKOPS_SSH_TEST_HOST"]
    shim = base / "shim"
    shim.mkdir()
    count = base / "ssh-calls.txt"
    (shim / "ssh").write_text(f'#!/bin/sh\necho "$*" >>{count}\nexec /usr/bin/ssh "$@"\n')
    (shim / "ssh").chmod(0o755)
    sacct_count = base / "sacct-calls.txt"
    real_sacct = subprocess.run(["sh", "-c", "command -v sacct"], capture_output=True, text=True).stdout.strip()
    (shim / "sacct").write_text(f'#!/bin/sh\necho "$*" >>{sacct_count}\nexec {real_sacct} "$@"\n')
    (shim / "sacct").chmod(0o755)
    os.environ.update(CRACKOPS_HOME=str(base / "home"), CRACKOPS_OUT=str(base / "out"),
                      CRACKOPS_LOGS=str(base / "logs"), CRACKOPS_SSH_CONFIG=env["CRACKOPS_SSH_CONFIG"],
                      CRACKOPS_SACCT_INTERVAL="0", PATH=f"{shim}:{os.environ['PATH']}")

    from crackops import api
    from crackops.config import Resources, TrainConfig
    from crackops.registry import Registry

    def lines(p: Path) -> int:
        n = len([x for x in p.read_text().splitlines() if " -O " not in f" {x} "]) if p.exists() else 0
        p.write_text("")
        return n

    reg = Registry()
    config = TrainConfig(data_dir=args.data, epochs=1, image_size=32, max_images=40)
    waiting = Resources(cpus=1, mem="1G", time="0:10:00", extra={"begin": "now+2hours"})
    ids: dict[str, list[str]] = {"ssh": [], "slurm": []}
    lat: dict[str, list[float]] = {"ssh": [], "slurm": []}
    local_data = REPO.parent / "shared" / "data" / "concrete-sample"
    try:
        for backend in ("ssh", "slurm"):
            for i in range(args.runs):
                res = Resources(**{**waiting.to_dict(), "host": host if backend == "ssh" else None})
                cfg = config if backend == "ssh" else TrainConfig(**{**config.to_dict(), "data_dir": str(local_data)})
                t = time.perf_counter()
                run = api.submit(cfg, res, backend=backend, registry=reg, check_data=(i == 0))
                lat[backend].append(time.perf_counter() - t)
                ids[backend].append(run.job_id)
            print(f"submitted {args.runs} waiting runs over {backend}", file=sys.stderr)
        lines(count), lines(sacct_count)
        secs: dict[str, list[float]] = {"ssh": [], "slurm": []}
        trips: dict[str, list[int]] = {"ssh": [], "slurm": []}
        for _ in range(args.repeat):
            for backend in ("ssh", "slurm"):
                runs = reg.list(job_ids=ids[backend])
                for r in runs:
                    reg.update(r, refreshed_at=None)
                t = time.perf_counter()
                rep = api.refresh([r for r in reg.list(job_ids=ids[backend]) if r.backend == backend], reg)
                secs[backend].append(time.perf_counter() - t)
                trips[backend].append(lines(count) if backend == "ssh" else lines(sacct_count))
                assert all(r.state == "PENDING" for r in rep.runs if r.backend == backend), rep.warnings
    finally:
        for backend in ("ssh", "slurm"):
            live = [j for j in ids[backend]]
            if live:
                api.cancel(live, registry=reg)

    # collect: one small real training over ssh, copied back twice
    run = api.submit(config, Resources(cpus=1, mem="2G", time="0:10:00", host=host), backend="ssh", registry=reg)
    for _ in api.wait([run.job_id], registry=Registry(), poll_s=2):   # (not wait_until_done: it collects)
        pass
    first = api.collect(run.job_id, registry=Registry())
    again = api.collect(run.job_id, registry=Registry())
    size = sum(p.stat().st_size for p in Path(first.run.out_dir).rglob("*") if p.is_file())

    med = statistics.median
    print(f"\nstatus over {args.runs} waiting runs (median of {args.repeat}, throttle off):")
    print(f"  ssh backend:   {med(trips['ssh']):.0f} ssh round trip(s), {med(secs['ssh']):.2f} s")
    print(f"  local Slurm:   {med(trips['slurm']):.0f} sacct call(s), {med(secs['slurm']):.2f} s")
    print(f"  ratio ssh / local: {med(secs['ssh']) / med(secs['slurm']):.1f}x")
    print(f"submit latency (median of {args.runs}): ssh {med(lat['ssh']):.2f} s, local Slurm "
          f"{med(lat['slurm']):.2f} s, ratio {med(lat['ssh']) / med(lat['slurm']):.1f}x")
    print(f"collect of one run ({size / 1e6:.2f} MB on disk): first {first.fetched['bytes'] / 1e6:.2f} MB in "
          f"{first.fetched['files']} files, again {again.fetched['bytes'] / 1e3:.1f} kB in {again.fetched['files']} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
