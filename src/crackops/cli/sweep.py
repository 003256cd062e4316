"""sweep: a grid of config values times seeds as one command; the sweep views of status/compare."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from crackops import api, fmt, output
from crackops.cli.app import command
from crackops.cli.common import BACKEND_HELP, HOST_HELP, RETRIES_HELP, print_retried
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
        retries = api.check_retries(retries)   # checked as a sweep would be; said, since only a sweep keeps it
        if as_json:
            output.print_json({**plan.to_dict(), "out_root": out_dir, "retries": retries})
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
        output.hint("dry run: nothing was submitted or recorded"
                    + (f"; each run would have up to {retries} retries" if retries else "")
                    + (f"; artifacts in {out_dir}/<job_id>/" if out_dir else ""))
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


def print_sweep_status(name: str, as_json: bool, no_refresh: bool = False, as_csv: bool = False) -> None:
    """``crackops status --sweep NAME``."""
    from crackops.cli import rows
    from crackops.cli.common import _unread_results_hint, print_runs, raise_if_scheduler_down
    from crackops.sweeps import summarize

    handle = api.get_sweep(name)
    st = summarize(handle.sweep, handle.runs) if no_refresh else handle.status()
    if as_json:
        output.print_json({**st.to_dict(), "runs": [rows.run_row(r) for r in st.runs]})
        return raise_if_scheduler_down(st.scheduler_down)
    if as_csv:
        print_runs(st.runs, as_csv=True)
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
    print_runs(st.runs)
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


def print_effects(effects: list[dict]) -> None:
    """``compare --sweep NAME``'s "which settings matter" lines, after the tables."""
    out.print("[bold]which settings matter[/bold] (test accuracy, mean over the other keys and seeds):")
    for e in effects:
        vals = ", ".join(f"{_v(x['value'])}: {x['mean']:.2%}" if x["mean"] is not None else f"{_v(x['value'])}: -"
                         for x in e["values"])
        out.print(f"  {e['text']}  [dim]({vals})[/dim]", soft_wrap=True)


def wait_for_sweep(name: str, poll_s: float, timeout_s: float | None, as_json: bool) -> None:
    """``crackops wait --sweep NAME``: one line on stderr whenever the counts change, then the
    sweep's status; exits non-zero unless every run (last attempt) COMPLETED."""
    handle = api.get_sweep(name)
    seen: list[str] = []

    def show(st) -> None:
        print_retried(st.retried)
        line = ", ".join(f"{n} {k}" for k, n in st.counts.items() if n)
        if not seen or seen[-1] != line:
            seen.append(line)
            err.print(f"sweep {name}: {line}", markup=False, highlight=False)

    st = handle.wait(poll_s=poll_s, timeout_s=timeout_s, on_status=show)
    if as_json:
        from crackops.cli import rows

        output.print_json({**st.to_dict(), "runs": [rows.run_row(r) for r in st.runs]})
    else:
        print_sweep_status(name, False, no_refresh=True)
    bad = st.counts["failed"] + st.counts["cancelled"]
    if bad:
        from crackops.errors import StateError

        raise StateError(f"sweep {name}: {bad} of {len(st.runs) - st.reruns} runs did not complete",
                         f"see them: crackops status --sweep {name}; rerun them: crackops rerun --failed --sweep {name}")


@command("sweeps", epilog="Examples:\n\n  crackops sweeps\n\n  crackops sweeps --json")
def list_sweeps(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of sweeps, each with its counts.")] = False,
    no_refresh: Annotated[bool, typer.Option("--no-refresh", help="Show what the registry knows; ask no scheduler.")] = False,
) -> None:
    """List the recorded sweeps with their runs' counts (states refreshed first, one scheduler call
    for all of them)."""
    rows = api.sweep_overview(refresh_states=not no_refresh)
    if as_json:
        output.print_json([{"name": st.sweep.name, "sweep_id": st.sweep.sweep_id, "backend": st.sweep.backend,
                            "created_at": st.sweep.created_at, "runs": len(st.runs) - st.reruns,
                            "counts": st.counts, "reruns": st.reruns, "grid": st.sweep.grid,
                            "seeds": st.sweep.seeds} for st in rows])
    elif not rows:
        err.print("no sweeps yet. Start one: crackops sweep --data DIR --grid KEY=V1,V2 --seeds 2")
    else:
        t = Table(header_style="bold")
        for c in ("sweep", "id", "backend", "runs", "done", "failed", "running", "pending", "cancelled", "created"):
            t.add_column(c, justify="right" if c in ("runs", "done", "failed", "running", "pending", "cancelled") else "left")
        for st in rows:
            c = st.counts
            t.add_row(st.sweep.name, st.sweep.sweep_id, st.sweep.backend, str(len(st.runs) - st.reruns),
                      str(c["done"]), str(c["failed"]), str(c["running"]), str(c["pending"]), str(c["cancelled"]),
                      fmt.when(st.sweep.created_at))
        out.print(t)
    if rows:
        for w in rows[0].warnings:
            output.warn(w)
        from crackops.cli.common import raise_if_scheduler_down

        raise_if_scheduler_down(rows[0].scheduler_down)
