"""submit, status, collect, cancel, logs, wait, profiles."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from crackops import api, fmt, output
from crackops.cli.app import command
from crackops.cli.common import (BACKEND_HELP, HOST_HELP, RETRIES_HELP, _unread_results_hint,  # noqa: F401
                                 print_failure_tail, print_retried, print_runs, raise_if_scheduler_down)
from crackops.errors import CheckError, StateError, UsageError
from crackops.metrics import METRICS, SPLIT_METRICS
from crackops.output import err, out

def _parse_sbatch(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    extra = {}
    for it in items:
        if "=" not in it:
            raise UsageError(f"--sbatch {it!r} is not KEY=VALUE", "e.g. --sbatch constraint=avx512")
        k, v = it.split("=", 1)
        k = k.strip().lstrip("-").replace("-", "_")
        if k == "setup":   # not an sbatch option: shell lines, taken from a profile file only
            raise UsageError("--sbatch setup=... would run shell lines; --sbatch takes sbatch options",
                             "put setup lines in a profile's [resources.extra] (see crackops profiles)")
        extra[k] = v.strip()   # the value is checked by Resources.validate (one word, no newline)
    return extra


@command(
    "submit",
    epilog=(
        "Examples:\n\n"
        "  crackops submit --data datasets/concrete\n\n"
        "  crackops submit --data data/synth --epochs 5 --image-size 64 --name quick\n\n"
        "  crackops submit --backend slurm --profile default --data /scratch/concrete\n\n"
        "  crackops submit --backend slurm --cpus 8 --mem 32G --time 8:00:00 --partition gpu --gres gpu:1 --dry-run"
    ),
)
def submit(
    data: Annotated[str, typer.Option("--data", "-d", help="Folder with positive/ and negative/ images.",
                                      envvar="CRACKOPS_DATA")] = "datasets/concrete",
    test_dir: Annotated[Optional[str], typer.Option(help="Separate test folder (positive/ + negative/).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (the cosine schedule spans them; early stopping may end sooner). [default: 5; --profile seed: up to 20]")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Square input size in pixels. [default: 64; --profile seed: 150]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="[default: 64; --profile seed: 32]")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Adam learning rate. [default: 0.001]")] = None,
    bn_momentum: Annotated[Optional[float], typer.Option(help="BatchNorm momentum. [default: auto from steps per epoch, 0.99 on large data]")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="[default: 0.3]")] = None,
    es_patience: Annotated[Optional[int], typer.Option(help="EarlyStopping patience. [default: 3]")] = None,
    lr_patience: Annotated[Optional[int], typer.Option(help="ReduceLROnPlateau patience. [default: 2]")] = None,
    test_fraction: Annotated[Optional[float], typer.Option(help="[default: 0.2]")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Of the training part. [default: 0.1]")] = None,
    max_images: Annotated[Optional[int], typer.Option(help="Use at most N images per class (quick runs).")] = None,
    mixed_precision: Annotated[Optional[str], typer.Option(help="auto, off or bfloat16. [default: auto]")] = None,
    fused_batchnorm: Annotated[Optional[bool], typer.Option("--fused-batchnorm/--no-fused-batchnorm", help="Train BatchNorm on TensorFlow's fused kernel: same maths, up to 2x faster steps on CPU. [default: on]")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help="cosine (warm-up, then cosine decay to 0 over --epochs) or plateau (the seed's: halve on a plateau). [default: cosine]")] = None,
    warmup_epochs: Annotated[Optional[float], typer.Option(help="Cosine schedule: linear warm-up over this many epochs. [default: 0.3]")] = None,
    augment: Annotated[Optional[str], typer.Option(help="off, geometric (flips, 90-degree turns) or full (+ brightness, contrast, blur). [default: off]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Split and weight-init seed. [default: 42]")] = None,
    name: Annotated[Optional[str], typer.Option(help="A label for the run.")] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP, envvar="CRACKOPS_BACKEND")] = "local",
    host: Annotated[Optional[str], typer.Option(help=HOST_HELP, envvar="CRACKOPS_HOST")] = None,
    profile: Annotated[str, typer.Option(help="Resource profile (see crackops profiles) or a .toml path.")] = "default",
    cpus: Annotated[Optional[int], typer.Option(help="CPUs per task (overrides the profile).")] = None,
    mem: Annotated[Optional[str], typer.Option(help="Memory, e.g. 16G.")] = None,
    time_limit: Annotated[Optional[str], typer.Option("--time", help="Time limit, e.g. 4:00:00 or 1-00:00:00.")] = None,
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition.")] = None,
    account: Annotated[Optional[str], typer.Option(help="Slurm account.")] = None,
    qos: Annotated[Optional[str], typer.Option(help="Slurm QOS.")] = None,
    gres: Annotated[Optional[str], typer.Option(help="Slurm GRES, e.g. gpu:1.")] = None,
    sbatch: Annotated[Optional[list[str]], typer.Option(help="Extra sbatch option KEY=VALUE (repeatable).")] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", help="Artifacts go to OUT/<job_id>/. [default: ./out]")] = None,
    logs_dir: Annotated[Optional[str], typer.Option("--logs", help="Where cnn_crack_<job_id>.out/.err go. [default: ./logs]")] = None,
    no_requeue: Annotated[bool, typer.Option("--no-requeue", help="Slurm: never requeue (by default a run near its time limit or preempted is requeued and resumes, up to --max-attempts).")] = False,
    max_attempts: Annotated[Optional[int], typer.Option(help="Slurm: attempts in all, requeues included. [default: 3]")] = None,
    retries: Annotated[Optional[int], typer.Option(help=RETRIES_HELP)] = None,
    backup_minutes: Annotated[Optional[float], typer.Option(help="Also back up the training state inside an epoch after this many minutes without a backup, so that a killed or preempted run loses at most that much (0: at epoch ends only). [default: 10]")] = None,
    tensorboard_every: Annotated[Optional[int], typer.Option(help="TensorBoard: per-step loss and accuracy every N batches in OUT/<job_id>/tensorboard/ (per-epoch scalars always; 0: no event files). [default: 10]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be submitted; submit nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the recorded run as JSON.")] = False,
) -> None:
    """Start a training run (locally or on Slurm) and record it. Prints the job id and where its
    logs and artifacts go; the run goes on after this command returns."""
    resources, _ = api.resolve_resources(
        profile, cpus=cpus, mem=mem, time=time_limit, partition=partition, account=account, qos=qos,
        gres=gres, host=host, extra=_parse_sbatch(sbatch))
    config = api.config_from_profile(
        profile, data_dir=data, test_dir=test_dir, epochs=epochs, image_size=image_size, batch_size=batch_size,
        learning_rate=learning_rate, bn_momentum=bn_momentum, dropout=dropout, es_patience=es_patience,
        lr_patience=lr_patience, test_fraction=test_fraction, val_fraction=val_fraction,
        max_images=max_images, mixed_precision=mixed_precision, fused_batchnorm=fused_batchnorm, seed=seed,
        lr_schedule=lr_schedule, warmup_epochs=warmup_epochs, augment=augment,
        max_attempts=1 if no_requeue else max_attempts, backup_minutes=backup_minutes,
        tensorboard_every=tensorboard_every)
    if dry_run:   # checked as a submit would be; what only the registry would keep (name, retries) is said
        plan = api.dry_run(config, resources, backend=backend, logs_dir=logs_dir, check_data=True, out_root=out_dir)
        retries = api.check_retries(retries)
        if as_json:
            output.print_json({**plan.to_dict(), "name": name, "retries": retries})
        else:
            out.print(plan.script, markup=False)
            output.hint(f"dry run: nothing was submitted; it would be recorded as {name or 'unnamed'}"
                        + (f" with up to {retries} retries" if retries else "")
                        + f", artifacts in {plan.config.out_root}/<job_id>/")
        return
    run = api.submit(config, resources, backend=backend, name=name, logs_dir=logs_dir, out_root=out_dir,
                     retries=retries)
    if as_json:
        output.print_json(run.to_dict())
        return
    out.print(run.job_id)
    err.print(f"submitted [bold]{run.job_id}[/bold] ({backend}, {resources_text(backend, resources)})")
    if run.retries:
        err.print(f"  retries:   up to {run.retries} (OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, PREEMPTED)")
    err.print(f"  artifacts: {run.out_dir}")
    err.print(f"  logs:      {run.log_out}")
    err.print(f"             {run.log_err}")
    output.hint(f"next: crackops status {run.job_id}   |   crackops wait {run.job_id}   |   "
                f"crackops logs {run.job_id} --follow")


def resources_text(backend: str, res) -> str:
    """'4 CPU / 16G / 4:00:00', saying when the backend does not hold a job to them."""
    from crackops.backends import get_backend

    get = res.get if isinstance(res, dict) else lambda k: getattr(res, k, None)
    text = f"{get('cpus')} CPU / {get('mem')} / {get('time')}"
    return text if get_backend(backend).enforces_resources else text + ", not enforced locally"


def _print_run_detail(run) -> None:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("job id", run.job_id if run.shown_id == run.job_id else
              f"{run.job_id} (an older run with this id: name it {run.shown_id})")
    t.add_row("name", run.name or "-")
    t.add_row("state", output.state(run.state) + (f"  ({run.state_source})" if run.state_source else ""))
    if run.attempt:
        t.add_row("attempt", str(run.attempt))
    if run.continues:
        t.add_row("continues", run.continues)
    if run.retries:
        t.add_row("retries", f"{run.retries} left (--retries)")
    elif (run.extra or {}).get("not_retried"):
        t.add_row("retries", f"not retried: {run.extra['not_retried']}")
    if run.reason:
        t.add_row("reason", run.reason)
    if run.exit_code:
        t.add_row("exit code", run.exit_code)
    t.add_row("backend", run.backend)
    res = run.resources
    t.add_row("resources", f"{resources_text(run.backend, res)}, profile {res.get('profile')}")
    t.add_row("submitted", fmt.when(run.submitted_at))
    t.add_row("elapsed", fmt.duration(run.elapsed_s))
    t.add_row("artifacts", run.out_dir)
    pv = run.provenance or {}
    if pv:
        code = pv.get("crackops") or {}
        git = pv.get("git") or {}
        bits = [f"crackops {code.get('version')} ({(code.get('source_sha256') or '')[:12]})"]
        if git.get("commit"):
            bits.append(f"git {git['commit'][:12]}{' dirty' if git.get('dirty') else ''}")
        for k, d in (pv.get("dataset") or {}).items():
            bits.append(f"{k} {d.get('files')} files {d.get('sha256', '')[:12]}")
        t.add_row("provenance", ", ".join(bits))
        if pv.get("code_changed"):
            t.add_row("[yellow]code changed[/yellow]", "the job started with other crackops code than was "
                      "installed at submit (see provenance.json in its artifacts)")
    t.add_row("logs", f"{run.log_out}\n{run.log_err}")
    acct = run.accounting or {}
    if acct:
        bits = [f"{m.label} {m.format(m.value(run))}" for m in METRICS
                if m.source == "accounting" and m.value(run) is not None]
        if bits:
            t.add_row("efficiency", ", ".join(bits))
        for h in acct.get("hints") or []:
            t.add_row("hint", h)
    m = run.metrics or {}
    if m.get("test_accuracy") is not None:
        t.add_row("test", ", ".join(f"{mt.split_title} {mt.format(mt.value(run), detail=True)}"
                                    for mt in SPLIT_METRICS if mt.kind != "int" and mt.key != "test_roc_auc"))
    out.print(t)


@command("status", epilog="Examples:\n\n  crackops status\n\n  crackops status 1234 --json\n\n  crackops status --limit 20")
def status(
    job_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to show (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of runs (job_id, state, ...).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="One CSV row per run (the table's columns, raw values).")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Only the N most recent runs.")] = None,
    no_refresh: Annotated[bool, typer.Option("--no-refresh", help="Show what the registry knows; ask no scheduler.")] = False,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="One sweep: counts, elapsed, its runs.")] = None,
) -> None:
    """Show runs and their states, refreshed from the backends (one sacct call for all Slurm runs).

    Exits 5 when the Slurm controller does not answer (slurmctld down or restarting): the runs are
    still shown, unfinished ones as last reported; they keep running.

    Runs submitted with --retries that ended OUT_OF_MEMORY / TIMEOUT / NODE_FAIL / PREEMPTED are
    rerun now (once, whichever crackops process sees them first); each rerun is said on stderr."""
    if as_json and as_csv:
        raise UsageError("--json and --csv both print to stdout", "pick one")
    if sweep:
        if job_ids:
            raise UsageError("give job ids or --sweep, not both", f"crackops status --sweep {sweep}")
        if limit is not None:
            raise UsageError("--limit does not apply to --sweep: a sweep's status counts all its runs",
                             f"crackops status --sweep {sweep}")
        from crackops.cli.sweep import print_sweep_status

        return print_sweep_status(sweep, as_json, no_refresh, as_csv=as_csv)
    rep = api.status(job_ids, refresh_states=not no_refresh, limit=limit)
    if as_json or as_csv:
        print_runs(rep.runs, as_json, as_csv)
    elif job_ids and len(rep.runs) == 1:
        run = rep.runs[0]
        _print_run_detail(run)
        if run.terminal and run.state != "COMPLETED":
            print_failure_tail(run)
    elif not rep.runs:
        err.print("no runs yet. Start one: crackops submit --data DIR   (or try: crackops demo)")
        from crackops.importer import count_run_folders
        from crackops.paths import default_out_root

        found = count_run_folders(default_out_root())
        if found:
            output.hint(f"{found} run folder{'s' if found != 1 else ''} in {default_out_root()}: a lost registry? "
                        f"crackops import {default_out_root()} records them again")
    else:
        print_runs(rep.runs)
        _unread_results_hint(rep.runs, "crackops compare")
    print_retried(rep.retried)
    for w in rep.warnings:
        output.warn(w)
    if rep.sources and not (as_json or as_csv):
        output.hint("states from: " + ", ".join(f"{b}: {s}" for b, s in rep.sources.items()))
    raise_if_scheduler_down(rep.scheduler_down)


@command("collect", epilog="Examples:\n\n  crackops collect 1234\n\n  crackops collect L251125-101500-a3f1 --json")
def collect(
    job_id: Annotated[str, typer.Argument(help="The run to collect.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify a finished run's artifacts (missing? corrupt?), read its metrics into the registry and
    show them. For a failed run, show why."""
    rep = api.collect(job_id)
    if rep.fetched:   # a remote run: its folder was copied here first
        f = rep.fetched
        err.print(f"copied {fmt.mem((f.get('bytes') or 0) / 2**20)} ({f.get('files', 0)} files) from {f.get('from', 'the host')}")
    if as_json:
        output.print_json(rep.to_dict())
    else:
        run, a = rep.run, rep.artifacts
        out.print(f"[bold]{run.job_id}[/bold]  {output.state(run.state)}  {a.out_dir}")
        t = Table(header_style="bold")
        t.add_column("artifact")
        t.add_column("check")
        from crackops.artifacts import EXPECTED

        for n in EXPECTED:
            t.add_row(n, "[green]ok[/green]" if n in a.present else
                      (f"[red]corrupt: {a.corrupt[n]}[/red]" if n in a.corrupt else "[red]missing[/red]"))
        out.print(t)
        m = run.metrics
        if m and run.state == "COMPLETED":   # an INCOMPLETE run's numbers are no result
            mt = Table(header_style="bold", title="metrics (crack = positive class)")
            shown = [x for x in SPLIT_METRICS if x.kind != "int"]   # the counts are in "errors"
            for c in ["split", shown[0].split_title, "errors"] + [x.split_title for x in shown[1:]]:
                mt.add_column(c, justify="right")
            for split in ("train", "val", "test"):
                if m.get(f"{split}_n") is None:
                    continue
                cells = [x.format(m.get(x.split_key(split)), detail=True) for x in shown]
                mt.add_row(split, cells[0], f"{m[f'{split}_errors']} / {m[f'{split}_n']}", *cells[1:])
            out.print(mt)
            out.print(f"epochs run {m.get('epochs_run')} (best {m.get('best_epoch')}), wall time "
                      f"{fmt.duration(m.get('wall_time_s'))}")
        tr = rep.tracking   # the profile's [tracking]: exported to MLflow as it was collected
        if tr and tr.get("error"):
            output.warn(f"not exported to MLflow ({tr['tracking_uri']}): {tr['error']}")
        elif tr:
            err.print(f"MLflow: {tr['action']} run {tr['run_id']} in {tr['experiment']}"
                      + (f"  {tr['url']}" if tr.get("url") else ""))
    if rep.run.state not in ("COMPLETED", "INCOMPLETE"):
        reason = rep.run.reason
        if not as_json:
            print_failure_tail(rep.run, text=rep.err_tail)
            if reason and reason in rep.err_tail:   # the exception, just shown: said once
                reason = None
        raise StateError(f"run {job_id} did not complete: {rep.run.state}" + (f" ({reason})" if reason else ""),
                         f"full log: crackops logs {job_id} --err")
    if not rep.artifacts.ok:
        raise CheckError(f"run {job_id} is {rep.run.state}: artifacts {rep.artifacts.summary()}",
                         f"look in {rep.artifacts.out_dir}")


