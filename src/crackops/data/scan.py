"""One scanner for image folders, shared by ``crackops data check`` and the train/val/test split.

It finds the class folders, lists their files, and for each file reads the bytes once: a SHA-256
of the content (to find byte-identical duplicates) and, when asked, a decode check. The decode is
cheap: JPEGs are decoded at 1/8 scale with Pillow's ``draft()``, which still reads every byte of
the entropy-coded data, so a truncated file fails just as it would at full size. Files are scanned
in parallel over the available cores (forked processes, or threads where forking is unsafe: see
``crackops.data.pool``), so a process that already loaded TensorFlow can call it too.

No TensorFlow here: this module must import fast.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crackops.contract import allocated_cpus
from crackops.data.pool import _THREADED_LIBS, fork_is_safe, run_chunks, worker_pool  # noqa: F401
from crackops.errors import UsageError

CLASSES = ("negative", "positive")
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})
# Formats (as Pillow names them from the content) that the training input pipeline can decode.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF"})

# Below this many files a pool costs more than it saves.
PARALLEL_MIN_FILES = 400
CHUNK_SIZE = 256

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FileInfo:
    """What the scanner learned about one file."""

    path: str                 # absolute path
    cls: str                  # canonical class name ("positive"/"negative") or "" when unknown
    name: str                 # file name inside its class folder
    nbytes: int = 0
    sha256: str = ""          # empty when the file could not be read
    ok: bool = False          # a usable image (readable, decodable when verified, accepted format)
    kind: str = "image"       # "image" | "non-image" | "unreadable" | "too-large" | "folder"
    reason: str = ""          # why it is not usable
    format: str = ""          # Pillow's format name from the content, e.g. "JPEG"
    width: int = 0
    height: int = 0
    mode: str = ""            # Pillow's mode, e.g. "RGB", "L"

    @property
    def key(self) -> str:
        """``<class>/<filename>``: what split fingerprints are made of."""
        return f"{self.cls}/{self.name}"

    @property
    def size_str(self) -> str:
        return f"{self.width}x{self.height}"


def resolve_class_dirs(data_dir: str | os.PathLike, classes: Sequence[str] = CLASSES) -> tuple[Path, dict[str, Path | None]]:
    """Check ``data_dir`` and find its class folders (case-insensitive: the release uses ``Positive/``).

    Returns the resolved data dir and ``{class: folder or None when missing}``. Raises ``UsageError``
    when the data dir does not exist or is not a folder, or when a class folder is ambiguous.
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise UsageError(
            f"data folder {str(root)!r} does not exist",
            "give the folder that holds positive/ and negative/ (the unpacked dataset), "
            "or make a synthetic one with `crackops data synth DIR`",
        )
    if not root.is_dir():
        raise UsageError(
            f"{str(root)!r} is not a folder",
            "give the folder that holds positive/ and negative/, not a file or an archive (unpack it first)",
        )
    root = root.resolve()
    found: dict[str, list[Path]] = {c: [] for c in classes}
    try:
        entries = list(os.scandir(root))
    except OSError as e:
        raise UsageError(f"cannot read folder {str(root)!r}: {e.strerror or e}", "check its permissions") from None
    for entry in entries:
        low = entry.name.lower()
        if low not in found:
            continue
        try:
            is_dir = entry.is_dir()
        except OSError as e:
            raise UsageError(f"class folder {entry.path!r}: {_stat_problem(e)}",
                             f"make {entry.name}/ a real folder (or a link to one)") from None
        if is_dir:
            found[low].append(Path(entry.path))
    out: dict[str, Path | None] = {}
    for c, dirs in found.items():
        if len(dirs) > 1:
            names = ", ".join(sorted(d.name + "/" for d in dirs))
            raise UsageError(
                f"{str(root)!r} has more than one folder for class {c!r}: {names}",
                f"merge them into a single {c}/ folder",
            )
        out[c] = dirs[0] if dirs else None
    return root, out


def extra_folders(root: Path) -> list[str]:
    """Folders in a data dir besides the class folders (hidden ones aside): crackops trains two
    classes, so a third folder is a mistake to point out, not something to skip in silence."""
    out = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return out
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir and not entry.name.startswith(".") and entry.name.lower() not in CLASSES:
            out.append(entry.name)
    return sorted(out)


