"""How fast is `crackops data check` (and the split's verification) on a dataset the size of the real one?

Generates N synthetic 227x227 JPEGs (half positive, half negative; 2-12 KB like Özgenel's) with
crackops.data.synth, warms the page cache, then times side by side in one run:

  naive        one thread: open each file, sha256 its bytes, Image.open().load() at full size
  check        crackops.data.check.check_dataset (hash + 1/8-scale decode, all cores)
  split        crackops.data.split.make_split(verify=True)

Usage:
  python benchmarks/data_check.py                 # 40,000 images
  python benchmarks/data_check.py -n 4000 --repeat 3   # quicker, best of 3
  python benchmarks/data_check.py --dir /tmp/x    # keep/reuse the generated images there
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def naive(files: list[Path]) -> int:
    from PIL import Image

    ok = 0
    for f in files:
        data = f.read_bytes()
        hashlib.sha256(data).hexdigest()
        try:
            with Image.open(f) as im:
                im.load()
            ok += 1
        except Exception:  # noqa: BLE001
            pass
    return ok


def ensure_data(root: Path, n: int, size: int, seed: int) -> dict:
    from crackops.data.synth import MARKER, synthesize

    marker = root / MARKER
    per_class = n // 2
    if marker.exists():
        params = json.loads(marker.read_text())
        if params.get("n_per_class") == per_class and params.get("size") == size and params.get("seed") == seed:
            return {"generated": False, "seconds": 0.0}
    print(f"generating {2 * per_class:,} images of {size} px in {root} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    synthesize(root, n_per_class=per_class, size=size, seed=seed)
    return {"generated": True, "seconds": time.perf_counter() - t}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--images", type=int, default=40_000, help="total images (half per class)")
    ap.add_argument("--size", type=int, default=227, help="image size in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", help="where to generate (kept, and reused when it matches); default: a temp dir, removed")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of all methods (best time kept)")
    ap.add_argument("--skip-naive", action="store_true", help="do not time the naive baseline")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    args = ap.parse_args(argv)
    if args.images < 10:
        ap.error("--images must be at least 10")

    from crackops.data.check import check_dataset
    from crackops.data.scan import default_workers
    from crackops.data.split import make_split

    tmp = None
    if args.dir:
        root = Path(args.dir)
    else:
        tmp = tempfile.mkdtemp(prefix="crackops-bench-")
        root = Path(tmp) / "data"
    try:
        gen = ensure_data(root, args.images, args.size, args.seed)
        files = sorted(root.glob("*/*.jpg"))
        sizes_kb = [f.stat().st_size / 1024 for f in files]
        # Warm the page cache so every method reads from memory (fair, and what a second run sees).
        t = time.perf_counter()
        for f in files:
            f.read_bytes()
        warm_s = time.perf_counter() - t

        # Methods run interleaved, --repeat rounds; each keeps its best time (the machine may be shared).
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            if not args.skip_naive:
                t = time.perf_counter()
                ok = naive(files)
                runs.setdefault("naive", []).append(time.perf_counter() - t)
                assert ok == len(files), f"naive decoded {ok} of {len(files)}"
            t = time.perf_counter()
            rep = check_dataset(root)
            runs.setdefault("check", []).append(time.perf_counter() - t)
            assert rep.ok and sum(rep.counts.values()) == len(files), rep.problems
            t = time.perf_counter()
            split = make_split(root, seed=42, verify=True)
            runs.setdefault("split", []).append(time.perf_counter() - t)
            assert len(split.train) + len(split.val) + len(split.test) == len(files)
        results = {k: min(v) for k, v in runs.items()}

        info = {
            "images": len(files),
            "image_size": args.size,
            "file_kb": {"min": round(min(sizes_kb), 1), "median": round(statistics.median(sizes_kb), 1),
                        "max": round(max(sizes_kb), 1)},
            "generated_s": round(gen["seconds"], 1),
            "warm_read_s": round(warm_s, 2),
            "cpu": cpu_name(),
            "workers": default_workers(),
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "repeat": args.repeat,
            "all_seconds": {k: [round(x, 2) for x in v] for k, v in runs.items()},
            "python": platform.python_version(),
            "results": {
                k: {"seconds": round(v, 2), "images_per_s": round(len(files) / v),
                    "speedup_vs_naive": round(results["naive"] / v, 2) if "naive" in results else None}
                for k, v in results.items()
            },
        }
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(f"{info['images']:,} images of {args.size} px, {info['file_kb']['min']}-{info['file_kb']['max']} KB "
                  f"(median {info['file_kb']['median']}); {info['workers']} workers on {info['cpu']}; "
                  f"load average {info['load_avg_1m']}; best of {args.repeat}")
            print(f"{'method':<8} {'seconds':>9} {'images/s':>10} {'vs naive':>9}")
            for k, r in info["results"].items():
                sp = f"{r['speedup_vs_naive']:.2f}x" if r["speedup_vs_naive"] else "-"
                print(f"{k:<8} {r['seconds']:>9.2f} {r['images_per_s']:>10,} {sp:>9}")
        return 0
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
