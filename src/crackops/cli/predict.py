"""predict: crack probabilities for new photos, optionally with Grad-CAM heat maps."""

from __future__ import annotations

import csv
import os
import sys
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from crackops import api, output
from crackops.cli.app import command
from crackops.errors import CheckError, UsageError
from crackops.output import err, out

PROGRESS_MIN = 64   # show a progress bar from this many images on


def _display_path(p: str) -> str:
    try:
        rel = os.path.relpath(p)
    except ValueError:  # another drive (Windows)
        return p
    return p if rel.startswith("..") else rel


def _table(rows: list[dict[str, Any]], threshold: float, explain: bool) -> Table:
    t = Table(header_style="bold", title=f"crack probability (label: crack if >= {threshold:g})")
    t.add_column("path", overflow="fold")
    t.add_column("crack probability", justify="right", no_wrap=True)
    t.add_column("label", no_wrap=True)
    if explain:
        t.add_column("heat map", overflow="fold")
    if any(r["error"] for r in rows):
        t.add_column("problem", overflow="fold")
    for r in rows:
        if r["error"]:
            cells = [_display_path(r["path"]), "-", "[red]skipped[/red]"]
        else:
            style = "bold red" if r["label"] == "crack" else "green"
            cells = [_display_path(r["path"]), f"{r['prob_crack']:.4f}", f"[{style}]{r['label']}[/{style}]"]
        if explain:
            cells.append(_display_path(r["gradcam"]) if r.get("gradcam") else "-")
        if len(t.columns) > len(cells):
            cells.append(f"[red]{r['error']}[/red]" if r["error"] else "")
        t.add_row(*cells)
    return t


def _write_csv(rows: list[dict[str, Any]], explain: bool) -> None:
    cols = ["path", "prob_crack", "label", "error"] + (["gradcam"] if explain else [])
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        prob = "" if r["prob_crack"] is None else f"{r['prob_crack']:.6f}"
        vals = [r["path"], prob, r["label"] or "", r["error"] or ""]
        if explain:
            vals.append(r.get("gradcam") or "")
        w.writerow(vals)
    sys.stdout.flush()


class _Bar:
    """A rich progress bar on stderr, shown only for many images and only on a terminal."""

    def __init__(self, what: str):
        self.what = what
        self.prog = None
        self.task = None

    def total(self, n: int) -> None:
        if n >= PROGRESS_MIN and err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.prog = Progress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=err, transient=True)
            self.prog.start()
            self.task = self.prog.add_task(self.what, total=n)

    def advance(self, n: int) -> None:
        if self.prog is not None:
            self.prog.update(self.task, advance=n)

    def close(self) -> None:
        if self.prog is not None:
            self.prog.stop()
            self.prog = None


@command(
    "predict",
    epilog=(
        "Examples:\n\n"
        "  crackops predict 1234 photos/\n\n"
        "  crackops predict out/1234/best.h5 wall1.jpg wall2.png --threshold 0.8\n\n"
        "  crackops predict 1234 photos/ --csv > predictions.csv\n\n"
        "  crackops predict 1234 photos/ --json --explain heatmaps/\n\n"
        "Folders are searched recursively for .jpg/.jpeg/.png/.bmp/.gif files. Files that are not images or do "
        "not decode are listed as skipped (error column); the others are still predicted. Exit status 0 when at "
        "least one image was predicted, 6 when none could be."
    ),
)
def predict(
    model: Annotated[str, typer.Argument(metavar="MODEL_OR_JOB_ID",
                                         help="A finished run's job id (uses its best.h5), or a .h5/.keras model file.")],
    paths: Annotated[list[str], typer.Argument(metavar="PATHS...", help="Image files and/or folders of images.")],
    threshold: Annotated[float, typer.Option(help="Label 'crack' when the crack probability is at least this.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of {path, prob_crack, label, error} to stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV (path,prob_crack,label,error) to stdout.")] = False,
    explain: Annotated[Optional[str], typer.Option("--explain", metavar="DIR",
                                                   help="Write a Grad-CAM heat-map overlay <stem>_gradcam.png per image into DIR.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
) -> None:
    """Predict whether photos show a crack, with a trained model. Any image size: each photo is
    resized to the model's input size exactly as in training. Prints a table of path, crack
    probability and label; --explain also saves where the model sees the crack."""
    if as_json and as_csv:
        raise UsageError("--json and --csv both given", "pick one output format")

    def show_model(res) -> None:
        err.print(f"model {res.model_path}" + (f" (run {res.job_id})" if res.job_id else "")
                  + f", input {res.image_size}x{res.image_size}", soft_wrap=True)

    res = api.predict(model, paths, threshold=threshold, batch_size=batch_size, explain_dir=explain,
                      progress=_Bar, on_model=show_model)
    rows, ok, threshold = res.rows, res.ok, res.threshold
    if as_json:
        output.print_json(rows)
    elif as_csv:
        _write_csv(rows, bool(explain))
    else:
        out.print(_table(rows, threshold, bool(explain)))

    n_crack = sum(1 for r in ok if r["label"] == "crack")
    bad = res.skipped
    err.print(f"{len(ok)} image(s): {n_crack} crack, {len(ok) - n_crack} no crack (threshold {threshold:g})"
              + (f"; {len(bad)} file(s) skipped" if bad else ""), soft_wrap=True)
    if explain and ok:
        err.print(f"heat maps: {sum(1 for r in rows if r.get('gradcam'))} PNG(s) in {explain}", soft_wrap=True)
    if bad and (as_json or as_csv):
        for r in bad[:10]:
            output.warn(f"skipped {r['path']}: {r['error']}")
        if len(bad) > 10:
            output.warn(f"... and {len(bad) - 10} more (see the error column)")
    if not ok:
        raise CheckError("no image could be predicted", "every file was skipped: see why in the problem column (error field)")
