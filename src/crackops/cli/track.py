"""tensorboard, export mlflow: the runs where a lab already looks (``crackops.tracking``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from crackops import api, output
from crackops.cli.app import command, mount
from crackops.errors import UsageError
from crackops.output import err, out

SWEEP_HELP = "The runs of this sweep (name or id) instead of job ids."
SINCE_HELP = "Only runs submitted since then: 2025-11-24, 'today', 3d, 12h."


@command("tensorboard", epilog=(
    "Examples:\n\n  crackops tensorboard --sweep lr-grid\n\n  crackops tensorboard 1234 1235 --port 6007\n\n"
    "  crackops tensorboard --sweep lr-grid --print   (then: tensorboard --logdir_spec \"$(...)\" elsewhere)"))
def tensorboard(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="The runs (default: all).")] = None,
    sweep: Annotated[Optional[str], typer.Option(help=SWEEP_HELP)] = None,
    since: Annotated[Optional[str], typer.Option(help=SINCE_HELP)] = None,
    print_spec: Annotated[bool, typer.Option("--print", help="Print the --logdir_spec value and exit (to run TensorBoard elsewhere).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs' event folders and the spec as JSON and exit.")] = False,
    host: Annotated[str, typer.Option(help="Address TensorBoard listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port TensorBoard listens on.")] = 6006,
) -> None:
    """Start TensorBoard over exactly these runs' event files (out/JOB_ID/tensorboard/), each named
    JOB_ID-NAME; a requeued or resumed run is one continuous curve. Runs the foreground until Ctrl-C."""
    if print_spec and as_json:
        raise UsageError("--print or --json, not both", "--print: the spec alone; --json: the runs' folders too")
    if (print_spec or as_json) and (host, port) != ("127.0.0.1", 6006):
        raise UsageError("--host and --port are for the TensorBoard this command starts; --print and --json start none",
                         "drop them, or drop --print / --json")
    spec = api.tensorboard_logdirs(job_ids, sweep=sweep, since=since)
    if as_json:
        output.print_json(spec.to_dict())
        return
    if spec.missing:
        output.warn(f"no event files in {', '.join(spec.missing)} (made before crackops wrote them, "
                    "or with --tensorboard-every 0)")
    if print_spec:
        out.print(spec.spec, markup=False, highlight=False, soft_wrap=True)
        return
    from crackops.tracking.tensorboard import serve

    err.print(f"TensorBoard on {len(spec.logdirs)} runs: http://{host}:{port}/  (Ctrl-C ends it)")
    code = serve(spec, host=host, port=port)
    if code not in (0, 130):
        raise typer.Exit(code)


export_app = typer.Typer(no_args_is_help=True, help="Publish runs to an experiment tracker.")


@export_app.command("mlflow", epilog=(
    "Examples:\n\n  crackops export mlflow --sweep lr-grid --tracking-uri http://127.0.0.1:5000\n\n"
    "  MLFLOW_TRACKING_URI=http://mlflow.lab:5000 crackops export mlflow --since 3d\n\n"
    "  crackops export mlflow 1234 --tracking-uri sqlite:///mlflow.db --experiment cracks"))
def export_mlflow(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="The runs (default: all).")] = None,
    sweep: Annotated[Optional[str], typer.Option(help=SWEEP_HELP)] = None,
    since: Annotated[Optional[str], typer.Option(help=SINCE_HELP)] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(
        help="MLflow tracking server or store: http://HOST:5000, sqlite:///mlflow.db. [default: $MLFLOW_TRACKING_URI]")] = None,
    experiment: Annotated[Optional[str], typer.Option(
        help="MLflow experiment (created if missing). [default: $MLFLOW_EXPERIMENT_NAME, else crackops]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was exported as JSON.")] = False,
) -> None:
    """Export runs to MLflow: one MLflow run each with its config as params, every epoch's metrics
    as steps, the final train/val/test metrics, tags (job id, backend, Slurm state, attempts,
    efficiency, provenance) and the run's files as artifacts; a sweep becomes a parent run with its
    members nested. A second export updates the same MLflow runs (never duplicates). Needs
    `pip install 'crackops[mlflow]'`."""
    rep = api.export_mlflow(job_ids, sweep=sweep, since=since, tracking_uri=tracking_uri, experiment=experiment)
    if as_json:
        output.print_json(rep.to_dict())
        return
    t = Table(header_style="bold", title=f"MLflow experiment {rep.experiment} ({rep.experiment_id})")
    for col in ("job id", "name", "kind", "action", "MLflow run id"):
        t.add_column(col)
    for r in rep.runs:
        t.add_row(r.job_id or "-", r.name, r.kind, r.action, r.run_id)
    out.print(t)
    err.print(f"{len(rep.runs)} runs: {rep.count('created')} created, {rep.count('updated')} updated, "
              f"{rep.count('unchanged')} unchanged; {rep.total_calls} calls to {rep.tracking_uri} "
              f"in {rep.seconds:.1f} s")
    if rep.url():
        output.hint(f"open {rep.url()}")


mount(export_app, "export", "Publish runs to an experiment tracker: export mlflow.")
