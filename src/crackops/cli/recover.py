"""import: record runs from their out folders (a lost or damaged registry, runs from elsewhere)."""

from __future__ import annotations

from typing import Annotated

import typer

from crackops import api, output
from crackops.cli.app import command
from crackops.output import err, out


@command("import", epilog=(
    "Examples:\n\n  crackops import out\n\n  crackops import /scratch/old-machine/out out/1234 --json"))
def import_(
    out_dirs: Annotated[list[str], typer.Argument(
        help="Out folders (holding <job_id>/ folders) or single run folders.", metavar="OUT_DIR")],
    as_json: Annotated[bool, typer.Option("--json", help="What was imported and skipped, as JSON.")] = False,
) -> None:
    """Record every ended run found in OUT_DIR... that the registry does not have yet: a deleted or
    damaged registry, or runs copied from another machine, come back (states, config, provenance,
    and the completed runs' results, read and checked as `collect` does). Runs recorded already are
    skipped, so importing again records nothing new."""
    rep = api.import_runs(out_dirs)
    if as_json:
        output.print_json(rep.to_dict())
        return
    for r in rep.imported:
        out.print(f"imported {r.shown_id}  {output.state(r.state)}  {r.out_dir}", soft_wrap=True)
    for d, why in rep.skipped:
        err.print(f"skipped {d}: {why}", markup=False, soft_wrap=True)
    n, k = len(rep.imported), len(rep.skipped)
    err.print(f"{n} run{'s' if n != 1 else ''} imported, {k} skipped")
    if n:
        output.hint("see them: crackops status   |   crackops compare")

