"""Training throughput: the crackops job against a plain Keras script of the seed's shape.

Both train the seed CNN on the SAME images (60 % train / 20 % validation of the data, crackops'
test part held out; 150 px, batch 32 by default), in separate processes, alternating (A B A B ...) so machine noise hits both alike.
The baseline is what the seed did: image_dataset_from_directory, no cache, the seed's callbacks
(EarlyStopping, ReduceLROnPlateau, ModelCheckpoint of best.h5 on every improvement), TensorFlow's
defaults (no oneDNN switch, default thread pools, float32, Keras 3's BatchNormalization). crackops
runs its real job (``run_training``): oneDNN on, thread pools sized to the allocation, decode once +
cache + prefetch, TensorFlow's fused BatchNorm kernel in training, bfloat16 where the CPU has it.
Train images/s is measured over the epochs after the first, validation included.

``--ablation`` also runs the crackops job with the fused BatchNorm and/or bfloat16 turned off, in
the same rounds, to show what each contributes.

    python benchmarks/train_throughput.py [--data DIR | --per-class N] [--image-size 150] [--epochs 3]
                                          [--repeats 1] [--ablation]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The seed report's model, as its plain Keras script builds it (``size`` is the input size).
SEED_MODEL = r"""
model = keras.Sequential([keras.Input((size, size, 3)), layers.Rescaling(1/255),
    layers.Conv2D(32, 3, activation="relu"), layers.BatchNormalization(), layers.MaxPooling2D(),
    layers.Conv2D(64, 3, activation="relu"), layers.BatchNormalization(), layers.MaxPooling2D(),
    layers.Conv2D(128, 3, activation="relu"), layers.BatchNormalization(), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.3), layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
"""

BASELINE = r"""
import json, sys, time
import keras
from keras import layers
data, size, epochs, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
train, val = keras.utils.image_dataset_from_directory(data, validation_split=0.25, subset="both", seed=42,
    image_size=(size, size), batch_size=bs, label_mode="binary", class_names=["negative", "positive"])
""" + SEED_MODEL + r"""class T(keras.callbacks.Callback):
    s = []
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): self.s.append(time.perf_counter() - self.t)
import tempfile
ckpt = tempfile.mkdtemp() + "/best.h5"
# the seed's callbacks (patience high enough to run every epoch), timer last
cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True),
       keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=100),
       keras.callbacks.ModelCheckpoint(ckpt, monitor="val_loss", save_best_only=True), T()]
model.fit(train, validation_data=val, epochs=epochs, callbacks=cbs, verbose=0)
n = sum(int(x.shape[0]) for x, _ in train)
steady = T.s[1:]
print(json.dumps({"images": n, "epoch_s": T.s, "images_per_s": n * len(steady) / sum(steady)}))
"""

CRACKOPS = r"""
import json, sys
from crackops.config import TrainConfig
from crackops.job import run_training
data, size, epochs, bs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
overrides = json.loads(sys.argv[6])
m = run_training(TrainConfig(data_dir=data, image_size=size, epochs=epochs, batch_size=bs, test_fraction=0.2,
    val_fraction=0.25, es_patience=100, lr_patience=100, out_root=out, job_id="bench", seed=42, **overrides))
r = m["runtime"]
print(json.dumps({"images": m["dataset"]["counts"]["train"]["positive"] + m["dataset"]["counts"]["train"]["negative"],
                  "epoch_s": r["epoch_s"], "images_per_s": r["train_images_per_s"],
                  "settings": {**{k: r[k] for k in ("cpus", "onednn", "precision_policy")},
                               "fused_batchnorm": m["config"]["fused_batchnorm"]}}))
"""


def run(code: str, args: list[str], env: dict[str, str]) -> dict:
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"benchmark process failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None,
                    help="positive/ + negative/ folder (default: 1,000 + 1,000 synthetic 227 px photos; "
                         "epochs of a few hundred images measure per-epoch overheads more than training)")
    ap.add_argument("--per-class", type=int, default=1000, help="synthetic images per class (without --data)")
    ap.add_argument("--image-size", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--ablation", action="store_true",
                    help="also run crackops without the fused BatchNorm, without bfloat16, and without both")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="crackops-bench-"))
    if a.data:
        data = Path(a.data)
    else:
        from crackops.data.synth import synthesize

        data = tmp / "synth"
        synthesize(data, n_per_class=a.per_class, size=227, seed=0)
    # the baseline sees exactly crackops' train + validation images (its test part held out)
    from crackops.data.split import make_split

    split = make_split(data, seed=42, test_fraction=0.2, val_fraction=0.25, verify=False)
    base_dir = tmp / "baseline-data"
    for p, y in split.train + split.val:
        dst = base_dir / ("positive" if y else "negative") / Path(p).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(p, dst)

    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "CRACKOPS_CPUS")}
    clean["TF_CPP_MIN_LOG_LEVEL"] = "2"
    common = [str(a.image_size), str(a.epochs), str(a.batch_size)]
    variants = {"crackops": {}}
    if a.ablation:
        variants.update({"crackops, stock Keras BatchNorm": {"fused_batchnorm": False},
                         "crackops, float32": {"mixed_precision": "off"},
                         "crackops, stock BatchNorm + float32": {"fused_batchnorm": False, "mixed_precision": "off"}})
    base: list[dict] = []
    crack: dict[str, list[dict]] = {v: [] for v in variants}
    for i in range(a.repeats):
        base.append(run(BASELINE, [str(base_dir), *common], clean))
        line = f"round {i + 1}: baseline {base[-1]['images_per_s']:.1f} img/s"
        for v, overrides in variants.items():
            out = tmp / f"out{i}-{len(crack[v])}-{abs(hash(v))}"
            crack[v].append(run(CRACKOPS, [str(data), *common, str(out), json.dumps(overrides)],
                                {**clean, "CRACKOPS_HOME": str(tmp / "home")}))
            line += f", {v} {crack[v][-1]['images_per_s']:.1f} img/s"
        print(line, flush=True)
    b = statistics.median(r["images_per_s"] for r in base)
    flags = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "other")
    print(f"\nCPU: {isa}, {os.cpu_count()} cores; {a.image_size} px, batch {a.batch_size}, "
          f"{base[0]['images']} train images, {a.epochs} epochs (first excluded), {a.repeats} rounds")
    print(f"crackops settings: {crack['crackops'][0]['settings']}")
    label = "baseline (plain Keras, TF defaults)"
    width = max(len(v) for v in [label, *variants]) + 1
    print(f"{label + ':':<{width + 1}} {b:7.1f} train images/s")
    for v in variants:
        c = statistics.median(r["images_per_s"] for r in crack[v])
        rounds = ", ".join(f"{r['images_per_s'] / bb['images_per_s']:.2f}x" for r, bb in zip(crack[v], base))
        print(f"{v + ':':<{width + 1}} {c:7.1f} train images/s  {c / b:5.2f}x the baseline (rounds: {rounds})")
    c = statistics.median(r["images_per_s"] for r in crack["crackops"])
    print(f"ratio crackops / baseline: {c / b:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
