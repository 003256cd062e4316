"""Tracking costs, side by side in one invocation (issue 23).

1. Export of an N-run sweep (default 100) to a real ``mlflow server`` (SQLite store, local
   artifacts, started here on a free port and ended at the end): seconds, client calls and the HTTP
   requests the server logged, for the first export and for a second one (nothing changed). The
   runs are registry rows with small real artifact folders (``tests/helpers.make_artifacts``, a
   3-epoch history), no training.
2. The training with and without TensorBoard logging (``tensorboard_every`` N vs 0) on the sample
   photos, alternating A B A B in processes of their own: the process's CPU-seconds and the fit's
   (sum of the epochs' CPU-seconds), and the event files' bytes per run.

    python benchmarks/tracking.py [--runs 100] [--data DIR] [--epochs 3] [--repeats 2] [--every 10]
                                  [--skip-training]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]


def export_bench(n: int, root: Path) -> dict:
    os.environ["CRACKOPS_HOME"] = str(root / "home")
    import mlflow_server
    from helpers import BASE_CONFIG, T0, collected, make_artifacts, make_run

    from crackops import api
    from crackops.registry import Registry, Sweep

    reg = Registry()
    sweep = Sweep(sweep_id="bench", name="bench", backend="local", grid={"learning_rate": [1e-3, 3e-4]},
                  seeds=list(range(n // 2)), base_config=dict(BASE_CONFIG), resources={"cpus": 2}, created_at=T0)
    hist = {"loss": [0.6, 0.4, 0.3], "accuracy": [0.7, 0.85, 0.9], "val_loss": [0.55, 0.4, 0.41],
            "val_accuracy": [0.75, 0.86, 0.85], "lr": [1e-3, 5e-4, 0.0]}
    runs = []
    for i in range(n):
        out = make_artifacts(root / "out" / f"b{i}", job_id=f"b{i}")
        m = json.loads((out / "manifest.json").read_text())
        m.update(history=hist, runtime={"epoch_s": [10.0, 10.0, 10.0]})
        (out / "manifest.json").write_text(json.dumps(m))
        r = make_run(f"b{i}", metrics=collected(i % 7, i % 5), out_dir=str(out), name=f"bench-{i}",
                     submitted_at=T0 + i, accounting={"cpu_eff": 0.8, "mem_eff": 0.3}, seed=i // 2,
                     learning_rate=[1e-3, 3e-4][i % 2])
        r.sweep_id = "bench"
        runs.append(r)
    reg.add_sweep(sweep, runs)
    art_bytes = sum(f.stat().st_size for f in (root / "out" / "b0").iterdir() if f.is_file())
    srv = mlflow_server.start(root / "mlflow")
    try:
        res = {"runs": n, "artifact_bytes_per_run": art_bytes}
        for label in ("first", "again"):
            before = srv.requests()
            t = time.perf_counter()
            rep = api.export_mlflow(sweep="bench", tracking_uri=srv.uri, experiment="bench", registry=reg)
            s = time.perf_counter() - t
            time.sleep(0.5)  # the access log's last lines
            res[label] = {"seconds": round(s, 2), "calls": rep.total_calls, "requests": srv.requests() - before,
                          "created": rep.count("created"), "unchanged": rep.count("unchanged"),
                          "calls_by_method": rep.calls}
    finally:
        mlflow_server.stop(srv)
    return res


TRAIN = """
import json, sys
from crackops.config import TrainConfig
from crackops.job import run_training
cfg = TrainConfig(**json.loads(sys.argv[1]))
run_training(cfg)
"""


def train_once(cfg: dict, root: Path, job: str) -> dict:
    cfg = {**cfg, "out_root": str(root), "job_id": job}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CRACKOPS_HOME": str(root / "home")}
    p = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(cfg)], capture_output=True, text=True, env=env,
                       timeout=1800)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    m = json.loads((root / job / "manifest.json").read_text())
    tb = root / job / "tensorboard"
    return {"cpu_s": m["runtime"]["cpu_s"], "fit_cpu_s": sum(m["runtime"]["epoch_cpu_s"]),
            "event_bytes": sum(f.stat().st_size for f in tb.rglob("*") if f.is_file()) if tb.is_dir() else 0,
            "steps": m["optimizer_steps"], "test_accuracy": m["metrics"]["test"]["accuracy"]}


def training_bench(data: str, epochs: int, repeats: int, every: int, root: Path) -> dict:
    base = {"data_dir": data, "epochs": epochs, "seed": 1, "es_patience": 50}
    rows: dict[str, list[dict]] = {"off": [], "on": []}
    for rep in range(repeats):
        for label, n in (("off", 0), ("on", every)):   # alternating: machine noise hits both alike
            r = train_once({**base, "tensorboard_every": n}, root, f"{label}{rep}")
            rows[label].append(r)
            print(f"  {label} #{rep + 1}: CPU {r['cpu_s']:.1f} s (fit {r['fit_cpu_s']:.1f} s), "
                  f"events {r['event_bytes']} B", flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu_s", "fit_cpu_s", "event_bytes", "steps")}
           for k, v in rows.items()}
    return {"rows": rows, "median": med, "every": every, "epochs": epochs,
            "cpu_ratio": med["on"]["cpu_s"] / med["off"]["cpu_s"],
            "fit_cpu_ratio": med["on"]["fit_cpu_s"] / med["off"]["fit_cpu_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "concrete-sample"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--skip-training", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crackops-tracking-") as tmp:
        root = Path(tmp)
        print(f"export of a {a.runs}-run sweep to a real mlflow server ...", flush=True)
        ex = export_bench(a.runs, root / "export")
        f, g = ex["first"], ex["again"]
        print(f"  first export:  {f['seconds']:.1f} s, {f['calls']} client calls, {f['requests']} HTTP requests "
              f"({f['calls'] / a.runs:.1f} calls per run; {f['created']} MLflow runs created, sweep parent included)")
        print(f"  second export: {g['seconds']:.2f} s, {g['calls']} client calls, {g['requests']} HTTP requests "
              f"({g['unchanged']} unchanged)  -> {f['seconds'] / max(g['seconds'], 1e-9):.0f}x faster, "
              f"{f['requests'] / max(g['requests'], 1):.0f}x fewer requests")
        print(f"  calls by method (first): {f['calls_by_method']}")
        print(f"  artifacts per run: {ex['artifact_bytes_per_run']} B (crafted, small)")
        if not a.skip_training:
            print(f"training on {a.data}, {a.epochs} epochs, TensorBoard off vs every {a.every} steps, "
                  f"{a.repeats} repeats alternating ...", flush=True)
            tr = training_bench(a.data, a.epochs, a.repeats, a.every, root / "train")
            off, on = tr["median"]["off"], tr["median"]["on"]
            print(f"  process CPU-s (median): off {off['cpu_s']:.1f}, on {on['cpu_s']:.1f}  -> ratio "
                  f"{tr['cpu_ratio']:.3f} ({(tr['cpu_ratio'] - 1) * 100:+.1f} %)")
            print(f"  fit CPU-s (median):     off {off['fit_cpu_s']:.1f}, on {on['fit_cpu_s']:.1f}  -> ratio "
                  f"{tr['fit_cpu_ratio']:.3f} ({(tr['fit_cpu_ratio'] - 1) * 100:+.1f} %)")
            print(f"  event files per run: {on['event_bytes']:.0f} B for {a.epochs} epochs, {on['steps']:.0f} steps "
                  f"({on['event_bytes'] / on['steps']:.0f} B per step)")


if __name__ == "__main__":
    main()
