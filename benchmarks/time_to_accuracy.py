"""Time to accuracy: the plain Keras seed script against crackops' default training, same split.

One duplicate-aware split of a real folder (``crackops.data.split.make_split``, test 20 %): the
training part goes to ``TRAIN/``, the test part to ``TEST/`` (symlinks). Then, for each seed:

- **seed script**: the course report's script as it was: ``image_dataset_from_directory(TRAIN,
  validation_split=0.1, subset="both")`` at 150 px, batch 32, no cache (JPEGs decoded every epoch),
  TensorFlow's defaults, float32, Keras 3's BatchNormalization, Adam 1e-3, EarlyStopping(patience
  3, best weights restored), ReduceLROnPlateau(0.5, patience 2), ModelCheckpoint(best.h5), up to 20
  epochs, then the train and test predictions its confusion matrices need.
- **crackops**: its real training job (``run_training``) with every default, ``--data TRAIN
  --test-dir TEST`` (a profile's [train] section with ``--profile NAME``).

Each run is a fresh process; its CPU-seconds (user + system, all threads, from ``wait4``) include
start-up, decoding, training and evaluation. Per run it prints CPU-seconds, wall seconds, epochs,
CPU-seconds until validation accuracy first reaches the seed script's final (restored-best)
validation accuracy (mean over its runs), final test accuracy and errors; then mean ± std per side
and the ratios. The test set is the same for both sides.

Every finished run is appended to ``--results`` (JSON lines) at once, and runs already there are
not run again, so a long benchmark can be stopped and continued; ``--report`` only prints. With
``--pin`` the two sides run at the same time, the seed script on CPU 0 and crackops on CPU 1, one
thread each: CPU-seconds stay comparable (no process shares its core) and the wall time halves.

    python benchmarks/time_to_accuracy.py --data /path/to/concrete-full --seeds 1 2 3 --pin
    python benchmarks/time_to_accuracy.py --data ../shared/data/concrete-sample     # quick (minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from train_throughput import SEED_MODEL  # the same model code (benchmarks/ is on sys.path)

SEED_SCRIPT = r"""
import json, sys, time, tempfile
import keras
from keras import layers
train_dir, test_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])  # argv[4]: where best.h5 goes
keras.utils.set_random_seed(seed)
size, bs = 150, 32
train, val = keras.utils.image_dataset_from_directory(train_dir, validation_split=0.1, subset="both", seed=seed,
    image_size=(size, size), batch_size=bs, label_mode="binary", class_names=["negative", "positive"])
test = keras.utils.image_dataset_from_directory(test_dir, image_size=(size, size), batch_size=bs,
    label_mode="binary", class_names=["negative", "positive"], shuffle=False)
""" + SEED_MODEL + r"""class Clock(keras.callbacks.Callback):
    cpu = []
    def on_epoch_end(self, e, logs=None):
        Clock.cpu.append(time.process_time())
        print(f"epoch {e + 1}: val_accuracy {logs['val_accuracy']:.4f}, cpu {Clock.cpu[-1]:.0f} s", file=sys.stderr, flush=True)
ckpt = sys.argv[4]
cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
       keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2),
       keras.callbacks.ModelCheckpoint(ckpt, monitor="val_loss", save_best_only=True), Clock()]
h = model.fit(train, validation_data=val, epochs=20, callbacks=cbs, verbose=0)
hist = h.history
best = min(range(len(hist["val_loss"])), key=lambda i: hist["val_loss"][i])
model.predict(train, verbose=0)  # the seed's confusion_train.png
import numpy as np
probs = model.predict(test, verbose=0).reshape(-1)
y = np.concatenate([b.numpy().reshape(-1) for _, b in test])
errors = int(((probs >= 0.5) != (y >= 0.5)).sum())
print(json.dumps({"val_accuracy": hist["val_accuracy"], "epoch_cpu": Clock.cpu, "best_epoch": best + 1,
                  "final_val_accuracy": hist["val_accuracy"][best], "test_n": int(len(y)),
                  "test_errors": errors, "test_accuracy": 1 - errors / len(y), "model": ckpt}))
