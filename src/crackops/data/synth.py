"""Synthetic concrete-crack images, laid out like Özgenel's dataset (``positive/`` and ``negative/``).

Each image is a grey concrete-like texture (noise at several scales, soft blotches, pores, a
lighting gradient, a slight colour tint, light scratches) and every positive also has one or more
dark crack polylines drawn as random walks of varying width, with a contrast that ranges from
obvious to faint. Both classes draw their brightness, texture and distractors from the same
distributions, so only the crack tells them apart (unlike the real data, where brightness alone
goes a long way).

Deterministic: the same ``seed``, ``size`` and index give the same bytes, whatever
``n_per_class`` or the number of workers (each image has its own random stream).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from crackops.errors import UsageError

MARKER = "synth.json"
CLASS_IDS = {"negative": 0, "positive": 1}
_NAME_RE = re.compile(r"^\d{5,}\.jpg$")
MIN_SIZE, MAX_SIZE = 16, 1024
MAX_PER_CLASS = 1_000_000


def file_name(i: int) -> str:
    """``00001.jpg``, like the real release (the same names occur in both classes)."""
    return f"{i + 1:05d}.jpg"


# --------------------------------------------------------------------------------------------
# drawing

def _upsampled_noise(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    from PIL import Image

    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((size, size), Image.BICUBIC))


def _soft_mask(size: int, draw_fn, blur: float, ss: int = 2) -> np.ndarray:
    """Draw white shapes on a black supersampled canvas, downsample (anti-aliasing), blur; 0..1."""
    from PIL import Image, ImageDraw, ImageFilter

    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw_fn(ImageDraw.Draw(canvas), ss)
    m = canvas.resize((size, size), Image.BOX)
    if blur > 0:
        m = m.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(m, dtype=np.float32) / 255.0


def _inside_length(pts, size: int) -> float:
    total = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if 0 <= (x0 + x1) / 2 <= size and 0 <= (y0 + y1) / 2 <= size:
            total += math.hypot(x1 - x0, y1 - y0)
    return total


def _random_walk(rng: np.random.Generator, size: int, min_len: float, tries: int = 8) -> list[tuple[float, float]]:
    """A wandering polyline of at least ``min_len`` pixels inside the image (when ``tries`` allow)."""
    best: list[tuple[float, float]] = []
    best_len = -1.0
    for _ in range(tries):
        pts = _walk_once(rng, size, min_len)
        inside = _inside_length(pts, size)
        if inside >= min_len:
            return pts
        if inside > best_len:
            best, best_len = pts, inside
    return best


def _walk_once(rng: np.random.Generator, size: int, min_len: float) -> list[tuple[float, float]]:
    """A wandering polyline that starts on or near an edge and runs across the image."""
    side = rng.integers(4)
    t = rng.uniform(0.1, 0.9) * size
    start = [(t, -2.0), (size + 2.0, t), (t, size + 2.0), (-2.0, t)][side]
    inward = [math.pi / 2, math.pi, -math.pi / 2, 0.0][side]
    if rng.random() < 0.25:  # some start inside the image
        start = (rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size)
        inward = rng.uniform(-math.pi, math.pi)
    heading = inward + rng.normal(0, 0.5)
    step = size / rng.uniform(14, 24)
    wiggle = rng.uniform(0.15, 0.5)
    x, y = start
    pts = [(x, y)]
    length = 0.0
    for _ in range(200):
        heading += rng.normal(0, wiggle)
        heading = 0.8 * heading + 0.2 * inward if length < size * 0.3 else heading
        x += step * math.cos(heading)
        y += step * math.sin(heading)
        pts.append((x, y))
        length += step
        if length >= min_len and not (-4 <= x <= size + 4 and -4 <= y <= size + 4):
            break
        if length >= 2.5 * size:
            break
    return pts


def _draw_crack(draw, ss: int, pts, width: float, rng: np.random.Generator) -> None:
    w = width
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        w = min(max(w * rng.uniform(0.75, 1.3), width * 0.5), width * 1.8)
        wpx = max(1, int(round(w * ss)))
        draw.line([(x0 * ss, y0 * ss), (x1 * ss, y1 * ss)], fill=255, width=wpx)
        r = wpx / 2
        draw.ellipse([x1 * ss - r, y1 * ss - r, x1 * ss + r, y1 * ss + r], fill=255)


def _base_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Grey concrete: noise at three scales plus grain, under a lighting gradient. The same
    distribution for both classes."""
    base = rng.uniform(100, 200)
    img = np.full((size, size), base, dtype=np.float32)
    img += rng.uniform(3, 10) * _upsampled_noise(rng, 3, size)
    img += rng.uniform(2, 6) * _upsampled_noise(rng, max(4, size // 12), size)
    img += rng.uniform(1.5, 4) * _upsampled_noise(rng, max(8, size // 3), size)
    img += rng.uniform(1.0, 3.0) * rng.standard_normal((size, size), dtype=np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    img *= 1 + rng.uniform(0, 0.15) * (math.cos(ang) * ramp[None, :] + math.sin(ang) * ramp[:, None])
    return img


def _add_blotches_and_pores(rng: np.random.Generator, img: np.ndarray, size: int, s: float) -> None:
    """Blotches (soft, lighter or darker) and pores (small dark dots), in place: distractors in
    both classes."""
    n_blot = int(rng.integers(0, 6))
    if n_blot:
        from PIL import Image, ImageDraw, ImageFilter

        canvas = Image.new("L", (size, size), 128)
        d = ImageDraw.Draw(canvas)
        for _ in range(n_blot):
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
            rx, ry = rng.uniform(4, 18) * s, rng.uniform(3, 12) * s
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(128 + rng.uniform(-120, 120)))
        m = np.asarray(canvas.filter(ImageFilter.GaussianBlur(3 * s)), dtype=np.float32)
        img *= 1 + (m - 128.0) / 1000.0
    n_pores = int(rng.integers(3, 30))
    pores = [(rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.4, 1.8) * s) for _ in range(n_pores)]

    def draw_pores(d, ss):
        for x, y, r in pores:
            d.ellipse([(x - r) * ss, (y - r) * ss, (x + r) * ss, (y + r) * ss], fill=255)

    img *= 1 - rng.uniform(0.15, 0.45) * _soft_mask(size, draw_pores, blur=0.4 * s)


def _add_voids_and_scratches(rng: np.random.Generator, img: np.ndarray, size: int, s: float) -> None:
    """In place, in both classes: voids (larger dark holes), so "some dark pixels" does not mean
    "crack", and light scratches (thin, brighter, straight-ish), so "a line" is not enough."""
    if rng.random() < 0.5:
        voids = [(rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.5, 4.5) * s, rng.uniform(0.5, 1.0))
                 for _ in range(int(rng.integers(1, 5)))]

        def draw_voids(d, ss):
            for x, y, r, asp in voids:
                d.ellipse([(x - r) * ss, (y - r * asp) * ss, (x + r) * ss, (y + r * asp) * ss], fill=255)

        img *= 1 - rng.uniform(0.3, 0.7) * _soft_mask(size, draw_voids, blur=0.6 * s)
    if rng.random() < 0.2:
        pts = _random_walk(rng, size, size * 0.4)
        sw = rng.uniform(0.6, 1.2) * s
        m = _soft_mask(size, lambda d, ss: _draw_crack(d, ss, pts[: max(2, len(pts) // 2)], sw, rng), blur=0.5 * s)
        img *= 1 + rng.uniform(0.05, 0.2) * m


def _crack_walks(rng: np.random.Generator, size: int, s: float) -> list[tuple[list, float]]:
    """One to three cracks as (points, width), some with a thinner branch."""
    n_cracks = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
    walks = []
    for _ in range(n_cracks):
        pts = _random_walk(rng, size, size * rng.uniform(0.6, 1.2))
        width = rng.uniform(1.3, 3.8) * s
        walks.append((pts, width))
        if rng.random() < 0.35 and len(pts) > 4:  # a thinner branch
            j = int(rng.integers(1, len(pts) - 2))
            bx, by = pts[j]
            branch = [(bx, by)]
            h = rng.uniform(-math.pi, math.pi)
            for _k in range(int(rng.integers(3, 9))):
                h += rng.normal(0, 0.4)
                bx += size / 18 * math.cos(h)
                by += size / 18 * math.sin(h)
                branch.append((bx, by))
            walks.append((branch, width * 0.6))
    return walks


def _add_cracks(rng: np.random.Generator, img: np.ndarray, size: int, s: float) -> None:
    """Dark cracks, in place (the positive class only)."""
    walks = _crack_walks(rng, size, s)
    mask = _soft_mask(size, lambda d, ss: [_draw_crack(d, ss, p, w, rng) for p, w in walks], blur=0.5 * s)
    # Contrast from faint to deep; the inside of a crack is shadowed, not uniformly black.
    depth = rng.uniform(0.3, 0.85)
    shade = 1 - depth * mask * (0.85 + 0.15 * rng.random((size, size), dtype=np.float32))
    img *= shade


def render(seed: int, cls: str, index: int, size: int = 96) -> np.ndarray:
    """One image as an ``(size, size, 3)`` uint8 array. Deterministic in its arguments: the steps
    draw from one generator in a fixed order, so they must not be reordered."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, CLASS_IDS[cls], int(index)])
    s = size / 96.0
    img = _base_texture(rng, size)
    _add_blotches_and_pores(rng, img, size, s)
    _add_voids_and_scratches(rng, img, size, s)
    if cls == "positive":
        _add_cracks(rng, img, size, s)
    tint = 1 + rng.normal(0, 0.012, 3).astype(np.float32)
    rgb = img[:, :, None] * tint[None, None, :]
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _write_one(out_dir: str, seed: int, cls: str, index: int, size: int) -> int:
    from PIL import Image

    arr = render(seed, cls, index, size)
    quality = 72 + (index * 7 + CLASS_IDS[cls] * 3 + seed) % 17  # 72..88 (the real files look like ~75)
    path = os.path.join(out_dir, cls, file_name(index))
    Image.fromarray(arr, "RGB").save(path, "JPEG", quality=quality, optimize=False)
    return os.path.getsize(path)


def _write_chunk(out_dir: str, seed: int, items: list[tuple[str, int]], size: int) -> int:
    return sum(_write_one(out_dir, seed, c, i, size) for c, i in items)


# --------------------------------------------------------------------------------------------
# the public entry point

def _prepare_target(out: Path) -> None:
    """Create ``out`` or make sure it is safe to (re)write: empty, or an earlier synth output."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} exists and is not a folder", "give a new or empty folder for the synthetic dataset")
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as e:
            raise UsageError(f"cannot create {str(out)!r}: {e.strerror or e}", "check the path and its permissions") from None
        return
    entries = sorted(os.listdir(out))
    if not entries:
        return
    refuse = UsageError(
        f"{str(out)!r} is not empty and does not look like an earlier `crackops data synth` output",
        "give a new or empty folder; synth only overwrites a folder it made itself (positive/, negative/ and synth.json)",
    )
    if MARKER not in entries or not set(entries) <= {"positive", "negative", MARKER}:
        raise refuse
    for cls in ("positive", "negative"):
        d = out / cls
        if not d.exists():
            continue
        if not d.is_dir():
            raise refuse
        for name in os.listdir(d):
            if not _NAME_RE.match(name) or not (d / name).is_file():
                raise refuse
    # Everything there is ours: remove the old images so a smaller run leaves no stale files.
    for cls in ("positive", "negative"):
        if (out / cls).is_dir():
            shutil.rmtree(out / cls)


def _check_synth_args(n_per_class: int, size: int, seed: int) -> None:
    if not isinstance(n_per_class, int) or isinstance(n_per_class, bool) or not 1 <= n_per_class <= MAX_PER_CLASS:
        raise UsageError(f"images per class must be between 1 and {MAX_PER_CLASS:,}, got {n_per_class!r}",
                         "e.g. --per-class 200")
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}",
                         "e.g. --size 96 (fast) or --size 227 (like the real dataset)")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}", "e.g. --seed 0")


def _write_serial(out: str, seed: int, items: list[tuple[str, int]], size: int, progress) -> int:
    total = pending = 0
    for cls, i in items:
        total += _write_one(out, seed, cls, i, size)
        pending += 1
        if progress and pending == 50:
            progress(pending)
            pending = 0
    if progress and pending:
        progress(pending)
    return total


def _write_parallel(out: str, seed: int, items: list[tuple[str, int]], size: int, workers: int, progress) -> int:
    """Chunks of images over a worker pool (see ``crackops.data.pool.worker_pool``); the files are
    the same as written one by one."""
    from concurrent.futures.process import BrokenProcessPool

    from crackops.data.pool import run_chunks

    total = 0
    chunk = max(16, min(500, len(items) // (workers * 4) or 1))
    chunks = [items[k:k + chunk] for k in range(0, len(items), chunk)]
    done = [False] * len(chunks)
    try:
        for k, n in run_chunks(_write_chunk, [(out, seed, ch, size) for ch in chunks], workers):
            total += n
            done[k] = True
            if progress:
                progress(len(chunks[k]))
    except (BrokenProcessPool, OSError, RuntimeError):
        # Workers could not start or died: write the rest here (same bytes, just slower).
        for k, ch in enumerate(chunks):
            if not done[k]:
                total += _write_chunk(out, seed, ch, size)
                if progress:
                    progress(len(ch))
    return total


def synthesize(
    out_dir: str | os.PathLike,
    n_per_class: int = 200,
    size: int = 96,
    seed: int = 0,
    *,
    workers: int | None = None,
    progress=None,
) -> dict:
    """Write ``n_per_class`` crack (``positive/``) and sound (``negative/``) JPEGs into ``out_dir``.

    ``out_dir`` must be new, empty, or an earlier synth output (which is then replaced). Returns
    ``{"out_dir", "counts", "size", "seed", "files", "bytes", "seconds"}``. ``workers``: processes
    to use (default: all allowed cores for large runs, 1 for small ones). ``progress``: optional
    callable(advance) for a progress bar.
    """
    _check_synth_args(n_per_class, size, seed)
    out = Path(out_dir).expanduser().absolute()
    t0 = time.perf_counter()
    _prepare_target(out)
    for cls in ("negative", "positive"):
        (out / cls).mkdir(exist_ok=True)
    items = [(cls, i) for i in range(n_per_class) for cls in ("negative", "positive")]

    from crackops.data.scan import default_workers

    if workers is None:
        workers = default_workers() if len(items) * size * size >= 400 * 96 * 96 else 1
    workers = max(1, int(workers))
    if workers == 1:
        total = _write_serial(str(out), seed, items, size, progress)
    else:
        total = _write_parallel(str(out), seed, items, size, workers, progress)
    params = {"generator": "crackops.data.synth", "n_per_class": n_per_class, "size": size, "seed": seed}
    (out / MARKER).write_text(json.dumps(params, indent=2) + "\n")
    return {
        "out_dir": str(out),
        "counts": {"positive": n_per_class, "negative": n_per_class},
        "size": size,
        "seed": seed,
        "files": 2 * n_per_class,
        "bytes": total,
        "seconds": round(time.perf_counter() - t0, 3),
    }
