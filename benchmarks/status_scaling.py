"""How ``status`` scales with the number of runs: one batched sacct call vs. one sacct per job.

For each N (default 10, 100, 1000) this submits N real trivial jobs (one sbatch: a submitit job
array), records them in a throw-away registry, waits until they have ended, then times

- ``SlurmBackend.refresh(runs)`` (what ``crackops status`` does): sacct invocations and seconds;
- the whole ``crackops status --json`` command in a new process (CLI start, registry read, one
  refresh, registry write of N new states, JSON out), its sacct calls counted by a PATH shim;
- the one-call-per-job way (``sacct -j <id>`` for each run, same format): invocations and seconds.

Needs a running Slurm with accounting (scripts/local-slurm.sh start). The array runs at most
``--parallel`` tasks at a time so that a shared test cluster stays usable meanwhile.

    python benchmarks/status_scaling.py [--sizes 10,100,1000] [--parallel 4] [--repeat 3]
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


def trivial(config):
    """The job: write status.json through the real wrapper and return."""
    from crackops.job import _run

    return _run(config, lambda cfg, out_dir: None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--parallel", type=int, default=4, help="array tasks running at once")
    ap.add_argument("--repeat", type=int, default=3, help="timed refreshes per size (median shown)")
    ap.add_argument("--wait", type=float, default=1800, help="max seconds to wait for a size's jobs")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]

    base = Path(tempfile.mkdtemp(prefix="crackops-bench-"))
    os.environ["CRACKOPS_HOME"] = str(base / "home")
    os.environ["CRACKOPS_OUT"] = str(base / "out")
    os.environ["CRACKOPS_LOGS"] = str(base / "logs")

    from crackops.backends.base import Submission
    from crackops.backends.slurm import SlurmBackend
    from crackops.config import Resources, TrainConfig
    from crackops.errors import CrackopsError
    from crackops.registry import TERMINAL_STATES, Registry, Run
    from crackops.slurm.sacct import SCHEDULER_ENV, build_sacct_command, sacct_starttime

    class Counting(SlurmBackend):
        calls: list[str] = []

        def _run(self, cmd):
            Counting.calls.append(Path(cmd[0]).name)
            return super()._run(cmd)

    be = Counting()
    # a sacct that counts its invocations, first on the PATH of the crackops status processes
    import shutil

    shim, calls_log = base / "shim", base / "sacct-calls.log"
    shim.mkdir()
    (shim / "sacct").write_text(f'#!/bin/sh\necho call >> "{calls_log}"\nexec "{shutil.which("sacct")}" "$@"\n')
    (shim / "sacct").chmod(0o755)
    reg = Registry(base / "home" / "registry.db")
    res = Resources(job_name="bench", cpus=1, mem="256M", time="10:00")
    rows = []
    env = {**os.environ, **SCHEDULER_ENV}
    try:
        for n in sizes:
            subs = [Submission(config=TrainConfig(out_root=str(base / "out")), resources=res,
                               logs_dir=base / "logs", fn=trivial) for _ in range(n)]
            t0 = time.time()
            try:
                done = be.submit_array(subs, parallelism=args.parallel)
            except CrackopsError as e:
                print(f"submit failed: {e}", file=sys.stderr)
                return 1
            submit_s = time.time() - t0
            now = time.time()
            runs = []
            for s, d in zip(subs, done):
                r = Run(job_id=d.job_id, backend="slurm", state="PENDING", config=s.config.to_dict(),
                        resources=res.to_dict(), submitted_at=now, out_dir=str(base / "out" / d.job_id),
                        log_out=str(d.log_out), log_err=str(d.log_err), extra=d.extra)
                reg.add(r)
                runs.append(r)
            print(f"N={n}: submitted in {submit_s:.2f} s (array {done[0].job_id.split('_')[0]}), waiting...",
                  flush=True)
            # wait until every run ended (one refresh every 5 s, like a patient user)
            deadline = time.time() + args.wait
            while True:
                r = be.refresh(runs)
                states = [r.updates[x.job_id].state if x.job_id in r.updates else "PENDING" for x in runs]
                left = sum(1 for s in states if s not in TERMINAL_STATES)
                if left == 0 or time.time() > deadline:
                    break
                time.sleep(5)
            if left:
                print(f"  {left} of {n} still not finished after {args.wait:.0f} s; measuring anyway")
            # timed: the batched refresh
            times = []
            for _ in range(args.repeat):
                Counting.calls = []
                t = time.perf_counter()
                out = be.refresh(runs)
                times.append(time.perf_counter() - t)
            batched_calls = Counting.calls.count("sacct")
            assert len(out.updates) == n, (len(out.updates), n)
            # timed: the real command, from a fresh process, these N runs unfinished in the registry
            cli_times, cli_calls = [], 0
            for _ in range(args.repeat):
                reg.update_many({x.job_id: {"state": "PENDING"} for x in runs})
                calls_log.write_text("")
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "crackops", "status", "--json"], capture_output=True,
                                   text=True, env={**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"})
                cli_times.append(time.perf_counter() - t)
                cli_calls = len(calls_log.read_text().splitlines())
                if p.returncode != 0:
                    print(p.stderr, file=sys.stderr)
                    return 1
                import json

                listed = {r["job_id"]: r["state"] for r in json.loads(p.stdout)}
                assert all(listed[x.job_id] in TERMINAL_STATES for x in runs), "status left runs unfinished"
            # timed: one sacct per job
            starttime = sacct_starttime([x.submitted_at for x in runs])
            t = time.perf_counter()
            for x in runs:
                subprocess.run(build_sacct_command([x.job_id], starttime), capture_output=True, env=env, check=False)
            per_job_s = time.perf_counter() - t
            rows.append((n, statistics.median(times), batched_calls, per_job_s, n, statistics.median(cli_times),
                         cli_calls))
            print(f"  batched: {statistics.median(times):.3f} s, {batched_calls} sacct call(s); "
                  f"crackops status: {statistics.median(cli_times):.3f} s, {cli_calls} sacct call(s); "
                  f"per job: {per_job_s:.3f} s, {n} sacct calls", flush=True)
    finally:
        reg.close()
    print()
    print(f"{'runs':>6} {'refresh s':>10} {'sacct calls':>12} {'status cmd s':>13} {'sacct calls':>12} "
          f"{'per-job s':>10} {'sacct calls':>12} {'time ratio':>11} {'call ratio':>11}")
    for n, bt, bc, pt, pc, ct, cc in rows:
        print(f"{n:>6} {bt:>10.3f} {bc:>12} {ct:>13.3f} {cc:>12} {pt:>10.3f} {pc:>12} {pt / ct:>10.1f}x "
              f"{pc / max(cc, 1):>10.0f}x")
    print("(time and call ratios: one sacct per job against the whole crackops status command)")
    print(f"\n(data in {base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
