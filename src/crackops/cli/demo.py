"""demo: synthetic data, two small runs differing in one setting, wait, collect, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crackops import api, output
from crackops.backends import help_text
from crackops.cli.app import command
from crackops.config import Resources, TrainConfig
from crackops.output import err
from crackops.paths import state_dir


@command("demo", epilog="Examples:\n\n  crackops demo\n\n  crackops demo --data ../shared/data/concrete-sample --image-size 96")
def demo(
    data: Annotated[Optional[str], typer.Option(help="Use this folder instead of generating synthetic images.")] = None,
    per_class: Annotated[int, typer.Option(help="Synthetic images per class.")] = 300,
    image_size: Annotated[int, typer.Option(help="Training image size (small is fast).")] = 64,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per run.")] = 8,
    backend: Annotated[str, typer.Option(help=help_text(), envvar="CRACKOPS_BACKEND")] = "local",
) -> None:
    """Train two small real runs that differ in one setting, wait, collect and compare them.

    The setting is BatchNorm momentum: crackops' auto choice against Keras' fixed 0.99, which on a
    few hundred images leaves evaluation-mode predictions near chance."""
    from crackops.cli.compare import print_human
    from crackops.cli.wait import wait_with_progress

    if data is None:
        from crackops.data.synth import synthesize

        data_dir = state_dir() / "demo-data" / f"synth-{per_class}-seed0"
        if not (data_dir / "positive").is_dir():
            err.print(f"generating {2 * per_class} synthetic concrete images in {data_dir} ...")
            synthesize(data_dir, n_per_class=per_class, size=96, seed=0)
        data = str(data_dir)
    resources = Resources(cpus=2, mem="4G", time="0:30:00", profile="demo")
    ids = []
    for momentum in (None, 0.99):
        cfg = TrainConfig(data_dir=data, image_size=image_size, epochs=epochs, bn_momentum=momentum,
                          batch_size=32, seed=42)
        run = api.submit(cfg, resources, backend=backend, name=f"demo-bn-{momentum or 'auto'}")
        ids.append(run.job_id)
        err.print(f"submitted {run.job_id} (bn_momentum={momentum or 'auto'}), log {run.log_out}")
    wait_with_progress(ids)
    for j in ids:
        rep = api.collect(j)
        if rep.run.state != "COMPLETED":
            err.print(f"[red]{j} ended {rep.run.state}: {rep.run.reason}[/red]")
            if rep.err_tail:
                err.print(rep.err_tail, markup=False)
    cmp = api.compare(ids)
    print_human(cmp)
    for w in cmp.warnings:
        output.warn(w)
    output.hint(f"artifacts: {Path(api.get_run(ids[0]).out_dir).parent}/<job_id>/   next: crackops compare, "
                f"crackops collect {ids[0]}")