def extra_folders_problem(root: Path) -> tuple[str, str] | None:
    """(message, hint) about :func:`extra_folders`, or None."""
    extra = extra_folders(root)
    if not extra:
        return None
    names = ", ".join(f"{n}/" for n in extra[:5]) + (", ..." if len(extra) > 5 else "")
    return (f"{root} has {'a folder' if len(extra) == 1 else f'{len(extra)} folders'} besides positive/ and "
            f"negative/ ({names}): crackops trains these two classes only",
            "move the other folders out of the data folder (or merge them into positive/ or negative/)")


def _utf8(name: str) -> bool:
    """Whether a file name is valid UTF-8 (Python keeps other bytes as surrogates, which the
    split's fingerprints, the manifest and the predictions cannot write)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stat_problem(e: OSError) -> str:
    import errno

    if e.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself): not scanned"
    return f"cannot read it: {e.strerror or e}"


def list_class_files(class_dir: Path, cls: str) -> tuple[list[Path], list[FileInfo]]:
    """Files directly inside a class folder, sorted by name.

    Returns ``(candidates, rejected)``: candidates have an image extension; everything else (other
    extensions, hidden files, sub-folders) comes back as ``FileInfo`` entries with ``ok=False``.
    """
    candidates: list[Path] = []
    rejected: list[FileInfo] = []
    try:
        entries = sorted(os.scandir(class_dir), key=lambda e: e.name)
    except OSError as e:
        raise UsageError(f"cannot read folder {str(class_dir)!r}: {e.strerror or e}", "check its permissions") from None
    for entry in entries:
        path = os.path.abspath(entry.path)
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError as e:   # a symbolic link loop (ELOOP), a file gone meanwhile...
            rejected.append(FileInfo(path, cls, entry.name, kind="non-image", reason=_stat_problem(e)))
            continue
        if not _utf8(entry.name):
            rejected.append(FileInfo(path, cls, entry.name, kind="non-image",
                                     reason="file name is not valid UTF-8: not used (rename it)"))
            continue
        if is_dir:
            rejected.append(FileInfo(path, cls, entry.name, kind="folder",
                                     reason="folder inside a class folder: not scanned (images must sit directly in the class folder)"))
            continue
        if not is_file:
            rejected.append(FileInfo(path, cls, entry.name, kind="non-image", reason="not a regular file"))
            continue
        if entry.name.startswith("."):
            rejected.append(FileInfo(path, cls, entry.name, kind="non-image", reason="hidden file"))
        elif extension_problem(entry.name):
            rejected.append(FileInfo(path, cls, entry.name, kind="non-image", reason=extension_problem(entry.name)))
        else:
            candidates.append(Path(path))
    return candidates, rejected


def extension_problem(name: str) -> str | None:
    """Why a file named ``name`` is not taken for an image by its extension (None when it is): the
    one reason training's scan and ``predict`` give for such a file, however it was passed."""
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTS:
        return None
    what = f"extension {ext!r}" if ext else "no extension"
    return f"not an image file ({what}; accepted: jpg, jpeg, png, bmp, gif)"


