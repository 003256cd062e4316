"""A tour of the Python API, the way a notebook would use it: submit, wait, collect, compare,
report, predict. Each step is one call of ``crackops.api``: the same functions the CLI calls.

    python examples/api_tour.py                      # the sample photos, or synthetic images
    python examples/api_tour.py --data DIR --report tour.html

Two small runs of the default training (64 px, 5 epochs) on 200 photos per class, one config with
two seeds: compare shows them as one seed group (mean ± std over the seeds). They run locally, in
the background, as detached processes; ``api.submit`` returns a handle whose ``result()`` waits for
the run and collects it. Runs, artifacts and logs go where CRACKOPS_HOME, CRACKOPS_OUT and
CRACKOPS_LOGS say (default ~/.crackops, ./out, ./logs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crackops import api
from crackops.errors import CrackopsError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "concrete-sample"


def data_dir(given: str | None) -> Path:
    """The folder asked for, the sample photos next to the repository, or synthetic images."""
    if given:
        return Path(given)
    if (SAMPLE / "positive").is_dir() and (SAMPLE / "negative").is_dir():
        return SAMPLE
    from crackops.data.synth import synthesize
    from crackops.paths import state_dir

    synth = state_dir() / "demo-data" / "api-tour-synth"
    if not (synth / "positive").is_dir():
        print(f"no sample photos: generating synthetic ones in {synth}", file=sys.stderr)
        synthesize(synth, n_per_class=60, size=96, seed=0)
    return synth


def tour(data: Path, report_path: Path) -> None:
    # 1. submit: the profile's [train] section, then our settings; resources from the same profile.
    #    The config is left alone, so the same config goes out again with another seed.
    config = api.config_from_profile("default", data_dir=str(data), max_images=200)
    resources, _ = api.resolve_resources("default", cpus=1, mem="2G", time="0:20:00")
    runs = [api.submit(config.with_overrides(seed=seed), resources, name=f"tour-seed{seed}") for seed in (1, 2)]
    ids = [r.job_id for r in runs]
    print(f"submitted {', '.join(ids)}")

    # 2. wait and 3. collect: each handle's result() waits for its run (a rerun followed), verifies
    #    every artifact and reads the metrics; it raises, with the reason, for a run that failed
    for run in runs:
        check = run.result(poll_s=2.0, timeout_s=900)
        m = check.run.metrics
        print(f"{run.job_id}: artifacts ok={check.ok}, test accuracy {m['test_accuracy']:.1%}, "
              f"{m['test_fn']} missed cracks and {m['test_fp']} false alarms of {m['test_n']} test photos")

    # 4. compare: rows, seed groups, the best run and a verdict, as the compare command shows them
    cmp = api.compare(ids)
    print(f"compare: best {cmp.best}; groups {[(g.id, g.n) for g in cmp.groups]}")
    for g in cmp.groups:
        acc = g.stats.get("test_accuracy") or {}
        if acc.get("mean") is not None:
            print(f"  {g.id}: test accuracy {acc['mean']:.1%} ± {acc.get('std') or 0:.1%} over seeds {g.seeds}")
    if cmp.verdict:
        print(f"  {cmp.verdict['text']}")

    # 5. report: one self-contained HTML file
    rep = api.report(ids, report_path)
    print(f"report: {rep.path}")

    # 6. predict with the first run's model (by job id) on a few photos of each class
    photos = [p for c in ("positive", "negative") for p in sorted((data / c).iterdir())[:3]]
    result = api.predict(ids[0], photos)
    for row in result.rows:
        prob = "-" if row["prob_crack"] is None else f"{row['prob_crack']:.3f}"
        print(f"  {Path(row['path']).parent.name}/{Path(row['path']).name}: P(crack) {prob} -> {row['label']}")
    print(f"predict: {len(result.ok)} of {len(result.rows)} photos, model {result.model_path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a folder with positive/ and negative/ (default: the sample photos)")
    ap.add_argument("--report", default="api-tour-report.html", help="the HTML report to write")
    args = ap.parse_args(argv)
    try:
        tour(data_dir(args.data), Path(args.report))
    except CrackopsError as e:                  # the one error type: a message and a hint
        print(f"error: {e.message}" + (f" (hint: {e.hint})" if e.hint else ""), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
