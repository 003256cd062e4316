"""``crackops data``: make a synthetic dataset, check a dataset before training on it."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crackops import output
from crackops.errors import EXIT_CHECK

app = typer.Typer(
    help=(
        "Make and check datasets (folders holding positive/ = cracks and negative/ = no cracks).\n\n"
        "Examples:  crackops data synth data/synth  ->  crackops data check data/synth"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

SHOW = 8  # paths listed per kind of problem in the tables (--json has them all)


def _consoles() -> tuple[Console, Console]:
    return Console(highlight=False, soft_wrap=False), Console(stderr=True, highlight=False)


def _progress(err: Console, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)



@app.command(
    "synth",
    epilog=(
        "Examples:\n\n"
        "  crackops data synth data/synth\n\n"
        "  crackops data synth data/synth-227 --per-class 1000 --size 227 --seed 1\n\n"
        "Then: crackops data check data/synth; crackops submit --data data/synth --image-size 64"
    ),
)
def synth(
    directory: Annotated[str, typer.Argument(metavar="DIR", help="New or empty folder to write positive/ and negative/ into.")],
    per_class: Annotated[int, typer.Option("--per-class", "-n", help="Images per class.")] = 200,
    size: Annotated[int, typer.Option("--size", help="Image width and height in pixels (the real data: 227).")] = 96,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same images (byte for byte).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON only.")] = False,
) -> None:
    """Write synthetic concrete photos: cracks in positive/, sound concrete in negative/.

    Concrete-like textures (grain, blotches, pores, voids, uneven light); each positive has one or
    more dark cracks of varying width and contrast. Small and fast, for demos and tests: a small
    CNN learns them at 64 px in a few epochs. Refuses a folder that holds anything else.
    """
    from crackops.data.synth import synthesize

    out, err = _consoles()
    with _progress(err, "generating") as bar:
        task = bar.add_task("generating", total=2 * max(per_class, 0))
        result = synthesize(directory, n_per_class=per_class, size=size, seed=seed,
                            progress=lambda n: bar.advance(task, n))
    if as_json:
        output.print_json(result)
        return
    out.print(f"wrote {result['files']:,} images ({per_class:,} positive, {per_class:,} negative, "
              f"{size}x{size} px, seed {seed}, {result['bytes'] / 1e6:.1f} MB) to {result['out_dir']} "
              f"in {result['seconds']:.1f} s")
    err.print(f"[dim]next: crackops data check {directory}   or   crackops submit --data {directory} --image-size 64[/dim]")


def _rel(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path


def _n(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _hist_text(h: dict[str, int], top: int = 4) -> str:
    items = list(h.items())
    text = ", ".join(f"{k} ({v:,})" for k, v in items[:top])
    if len(items) > top:
        text += f", +{len(items) - top} more"
    return text or "-"


def render_report(rep, out: Console) -> None:
    """Rich tables for a ``CheckReport``."""
    root = rep.data_dir
    t = Table(title=f"dataset {root}", title_justify="left")
    t.add_column("class")
    t.add_column("folder")
    t.add_column("entries", justify="right")
    t.add_column("usable images", justify="right")
    t.add_column("unreadable", justify="right")
    t.add_column("not images", justify="right")
    t.add_column("duplicate groups", justify="right")
    for cls in ("positive", "negative"):
        folder = rep.class_dirs.get(cls)
        prefix = (os.path.join(folder, "") if folder else None)

        def n_in(items, prefix=prefix):
            return sum(1 for it in items if prefix and it["path"].startswith(prefix))

        dups = sum(1 for g in rep.duplicates if prefix and g[0].startswith(prefix))
        usable = rep.counts.get(cls, 0)
        t.add_row(
            cls,
            _rel(folder, root) + "/" if folder else "[bold red]missing[/bold red]",
            f"{rep.files.get(cls, 0):,}",
            f"[bold red]0[/bold red]" if usable == 0 else f"{usable:,}",
            f"{n_in(rep.unreadable):,}",
            f"{n_in(rep.non_images):,}",
            f"{dups:,}",
        )
    out.print(t)

    s = Table(show_header=False, box=None, pad_edge=False)
    s.add_column(style="bold")
    s.add_column()
    s.add_row("image sizes", _hist_text(rep.sizes))
    s.add_row("colour modes", _hist_text(rep.modes))
    s.add_row("formats", _hist_text(rep.formats))
    ratio = "-" if rep.imbalance_ratio is None else f"{rep.imbalance_ratio:.2f}"
    s.add_row("class balance", f"{ratio} (larger class / smaller class)")
    s.add_row("duplicates", f"{_n(len(rep.duplicates), 'group')} of byte-identical images within a class "
                            f"({_n(rep.duplicate_files, 'extra copy', 'extra copies')})")
    s.add_row("label conflicts", f"{_n(len(rep.label_conflicts), 'group')} of byte-identical images across classes")
    s.add_row("scanned in", f"{rep.seconds:.1f} s")
    out.print(s)

    lists = [
        ("label conflicts (same image in both classes)", [" = ".join(_rel(p, root) for p in g) for g in rep.label_conflicts]),
        ("unreadable images", [f"{_rel(x['path'], root)}: {x['reason']}" for x in rep.unreadable]),
        ("files that are not usable images", [f"{_rel(x['path'], root)}: {x['reason']}" for x in rep.non_images]),
        ("duplicate groups", [" = ".join(_rel(p, root) for p in g) for g in rep.duplicates]),
    ]
    for title, rows in lists:
        if not rows:
            continue
        out.print(f"\n[bold]{title}[/bold] ({len(rows):,})")
        for r in rows[:SHOW]:
            out.print(f"  {r}", markup=False)
        if len(rows) > SHOW:
            out.print(f"  ... and {len(rows) - SHOW:,} more (--json lists them all)")

    out.print()
    for p in rep.problems:
        style = "bold red" if p["severity"] == "error" else "yellow"
        out.print(f"[{style}]{p['severity']}:[/{style}] {p['message']}")
    if rep.ok:
        n = sum(rep.counts.values())
        out.print(f"[bold green]ok[/bold green]: {n:,} usable images, ready to train"
                  + (" (see the warnings above)" if rep.problems else ""))
    else:
        n_err = sum(1 for p in rep.problems if p["severity"] == "error")
        out.print(f"[bold red]not ok[/bold red]: {_n(n_err, 'error')}; fix them before training")


@app.command(
    "check",
    epilog=(
        "Examples:\n\n"
        "  crackops data check datasets/concrete\n\n"
        "  crackops data check datasets/concrete --json > check.json\n\n"
        f"Exit code: 0 when the dataset is fit to train on, {EXIT_CHECK} when it is not."
    ),
)
def check(
    directory: Annotated[str, typer.Argument(metavar="DIR", help="Folder holding positive/ and negative/.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON only (every path listed).")] = False,
) -> None:
    """Check a dataset before training: what is in it and what would go wrong.

    Counts per class, image sizes and colour modes, corrupt or truncated images, files that are not
    images, byte-identical duplicates within a class and across classes (label conflicts), class
    balance. Every image is hashed and decoded, in parallel: 40,000 images take seconds.
    """
    from crackops.data.check import check_dataset

    out, err = _consoles()
    with _progress(err, "scanning") as bar:
        task = bar.add_task("scanning", total=None)
        rep = check_dataset(directory, progress=lambda n: bar.advance(task, n),
                            total=lambda n: bar.update(task, total=n))
    if as_json:
        output.print_json(rep.to_dict())
    else:
        render_report(rep, out)
    if not rep.ok:
        raise typer.Exit(EXIT_CHECK)