def scan_one(path: str, cls: str, verify: bool = True) -> FileInfo:
    """Hash one file and (``verify``) check that it decodes completely. Never raises."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return FileInfo(path, cls, name, kind="unreadable", reason=f"cannot read file: {e.strerror or e}")
    digest = hashlib.sha256(data).hexdigest()
    base = dict(path=path, cls=cls, name=name, nbytes=len(data), sha256=digest)
    if not data:
        return FileInfo(**base, kind="non-image", reason="empty file (0 bytes)")
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():   # over Pillow's pixel limit: refused, not decoded
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return FileInfo(**base, kind="non-image", reason="not an image (content is not a format Pillow can read)")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return FileInfo(**base, kind="too-large", reason=f"decompression bomb: {_bomb_size(e)}, over the "
                        f"{Image.MAX_IMAGE_PIXELS:,} pixels images may have (not decoded)")
    except Exception as e:  # noqa: BLE001 - any decoder error means "not usable"
        return FileInfo(**base, kind="unreadable", reason=f"cannot open image: {_short(e)}")
    fmt = im.format or ""
    info = dict(base, format=fmt, width=im.width, height=im.height, mode=im.mode)
    if fmt not in ACCEPTED_FORMATS:
        return FileInfo(**info, kind="non-image",
                        reason=f"{fmt or 'unknown'} content is not supported for training (use JPEG, PNG, BMP or GIF)")
    if verify:
        try:
            if fmt in ("JPEG", "MPO"):
                # Decode at reduced scale: every byte is still read, so truncation is caught.
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        except Exception as e:  # noqa: BLE001
            return FileInfo(**info, kind="unreadable", reason=f"image does not decode: {_short(e)}")
        finally:
            im.close()
    return FileInfo(**info, ok=True, kind="image")


def _bomb_size(e: BaseException) -> str:
    import re

    m = re.search(r"\((\d+) pixels\)", str(e))
    return f"{int(m.group(1)):,} pixels" if m else "too many pixels"


def _short(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."


def _scan_chunk(items: list[tuple[str, str]], verify: bool) -> list[FileInfo]:
    return [scan_one(p, c, verify) for p, c in items]


def default_workers() -> int:
    """Cores this process may use: the job's allocation (``crackops.contract.allocated_cpus``)."""
    return allocated_cpus()


def scan_files(
    items: Iterable[tuple[str | os.PathLike, str]],
    *,
    verify: bool = True,
    progress: Progress | None = None,
    workers: int | None = None,
) -> list[FileInfo]:
    """Scan ``(path, class)`` pairs; results come back in the input order."""
    todo = [(os.path.abspath(p), c) for p, c in items]
    if not todo:
        return []
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(todo) < PARALLEL_MIN_FILES:
        out = []
        pending = 0
        for p, c in todo:
            out.append(scan_one(p, c, verify))
            pending += 1
            if progress and pending == 64:
                progress(pending)
                pending = 0
        if progress and pending:
            progress(pending)
        return out
    return _scan_parallel(todo, verify, progress, workers)


def _scan_parallel(todo: list[tuple[str, str]], verify: bool, progress: Progress | None, workers: int) -> list[FileInfo]:
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(32, min(CHUNK_SIZE, len(todo) // (workers * 4) or 1))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    results: list[list[FileInfo] | None] = [None] * len(chunks)
    try:
        for i, part in run_chunks(_scan_chunk, [(ch, verify) for ch in chunks], workers):
            results[i] = part
            if progress:
                progress(len(chunks[i]))
    except (BrokenProcessPool, OSError, RuntimeError):
        # Workers could not start or died (no /dev/shm, process limits, killed):
        # finish the remaining chunks here, one after the other. Slower, same result.
        for i, ch in enumerate(chunks):
            if results[i] is None:
                results[i] = _scan_chunk(ch, verify)
                if progress:
                    progress(len(ch))
    return [info for part in results for info in part]  # type: ignore[union-attr]


def scan_class_dirs(
    class_dirs: dict[str, Path | None],
    *,
    verify: bool = True,
    progress: Progress | None = None,
    workers: int | None = None,
    total_callback: Callable[[int], None] | None = None,
) -> list[FileInfo]:
    """List and scan every class folder. Returns one ``FileInfo`` per entry (usable or not),
    sorted by ``(class, name)``. ``total_callback(n)`` is told how many files will be scanned
    before scanning starts (for a progress bar)."""
    candidates: list[tuple[Path, str]] = []
    rejected: list[FileInfo] = []
    for cls, d in class_dirs.items():
        if d is None:
            continue
        c, r = list_class_files(d, cls)
        candidates.extend((p, cls) for p in c)
        rejected.extend(r)
    if total_callback:
        total_callback(len(candidates))
    scanned = scan_files(candidates, verify=verify, progress=progress, workers=workers)
    return sorted(scanned + rejected, key=lambda f: (f.cls, f.name))


def group_by_hash(infos: Iterable[FileInfo]) -> dict[str, list[FileInfo]]:
    """Files with a content hash grouped by it (every group, singletons included)."""
    groups: dict[str, list[FileInfo]] = {}
    for f in infos:
        if f.sha256:
            groups.setdefault(f.sha256, []).append(f)
    return groups
