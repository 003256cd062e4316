"""What tf.data's autotuning costs at the end of a training: the same crackops training run twice
side by side, one CPU each, with autotuning off (crackops' pipelines,
``crackops.ml.pipeline.without_autotune``) and on (TensorFlow's default,
``CRACKOPS_TF_DATA_AUTOTUNE=1``).

Autotuning runs a model thread whose sleep between optimisations doubles from 20 ms up to 60 s, and
deleting an iterator has waited for that sleep to end: after ``fit`` returned, a job sat idle for up
to a minute, and an attempt that had finished training in time was killed at its Slurm limit. The
wait is intermittent (it depends on where the thread is in its sleep), so this reports each run.

Per run: wall and CPU seconds, ``runtime.fit_return_s`` of the manifest (the last epoch's end to
``fit`` returning), how long after its last batch each image decoding returned, the test accuracy.

    python benchmarks/iterator_teardown.py --data ../shared/data/concrete-sample --epochs 40
    python benchmarks/iterator_teardown.py --data datasets/concrete-full          # the default 5 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from crackops.config import TrainConfig
from crackops.ml.tfsetup import configure_environment
configure_environment()
import crackops.ml.pipeline as P
from crackops.ml.train import train
decode_waits = []
load = P.load_images
def timed_load(paths, size, progress=None, chunk=256):
    last = [None]
    def seen(i, n):
        last[0] = time.perf_counter()
        if progress:
            progress(i, n)
    out = load(paths, size, progress=seen, chunk=chunk)
    if last[0] is not None:
        decode_waits.append(time.perf_counter() - last[0])
    return out
P.load_images = timed_load
out, kw = Path(sys.argv[1]), json.loads(sys.argv[2])
t = time.perf_counter()
m = train(TrainConfig(job_id=out.name, out_root=str(out.parent), **kw), out)
print("RESULT " + json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time(),
      "fit_return_s": m["runtime"]["fit_return_s"], "decode_waits_s": decode_waits,
      "test_accuracy": m["metrics"]["test"]["accuracy"], "epochs": m["epochs_run"]}), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="positive/ + negative/ folder")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", default=None, help="where the runs write (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="crackops-teardown-"))
    kw = {"data_dir": str(Path(args.data).resolve()), "epochs": args.epochs, "seed": args.seed,
          "es_patience": args.epochs}
    pin = len(os.sched_getaffinity(0)) >= 2
    src = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    for r in range(args.repeats):
        procs = {}
        for i, side in enumerate(("off", "on")):
            env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   "CRACKOPS_TF_DATA_AUTOTUNE": "1" if side == "on" else "0"}
            cmd = ([] if not pin else ["taskset", "-c", str(sorted(os.sched_getaffinity(0))[i])]) + [
                sys.executable, "-c", CHILD, str(work / f"{side}-{r + 1}"), json.dumps(kw)]
            procs[side] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for side, p in procs.items():
            out, _ = p.communicate()
            line = [x for x in out.splitlines() if x.startswith("RESULT ")]
            if p.returncode or not line:
                sys.exit(f"the {side} run failed (exit {p.returncode}); its output:\n{out[-2000:]}")
            rows.append({"repeat": r + 1, "autotune": side, **json.loads(line[0][7:])})
    print(f"{'run':>5} {'autotune':>8} {'wall s':>8} {'CPU s':>8} {'fit_return_s':>12} {'decode waits s':>22} "
          f"{'test acc':>9}")
    for x in rows:
        waits = " ".join(f"{w:.2f}" for w in x["decode_waits_s"])
        print(f"{x['repeat']:>5} {x['autotune']:>8} {x['wall_s']:>8.1f} {x['cpu_s']:>8.1f} {x['fit_return_s']:>12.2f} "
              f"{waits:>22} {x['test_accuracy']:>9.4%}")
    for side in ("off", "on"):
        xs = [x for x in rows if x["autotune"] == side]
        print(f"autotune {side}: mean wall {sum(x['wall_s'] for x in xs) / len(xs):.1f} s, "
              f"mean CPU {sum(x['cpu_s'] for x in xs) / len(xs):.1f} s, "
              f"longest wait after fit {max(x['fit_return_s'] for x in xs):.2f} s")
    off = [x for x in rows if x["autotune"] == "off"]
    on = [x for x in rows if x["autotune"] == "on"]
    print(f"ratio wall off/on {sum(x['wall_s'] for x in off) / sum(x['wall_s'] for x in on):.3f}, "
          f"CPU off/on {sum(x['cpu_s'] for x in off) / sum(x['cpu_s'] for x in on):.3f}"
          + ("" if pin else " (not pinned: fewer than 2 CPUs)"))


if __name__ == "__main__":
    main()