"""

CRACKOPS = r"""
import json, sys, time
from crackops import api
from crackops.config import TrainConfig, load_profile
from crackops.job import run_training
train_dir, test_dir, seed, out, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
overrides = load_profile(profile)[1] if profile else {}
tag = ("-" + profile.rsplit("/", 1)[-1].removesuffix(".toml")) if profile else ""
cfg = TrainConfig(data_dir=train_dir, test_dir=test_dir, out_root=out, job_id=f"tta{tag}-{seed}").with_overrides(**overrides)
cfg.seed = seed
m = run_training(cfg)
r, h = m["runtime"], m["history"]
cpu = []
# CPU time at each epoch end: process CPU before training (start-up, split, decode) + epochs so far
pre = r["cpu_before_fit_s"]
acc = pre
for c in r["epoch_cpu_s"]:
    acc += c
    cpu.append(acc)
t = m["metrics"]["test"]
print(json.dumps({"val_accuracy": h["val_accuracy"], "epoch_cpu": cpu, "best_epoch": m["best_epoch"],
                  "final_val_accuracy": h["val_accuracy"][m["best_epoch"] - 1], "test_n": t["n"],
                  "test_errors": t["errors"], "test_accuracy": t["accuracy"],
                  "config": {k: m["config"][k] for k in ("image_size", "batch_size", "epochs", "lr_schedule",
                                                          "augment", "mixed_precision")},
                  "precision": r["precision_policy"], "model": f"{out}/{cfg.job_id}/best.h5"}))
"""

OOD = r"""
import json, sys
from crackops.ml.predict import load_model, predict
model = load_model(sys.argv[1])
rows = {}
for cls, y in (("negative", 0), ("positive", 1)):
    rows[cls] = [r for r in predict(model, [f"{sys.argv[2]}/{cls}"]) if r["error"] is None]
wrong = {cls: sum((r["prob_crack"] >= 0.5) != (cls == "positive") for r in rs) for cls, rs in rows.items()}
n = sum(len(rs) for rs in rows.values())
print(json.dumps({"ood_accuracy": 1 - sum(wrong.values()) / n, "ood_n": n,
                  "ood_missed_cracks": wrong["positive"], "ood_false_alarms": wrong["negative"]}))