@command("cancel", epilog="Examples:\n\n  crackops cancel 1234 1235\n\n  crackops cancel --sweep lr-bs")
def cancel(job_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to cancel.")] = None,
           sweep: Annotated[Optional[str], typer.Option("--sweep", help="Cancel every unfinished run of this sweep.")] = None) -> None:
    """Cancel runs that have not finished (scancel on Slurm, SIGTERM locally)."""
    if sweep:
        if job_ids:
            raise UsageError("give job ids or --sweep, not both", f"crackops cancel --sweep {sweep}")
        job_ids = api.get_sweep(sweep).job_ids
    if not job_ids:
        raise UsageError("no runs given", "pass job ids, or --sweep NAME")
    done = api.cancel(job_ids)
    for r in done:
        out.print(r.shown_id)
    skipped = set(job_ids) - {r.shown_id for r in done} - {r.job_id for r in done}
    if skipped:
        ended = api.status(sorted(skipped), refresh_states=False).runs
        output.hint("already ended, nothing to cancel: " + ", ".join(f"{r.shown_id} ({r.state})" for r in ended))
    if any(r.terminal for r in done):
        output.hint("cancelled: " + ", ".join(f"{r.shown_id} ({r.state})" for r in done if r.terminal))
    if any(not r.terminal for r in done):
        output.hint("cancel sent; the state turns CANCELLED once the scheduler has ended "
                    + ", ".join(r.shown_id for r in done if not r.terminal) + " (see crackops status)")


