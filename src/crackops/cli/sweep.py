"""sweep: a grid of config values times seeds as one command; the sweep views of status/compare."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from crackops import api, fmt, output
from crackops.cli.app import command
from crackops.cli.runs import BACKEND_HELP, HOST_HELP, RETRIES_HELP, print_retried
from crackops.output import err, out

SWEEP_EPILOG = (
    "Examples:\n\n"
    "  crackops sweep --data datasets/concrete --grid learning_rate=1e-3,3e-4 --grid batch_size=32,64 --seeds 3\n\n"
    "  crackops sweep --backend slurm --data /scratch/concrete --grid image_size=96,150 --seeds 2 "
    "--max-parallel 4 --name size\n\n"
    "  crackops sweep --data data/synth --grid dropout=0.2,0.4 --epochs 2 --dry-run\n\n"
    "Then: crackops status --sweep NAME | crackops compare --sweep NAME | crackops cancel --sweep NAME"
)


@command("sweep", epilog=SWEEP_EPILOG)
def sweep(
    grid: Annotated[list[str], typer.Option(
        "--grid", "-g", help="KEY=V1,V2,... over any training setting (learning_rate, batch_size, image_size, "
                             "epochs, dropout, augment, ...) or resource (cpus, mem, time); repeatable: the "
                             "sweep is every combination.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Folder with positive/ and negative/ images.",
                                      envvar="CRACKOPS_DATA")] = "datasets/concrete",
    seeds: Annotated[int, typer.Option(help="Runs per grid point, seeds S, S+1, ... (S: --seed, default 42).")] = 1,
    max_parallel: Annotated[Optional[int], typer.Option(
        help="At most K runs at once (Slurm: the array's %K throttle; local: the queue). "
             "[default: local, what fits the CPUs; Slurm, no limit but the cluster's]")] = None,
    name: Annotated[Optional[str], typer.Option(help="The sweep's name (unique). [default: sweep-YYMMDD-HHMMSS]")] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP, envvar="CRACKOPS_BACKEND")] = "local",
    host: Annotated[Optional[str], typer.Option(help=HOST_HELP, envvar="CRACKOPS_HOST")] = None,
    profile: Annotated[str, typer.Option(help="Resource profile (see crackops profiles) or a .toml path.")] = "default",
    epochs: Annotated[Optional[int], typer.Option(help="Base setting for every run (a --grid key overrides).")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Base setting.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Base setting.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Base setting.")] = None,
    max_images: Annotated[Optional[int], typer.Option(help="Use at most N images per class (quick runs).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="The first seed. [default: 42]")] = None,
    test_dir: Annotated[Optional[str], typer.Option(help="Separate test folder.")] = None,
    cpus: Annotated[Optional[int], typer.Option(help="CPUs per run (overrides the profile).")] = None,
    mem: Annotated[Optional[str], typer.Option(help="Memory per run, e.g. 16G.")] = None,
    time_limit: Annotated[Optional[str], typer.Option("--time", help="Time limit per run, e.g. 4:00:00.")] = None,
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition.")] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", help="Artifacts go to OUT/<job_id>/. [default: ./out]")] = None,
    logs_dir: Annotated[Optional[str], typer.Option("--logs", help="Where the runs' .out/.err go. [default: ./logs]")] = None,
    retries: Annotated[Optional[int], typer.Option(help="Per run: " + RETRIES_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the runs (and the sbatch script); submit nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep (or the plan) as JSON.")] = False,
) -> None:
    """Submit a grid of settings times seeds as one sweep: Slurm job arrays (throttled, split at the
    cluster's MaxArraySize) or a local queue; one registry entry, every run recorded with its
    provenance. Everything is checked before anything is submitted."""
    import sys

    parsed = api.parse_grid(grid)
    resources, _ = api.resolve_resources(profile, cpus=cpus, mem=mem, time=time_limit, partition=partition, host=host)
    config = api.config_from_profile(profile, data_dir=data, test_dir=test_dir, epochs=epochs,
                                     image_size=image_size, batch_size=batch_size, learning_rate=learning_rate,
                                     max_images=max_images, seed=seed)
    if dry_run:
        plan = api.sweep_dry_run(config, parsed, seeds, resources, backend=backend, name=name,
                                 max_parallel=max_parallel, logs_dir=logs_dir)
        if as_json:
            output.print_json(plan.to_dict())
            return
        t = Table(header_style="bold", title=f"sweep {plan.name}: {len(plan.runs)} runs ({backend})")
        for c in ("#", "point", *plan.grid, "seed"):
            t.add_column(c)
        for r in plan.runs:
            t.add_row(str(r.index), f"p{r.point_index + 1}", *[_v(r.point[k]) for k in plan.grid], str(r.seed))
        out.print(t)
        if plan.arrays:
            out.print(f"{len(plan.arrays)} job array(s) (MaxArraySize {plan.array_size}): "
                      + ", ".join(f"{a['n']} runs" for a in plan.arrays)
                      + (f", at most {plan.max_parallel} at once" if plan.max_parallel else ""))
            out.print(f"sbatch script of the first array:\n{plan.script}", markup=False)
        else:
            out.print(plan.script, markup=False)
        output.hint("dry run: nothing was submitted or recorded")
        return
    handle = api.sweep(config, parsed, seeds, resources, backend=backend, name=name, max_parallel=max_parallel,
                       logs_dir=logs_dir, out_root=out_dir, retries=retries, argv=sys.argv)
    runs = handle.runs
    if as_json:
        output.print_json({"sweep": _sweep_dict(handle.sweep), "runs": [r.to_dict() for r in runs]})
        return
    out.print(handle.name)
    sw = handle.sweep
    arrays = sw.extra.get("arrays")
    how = (f"{len(arrays)} job array(s): " + ", ".join(a["array_id"] for a in arrays) if arrays
           else "local queue")
    limit = f", at most {sw.max_parallel} at once" if sw.max_parallel else ""
    err.print(f"submitted sweep [bold]{sw.name}[/bold]: {len(runs)} runs "
              f"({_npoints(sw)} grid points x {len(sw.seeds)} seeds) on {sw.backend}, {how}{limit}")
    output.hint(f"next: crackops status --sweep {sw.name}   |   crackops compare --sweep {sw.name}   |   "
                f"crackops cancel --sweep {sw.name}")


def _v(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _npoints(sw) -> int:
    n = 1
    for vals in sw.grid.values():
        n *= len(vals)
    return n


def _sweep_dict(sw) -> dict:
    d = sw.to_dict()
    d["extra"] = {k: v for k, v in d["extra"].items() if k != "packages"}
    return d


def print_sweep_status(name: str, as_json: bool, no_refresh: bool = False) -> None:
    """``crackops status --sweep NAME``."""
    from crackops.cli.runs import _status_table, _unread_results_hint, raise_if_scheduler_down
    from crackops.sweeps import summarize

    handle = api.get_sweep(name)
    st = summarize(handle.sweep, handle.runs) if no_refresh else handle.status()
    if as_json:
        output.print_json(st.to_dict())
        return raise_if_scheduler_down(st.scheduler_down)
    sw = st.sweep
    c = st.counts
    out.print(f"[bold]sweep {sw.name}[/bold] ({sw.sweep_id}, {sw.backend}): {len(st.runs)} runs, "
              f"{_npoints(sw)} grid points x {len(sw.seeds)} seeds"
              + (f", at most {sw.max_parallel} at once" if sw.max_parallel else ""))
    out.print("  " + "   ".join(f"{k} {v}" for k, v in c.items())
              + (f"   (and {st.reruns} earlier attempt{'s' if st.reruns != 1 else ''}, rerun)" if st.reruns else ""))
    e = st.elapsed
    out.print(f"  elapsed min {fmt.duration(e['min'])}  median {fmt.duration(e['median'])}  "
              f"max {fmt.duration(e['max'])}"
              + (f"   peak memory {fmt.mem(st.peak_mem_mb)}" if st.peak_mem_mb else ""))
    out.print(_status_table(st.runs))
    _unread_results_hint(st.runs, f"crackops compare --sweep {sw.name}")
    if st.code_changed:
        output.warn(f"{len(st.code_changed)} run(s) started with other crackops code than was installed at "
                    f"submit: {', '.join(st.code_changed[:5])}")
    print_retried(st.retried)
    if st.hint:
        output.hint(f"hint: {st.hint}")
    for w in st.warnings:
        output.warn(w)
    if st.sources:
        output.hint("states from: " + ", ".join(f"{b}: {s}" for b, s in st.sources.items())
                    + f" ({st.calls} scheduler call{'s' if st.calls != 1 else ''})")
    raise_if_scheduler_down(st.scheduler_down)


def print_sweep_compare(name: str, as_json: bool, sort: str | None = None) -> None:
    """``crackops compare --sweep NAME``: one row per grid point, mean ± std, which keys matter."""
    from crackops.cli.compare import print_human

    sc = api.get_sweep(name).compare(sort=sort)
    if as_json:
        output.print_json(sc.to_dict())
        return
    cmp = sc.comparison
    if not cmp.rows:
        err.print(f"sweep {name} has no runs")
        return
    print_human(cmp)
    if sc.effects:
        out.print("[bold]which settings matter[/bold] (test accuracy, mean over the other keys and seeds):")
        for e in sc.effects:
            vals = ", ".join(f"{_v(x['value'])}: {x['mean']:.2%}" if x["mean"] is not None else f"{_v(x['value'])}: -"
                             for x in e["values"])
            out.print(f"  {e['text']}  [dim]({vals})[/dim]", soft_wrap=True)
    for w in cmp.warnings:
        output.warn(w)