"""


def run_child(code: str, args: list[str], env: dict[str, str], cpu: int | None, log: Path) -> dict:
    cmd = [sys.executable, "-c", code, *args]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    t0 = time.perf_counter()
    with open(log, "w") as logf:  # the child's output and errors, as they come (follow it with tail -f)
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    stdout = "\n".join(x for x in log.read_text().splitlines() if x.startswith(("{\"val_accuracy\"", "{\"ood_")))
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"run failed (exit {p.returncode}); see {log}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res.update(cpu_s=ru.ru_utime + ru.ru_stime, wall_s=wall, max_rss_mb=ru.ru_maxrss / 1024)
    if "val_accuracy" in res:
        res["epochs"] = len(res["val_accuracy"])
    return res


def load_records(results: Path) -> list[dict]:
    """Finished runs, with the out-of-domain scores recorded after them (separate lines, so every
    write is an append: several benchmark processes may share one results file)."""
    if not results.exists():
        return []
    lines = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    runs = [x for x in lines if "ood_for" not in x]
    for x in lines:
        if "ood_for" in x:
            for r in runs:
                if [r["side"], r["seed"], r.get("profile", "")] == x["ood_for"]:
                    r.update({k: v for k, v in x.items() if k != "ood_for"})
    return runs


def append_ood(results: Path, r: dict) -> None:
    line = {"ood_for": [r["side"], r["seed"], r.get("profile", "")],
            **{k: r[k] for k in ("ood_accuracy", "ood_n", "ood_missed_cracks", "ood_false_alarms")}}
    with open(results, "a") as f:
        f.write(json.dumps(line) + "\n")


def run_ood(model: str, ood: str, env: dict[str, str], cpu: int | None, log: Path) -> dict:
    res = run_child(OOD, [model, ood], env, cpu, log)
    return {k: res[k] for k in ("ood_accuracy", "ood_n", "ood_missed_cracks", "ood_false_alarms")}


def prepare(data: Path, work: Path) -> tuple[Path, Path, dict]:
    from crackops.data.split import make_split

    split = make_split(data, seed=42, test_fraction=0.2, val_fraction=0.0, verify=True)
    dirs = {"train": work / "TRAIN", "test": work / "TEST"}
    for part, items in (("train", split.train + split.val), ("test", split.test)):
        for p, y in items:
            dst = dirs[part] / ("positive" if y else "negative") / Path(p).name
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(p, dst)
    info = {"train": len(split.train) + len(split.val), "test": len(split.test),
            "duplicate_groups": split.duplicate_groups, "skipped": len(split.skipped),
            "test_fingerprint": split.fingerprints["test"][:16]}
    return dirs["train"], dirs["test"], info


def mean_std(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.mean(xs):.1f}" + (f" ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else "")


def cpu_to_target(r: dict, target: float) -> float | None:
    for acc, cpu in zip(r["val_accuracy"], r["epoch_cpu"]):
        if acc >= target:
            return cpu
    return None


def report(records: list[dict], data_info: dict) -> None:
    sides = {"seed script": [r for r in records if r["side"] == "seed"],
             "crackops": [r for r in records if r["side"] == "crackops"]}
    seed_runs = sides["seed script"]
    target = statistics.mean(r["final_val_accuracy"] for r in seed_runs) if seed_runs else None
    print(f"\ndata: {data_info.get('data')}: {data_info.get('train')} training images (validation "
          f"taken from them), {data_info.get('test')} test images; duplicate-aware split, "
          f"{data_info.get('duplicate_groups')} duplicate groups")
    print(f"CPU: {data_info.get('cpu')}; validation target (seed script's final val accuracy, mean): "
          f"{target:.4f}" if target is not None else "no seed-script run yet")
    hdr = (f"{'side':<12} {'seed':>4} {'CPU-s':>8} {'wall s':>7} {'epochs':>6} {'CPU-s to target':>15} "
           f"{'test acc':>9} {'errors':>9} {'out-of-domain':>13}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for name, runs in sides.items():
        for r in runs:
            tt = cpu_to_target(r, target) if target is not None else None
            print(f"{name:<12} {r['seed']:>4} {r['cpu_s']:>8.0f} {r['wall_s']:>7.0f} {r['epochs']:>6} "
                  f"{(f'{tt:.0f}' if tt is not None else 'never'):>15} {r['test_accuracy']:>9.2%} "
                  f"{r['test_errors']:>4}/{r['test_n']:<4} "
                  f"{(format(r['ood_accuracy'], '.1%') if 'ood_accuracy' in r else '-'):>13}")
    print()
    summary = {}
    for name, runs in sides.items():
        if not runs:
            continue
        accs = [100 * r["test_accuracy"] for r in runs]
        cpus = [r["cpu_s"] for r in runs]
        tts = [cpu_to_target(r, target) for r in runs] if target is not None else []
        reached = [t for t in tts if t is not None]
        summary[name] = {"cpu": statistics.mean(cpus), "acc": statistics.mean(accs),
                         "tt": statistics.mean(reached) if reached else None}
        sd = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        oods = [100 * r["ood_accuracy"] for r in runs if "ood_accuracy" in r]
        ood = f"  out-of-domain {statistics.mean(oods):.1f} %" if oods else ""
        print(f"{name:<12} n={len(runs)}  CPU-s {mean_std(cpus)}  test accuracy {statistics.mean(accs):.2f}{sd} %  "
              f"CPU-s to target {mean_std(reached)} ({len(reached)}/{len(runs)} reached it){ood}")
    if len(summary) == 2:
        s, c = summary["seed script"], summary["crackops"]
        line = (f"\nratio crackops / seed script: CPU time {c['cpu'] / s['cpu']:.2f}x "
                f"({s['cpu'] / c['cpu']:.1f}x less)")
        if s["tt"] and c["tt"]:
            line += f", CPU time to target {c['tt'] / s['tt']:.2f}x"
        line += f"; test accuracy {c['acc'] - s['acc']:+.2f} pp"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="positive/ + negative/ folder (the full set for the headline)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--sides", nargs="+", default=["seed", "crackops"], choices=["seed", "crackops"])
    ap.add_argument("--profile", default="", help="crackops side: a profile's [train] settings (default: none)")
    ap.add_argument("--work", default=None, help="where the split folders, logs and outputs go (default: a temp dir)")
    ap.add_argument("--results", default=None, help="JSON lines of finished runs (default: WORK/results.jsonl)")
    ap.add_argument("--pin", action="store_true", help="run both sides at once, one CPU each (needs 2 CPUs)")
    ap.add_argument("--report", action="store_true", help="only print the table from --results")
    ap.add_argument("--ood", default=None,
                    help="out-of-domain positive/ + negative/ folder: every model is also scored there "
                         "(runs recorded without it are scored when the report is printed)")
    a = ap.parse_args()

    work = Path(a.work or tempfile.mkdtemp(prefix="crackops-tta-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = Path(a.results) if a.results else work / "results.jsonl"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = ("AVX-512" + (" + BF16" if "avx512_bf16" in flags or "amx_bf16" in flags else "")
           if "avx512f" in flags else ("AVX2" if "avx2" in flags else "other"))
    train_dir, test_dir, info = prepare(Path(a.data), work)
    info.update(data=str(a.data), cpu=f"{isa}, {os.cpu_count()} cores" + (", one pinned core per side" if a.pin else ""))
    records = load_records(results)
    done = {(r["side"], r["seed"], r.get("profile", "")) for r in records}
    lock = threading.Lock()
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "CRACKOPS_CPUS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"

    def side_runs(side: str) -> None:
        for seed in a.seeds:
            key = (side, seed, a.profile if side == "crackops" else "")
            if key in done:
                continue
            cpu = (0 if side == "seed" else 1) if a.pin else None
            e = dict(env, CRACKOPS_HOME=str(work / "home"))
            if a.pin and side == "crackops":
                e["CRACKOPS_CPUS"] = "1"
            log = work / f"{side}-{seed}{'-' + Path(a.profile).stem if key[2] else ''}.log"
            print(f"running {side} seed {seed} (log {log}) ...", flush=True)
            if side == "seed":
                r = run_child(SEED_SCRIPT, [str(train_dir), str(test_dir), str(seed), str(work / f"seed-{seed}.h5")],
                              e, cpu, log)
            else:
                r = run_child(CRACKOPS, [str(train_dir), str(test_dir), str(seed), str(work / "out"), a.profile],
                              e, cpu, log)
            r.update(side=side, seed=seed, profile=key[2], pinned=a.pin, when=time.strftime("%Y-%m-%d %H:%M"))
            with lock:  # recorded at once: nothing measured is lost if what follows fails
                with open(results, "a") as f:
                    f.write(json.dumps(r) + "\n")
                records.append(r)
            if a.ood:
                r.update(run_ood(r["model"], a.ood, e, cpu, log.with_suffix(".ood.log")))
                with lock:
                    append_ood(results, r)
            print(f"  {side} seed {seed}: {r['cpu_s']:.0f} CPU-s, {r['epochs']} epochs, "
                  f"test {r['test_accuracy']:.2%} ({r['test_errors']} errors)", flush=True)

    if not a.report:
        if a.pin:
            threads = [threading.Thread(target=side_runs, args=(s,)) for s in a.sides]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for seed in a.seeds:  # alternate sides seed by seed, so machine noise hits both alike
                for s in a.sides:
                    saved = a.seeds
                    a.seeds = [seed]
                    side_runs(s)
                    a.seeds = saved
    if a.ood:
        for r in records:
            if "ood_accuracy" not in r and Path(r.get("model", "")).is_file():
                r.update(run_ood(r["model"], a.ood, env, None, work / "ood-posthoc.log"))
                append_ood(results, r)
    report([r for r in records if r["side"] == "seed" or r.get("profile", "") == a.profile], info)


if __name__ == "__main__":
    main()