@command("logs", epilog="Examples:\n\n  crackops logs 1234\n\n  crackops logs 1234 --err\n\n  crackops logs 1234 --follow")
def logs(
    job_id: Annotated[str, typer.Argument(help="The run whose log to show.")],
    err_log: Annotated[bool, typer.Option("--err", help="The error log (.err) instead of the output log (.out).")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    lines: Annotated[Optional[int], typer.Option("--tail", "-n", help="Only the last N lines.")] = None,
) -> None:
    """Print a run's log file (cnn_crack_<job_id>.out or .err)."""
    for chunk in api.run(job_id).logs(err=err_log, follow=follow, tail=lines):
        sys.stdout.write(chunk)
        sys.stdout.flush()


@command("profiles", epilog="Examples:\n\n  crackops profiles\n\n  crackops profiles --json")
def profiles(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List resource profiles (`templates/*.toml` and `$CRACKOPS_HOME/profiles/*.toml`)."""
    rows = api.profiles()
    if as_json:
        output.print_json(rows)
        return
    t = Table(header_style="bold")
    for c in ("profile", "CPUs", "memory", "time", "partition", "train settings", "file"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], str(r["cpus"]), r["mem"], r["time"], r["partition"] or "-",
                  ", ".join(f"{k}={v}" for k, v in r["train"].items()) or "-", r["path"])
    out.print(t)
