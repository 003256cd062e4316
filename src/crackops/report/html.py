"""The HTML run report: one self-contained file (CSS inline, images as data: URIs, no scripts).

For each run: what it is (state, config, resources), its metrics on train/val/test, confusion
matrices, training curves, Slurm efficiency, and a grid of the test images it got wrong (missed
cracks first, the most confidently wrong first) with their crack probabilities. With several runs,
a comparison (seed groups, the winner, a figure) comes first.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from crackops import __version__, artifacts, contract, fmt
from crackops.compare import Comparison, compare_runs
from crackops.metrics import METRICS, SPLIT_METRICS
from crackops.registry import Run

MAX_ERRORS = 48       # misclassified thumbnails per run
THUMB_PX = 150
SPLITS = ("train", "val", "test")


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def value(x: Any) -> str:
    """A config value as typed: floats short (1e-06, 0.001), None as None."""
    return esc(f"{x:g}" if isinstance(x, float) else str(x))


pct, num, when = fmt.pct, fmt.num, fmt.when


def duration(s: Any) -> str:
    return fmt.duration(s)


def hms(s: Any) -> str:
    """Slurm's H:MM:SS (limits and elapsed times next to each other read the same)."""
    return fmt.duration(s, "slurm")


def png_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# ------------------------------------------------------------------------------------------ run data

@dataclass
class Misclassified:
    path: str
    label: int
    prob: float

    @property
    def kind(self) -> str:
        return "missed crack" if self.label == 1 else "false alarm"


def split_metrics(run: Run, manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """{"train": {...}, "val": {...}, "test": {...}} from the manifest, else from the registry row."""
    if manifest and manifest.get("metrics"):
        return {s: m for s, m in manifest["metrics"].items() if m}
    out: dict[str, dict[str, Any]] = {}
    for k, v in (run.metrics or {}).items():
        for s in SPLITS:
            if k.startswith(s + "_"):
                out.setdefault(s, {})[k[len(s) + 1:]] = v
    return out


def misclassified(out_dir: str | Path, threshold: float = 0.5) -> tuple[list[Misclassified], int]:
    """The test images on the wrong side of ``threshold``: missed cracks (most confidently missed
    first), then false alarms (most confident first). Also returns how many test rows were read."""
    p = Path(out_dir) / contract.PREDICTIONS
    if not p.is_file():
        return [], 0
    fn, fp, n = [], [], 0
    with open(p, newline="") as f:
        for rec in csv.DictReader(f):
            try:
                label, prob = int(rec["label"]), float(rec["prob_crack"])
            except (KeyError, TypeError, ValueError):
                continue
            n += 1
            if label == 1 and prob < threshold:
                fn.append(Misclassified(rec["path"], label, prob))
            elif label == 0 and prob >= threshold:
                fp.append(Misclassified(rec["path"], label, prob))
    fn.sort(key=lambda m: m.prob)
    fp.sort(key=lambda m: -m.prob)
    return fn + fp, n


def thumbnail(path: str, px: int = THUMB_PX) -> str | None:
    """A JPEG data: URI of the image scaled to fit px x px, or None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except Exception:  # missing, moved or broken image: the tile says so
        return None
    return png_uri(buf.getvalue(), "image/jpeg")


# ------------------------------------------------------------------------------------------ pieces

CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --good:#127a3e; --bad:#b42318;
        --accent:#1f5fbf; --diff:#fff4d6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:18px 32px; }
header h1 { margin:0; font-size:22px; } header p { margin:4px 0 0; color:#c9cfdb; }
header a { color:#c9dcff; }
main { max-width:1400px; margin:0 auto; padding:16px 32px 48px; }
section.run, section.compare { background:#fff; border:1px solid var(--line); border-radius:10px;
       padding:18px 22px; margin:18px 0; }
h2 { margin:0 0 6px; font-size:19px; } h3 { margin:22px 0 8px; font-size:15px; color:#344054; }
.sub { color:var(--muted); margin:0 0 10px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
         vertical-align:middle; background:#eef2f6; }
.COMPLETED { background:#dcfae6; color:var(--good); } .FAILED,.TIMEOUT,.OUT_OF_MEMORY,.NODE_FAIL
{ background:#fee4e2; color:var(--bad); } .CANCELLED { background:#f4ebff; color:#6941c6; }
.RUNNING,.PENDING { background:#e0f2fe; color:#026aa2; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:10px 0 4px; }
.card { border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:128px; }
.card .v { font-size:22px; font-weight:650; } .card .k { color:var(--muted); font-size:12px; }
.card.warn .v { color:var(--bad); }
table { border-collapse:collapse; margin:4px 0; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:4px 9px; text-align:right; white-space:nowrap; }
.scroll { overflow-x:auto; max-width:100%; }
th { background:#f9fafb; font-weight:600; } td.l, th.l { text-align:left; }
tr.best td { background:#ecfdf3; font-weight:600; }
table.compact { font-size:12.5px; } table.compact th, table.compact td { padding:3px 6px; }
table.compact th { white-space:normal; vertical-align:bottom; }
tr.diff td { background:var(--diff); }
.cols { display:flex; flex-wrap:wrap; gap:28px; align-items:flex-start; }
table.cm td { width:112px; height:64px; text-align:center; border:2px solid #fff; font-size:18px;
              font-weight:600; }
table.cm td small { display:block; font-size:11px; font-weight:400; }
table.cm th { background:none; border:none; font-weight:500; color:var(--muted); }
img.plot { max-width:100%; border:1px solid var(--line); border-radius:6px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(166px,1fr)); gap:10px; }
.tile { border:1px solid var(--line); border-radius:8px; padding:6px; text-align:center; font-size:12px; }
.tile img { width:150px; height:150px; object-fit:contain; background:#eee; border-radius:4px; }
.tile .noimg { width:150px; height:150px; margin:0 auto; display:flex; align-items:center;
               justify-content:center; background:#eee; color:var(--muted); border-radius:4px; }
.tile.fn { border-color:#f04438; } .tile.fp { border-color:#f79009; }
.tile .kind { font-weight:650; } .tile.fn .kind { color:var(--bad); } .tile.fp .kind { color:#b54708; }
.tile .path { color:var(--muted); overflow-wrap:anywhere; }
.bar { height:6px; background:#eaecf0; border-radius:3px; margin:3px 0; }
.bar span { display:block; height:6px; border-radius:3px; background:var(--accent); }
pre { background:#101828; color:#e4e7ec; padding:10px 12px; border-radius:6px; overflow:auto;
      font-size:12px; max-height:360px; }
.verdict { font-size:15px; padding:10px 14px; border-left:4px solid var(--good); background:#f6fef9; }
.warn { color:#b54708; } ul.hints li { margin:2px 0; }
nav a { margin-right:14px; }
footer { color:var(--muted); font-size:12px; text-align:center; }
"""


def _table(headers: list[str], rows: Iterable[list[str]], left: int = 1, classes: Iterable[str] | None = None,
           cls: str = "") -> str:
    """``rows`` cells are HTML already."""
    h = "".join(f'<th class="l">{esc(x)}</th>' if i < left else f"<th>{esc(x)}</th>" for i, x in enumerate(headers))
    body = []
    classes = list(classes) if classes is not None else []
    for j, r in enumerate(rows):
        c = classes[j] if j < len(classes) and classes[j] else ""
        cells = "".join(f'<td class="l">{x}</td>' if i < left else f"<td>{x}</td>" for i, x in enumerate(r))
        body.append(f'<tr class="{c}">{cells}</tr>' if c else f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{h}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _confusion(m: dict[str, Any], split: str) -> str:
    cells = {"tn": ("true negative", "sound, said sound"), "fp": ("false alarm", "sound, said crack"),
             "fn": ("missed crack", "crack, said sound"), "tp": ("crack found", "crack, said crack")}
    vmax = max(1, *(int(m.get(k) or 0) for k in cells))

    def td(k: str) -> str:
        v = int(m.get(k) or 0)
        bad = k in ("fp", "fn")
        a = 0.08 + 0.8 * v / vmax
        bg = f"rgba(180,35,24,{a:.2f})" if bad else f"rgba(31,95,191,{a:.2f})"
        fg = "#fff" if a > 0.45 else "#1d2330"
        return (f'<td style="background:{bg};color:{fg}" title="{esc(cells[k][1])}">{v:,}'
                f"<small>{esc(cells[k][0])}</small></td>")

    return (f'<div><table class="cm"><caption>{esc(split)}: accuracy {pct(m.get("accuracy"))}, '
            f'{m.get("errors", "?")} errors of {m.get("n", "?")}</caption>'
            '<tr><th></th><th>predicted sound</th><th>predicted crack</th></tr>'
            f'<tr><th>true sound</th>{td("tn")}{td("fp")}</tr>'
            f'<tr><th>true crack</th>{td("fn")}{td("tp")}</tr></table></div>')


def _cards(test: dict[str, Any]) -> str:
    def card(k: str, v: str, warn: bool = False) -> str:
        return f'<div class="card{" warn" if warn else ""}"><div class="v">{v}</div><div class="k">{esc(k)}</div></div>'

    cards = [m for m in METRICS if m.card]
    return ('<div class="cards">' + "".join(
        card(m.title, esc(m.format(m.split_value(test), detail=True)),
             m.better == "low" and m.kind == "int" and bool(test.get(m.split)))
        for m in cards) + "</div>")


def _metrics_table(sm: dict[str, dict[str, Any]]) -> str:
    shown = SPLIT_METRICS
    rows = []
    for s in SPLITS:
        m = sm.get(s)
        if not m:
            continue
        cells = [esc(x.format(m.get(x.split), detail=True)) for x in shown]
        rows.append([esc(s), esc(m.get("n")), cells[0], f"{esc(m.get('errors'))}", *cells[1:]])
    return _table(["split", "images", shown[0].split_title, "errors", *[x.split_title for x in shown[1:]]], rows)


def _config_table(config: dict[str, Any], differing: set[str]) -> str:
    keys = sorted(k for k in config if k not in ("job_id",))
    keys.sort(key=lambda k: k not in differing)
    rows = [[esc(k), value(config[k])] for k in keys]
    return _table(["setting", "value"], rows, left=2, classes=["diff" if k in differing else "" for k in keys])


def _efficiency(run: Run, manifest: dict[str, Any] | None) -> str:
    a = run.accounting or {}
    res = run.resources or {}
    parts = [f'<p class="sub">asked for {esc(res.get("cpus", "?"))} CPU, {esc(res.get("mem", "?"))} memory, '
             f'{esc(res.get("time", "?"))} time (profile {esc(res.get("profile", "-"))})</p>']
    if a:
        def bar(v: Any) -> str:
            if v is None:
                return ""
            w = max(0.0, min(1.0, float(v))) * 100
            return f'<div class="bar"><span style="width:{w:.0f}%"></span></div>'

        def mb(v: Any) -> str:
            return fmt.mem(v, missing="-")

        rows = [
            ["CPU efficiency", pct(a.get("cpu_eff"), 0) + bar(a.get("cpu_eff")),
             f"CPU time {hms(a.get('total_cpu_s'))} of {esc(a.get('alloc_cpus', '?'))} CPUs × "
             f"{hms(a.get('elapsed_s'))}"],
            ["memory efficiency", pct(a.get("mem_eff"), 0) + bar(a.get("mem_eff")),
             f"peak {mb(a.get('max_rss_mb'))} of {mb(a.get('req_mem_mb'))} asked"],
            ["time used", pct(a.get("time_eff"), 0) + bar(a.get("time_eff")),
             f"{hms(a.get('elapsed_s'))} of a {hms(a.get('timelimit_s'))} limit"],
        ]
        parts.append(_table(["", "efficiency", "from sacct"], rows, left=1))
        hints = a.get("hints") or []
        if hints:
            parts.append('<ul class="hints">' + "".join(f'<li class="warn">{esc(h)}</li>' for h in hints) + "</ul>")
    else:
        parts.append('<p class="sub">no Slurm accounting for this run'
                     + (" (not reported yet)" if measures_usage(run.backend) else f" (it ran on {esc(run.backend)}, "
                        "which does not measure it)") + ".</p>")
    rt = (manifest or {}).get("runtime") or {}
    if rt:
        ips = rt.get("train_images_per_s")
        parts.append(f'<p class="sub">host {esc(rt.get("host", "?"))}, {esc(rt.get("cpus", "?"))} CPUs seen by '
                     f'TensorFlow, precision {esc(rt.get("precision_policy", "?"))}, fit {duration(rt.get("fit_s"))}'
                     + (f", {ips:.0f} training images/s" if ips else "") + "</p>")
    return "".join(parts)


def _errors_grid(run: Run, manifest: dict[str, Any] | None, test: dict[str, Any], max_errors: int) -> str:
    thr = float(test.get("threshold", 0.5) or 0.5)
    preds = Path(run.out_dir) / contract.PREDICTIONS
    if not preds.is_file():
        return f'<p class="sub">no {contract.PREDICTIONS} in the run folder: no image grid.</p>'
    problem = artifacts.predictions_problem(preds, manifest or {"metrics": {"test": test}})
    if problem:
        return (f'<p class="warn">{contract.PREDICTIONS} does not match this run\'s test results '
                f'({esc(problem)}): no image grid.</p>')
    wrong, n = misclassified(run.out_dir, thr)
    if not wrong:
        return f'<p class="sub">every one of the {n} test images is right.</p>'
    n_fn = sum(1 for w in wrong if w.label == 1)
    tiles = []
    for w in wrong[:max_errors]:
        uri = thumbnail(w.path)
        img = (f'<img src="{uri}" alt="{esc(Path(w.path).name)}">' if uri
               else '<div class="noimg">image not found</div>')
        cls = "fn" if w.label == 1 else "fp"
        tiles.append(f'<div class="tile {cls}">{img}<div class="kind">{esc(w.kind)}</div>'
                     f'<div>P(crack) = {w.prob:.3f}</div><div class="path" title="{esc(w.path)}">'
                     f'{esc(Path(w.path).parent.name + "/" + Path(w.path).name)}</div></div>')
    more = len(wrong) - max_errors
    n_fp = len(wrong) - n_fn
    parts = []
    if n_fn:
        parts.append(f"{n_fn} missed crack{'' if n_fn == 1 else 's'} (red, most confidently missed first)")
    if n_fp:
        parts.append(f"{n_fp} false alarm{'' if n_fp == 1 else 's'} (orange, most confident first)")
    head = (f'<p class="sub">{len(wrong)} of {n} test images wrong at threshold {thr:g}: {", then ".join(parts)}.'
            + (f" Showing the first {max_errors}." if more > 0 else "") + "</p>")
    return head + f'<div class="grid">{"".join(tiles)}</div>'


def _curves(manifest: dict[str, Any] | None, run: Run) -> str:
    if not manifest or not manifest.get("history"):
        p = Path(run.out_dir) / "history_loss.png"
        if p.is_file():
            return f'<img class="plot" src="{png_uri(p.read_bytes())}" alt="training history">'
        return '<p class="sub">no training history.</p>'
    from crackops.report.plots import history_png

    data = history_png(manifest["history"], manifest.get("best_epoch"))
    return f'<img class="plot" src="{png_uri(data)}" alt="training curves of {esc(run.job_id)}">'


def run_section(run: Run, differing: set[str] | None = None, max_errors: int = MAX_ERRORS) -> str:
    manifest = contract.read_manifest(run.out_dir) if run.out_dir else None
    sm = split_metrics(run, manifest)
    test = sm.get("test") or {}
    config = (manifest or {}).get("config") or run.config
    h = [f'<section class="run" id="run-{esc(run.job_id)}">',
         f'<h2>run {esc(run.job_id)} <span class="badge {esc(run.state)}">{esc(run.state)}</span></h2>',
         f'<p class="sub">{esc(run.name or "unnamed")} · {esc(run.backend)} · submitted {when(run.submitted_at)} · '
         f'elapsed {duration(run.elapsed_s)} · artifacts <code>{esc(run.out_dir)}</code></p>']
    if not run.terminal:
        h.append(f'<p class="sub">still {esc(run.state)}: this shows what there is so far; '
                 f'make the report again when it ends.</p>')
    elif run.state != "COMPLETED" or run.reason:
        h.append(f'<p class="warn"><b>{esc(run.state)}</b>' + (f": {esc(run.reason)}" if run.reason else "")
                 + (f" (exit code {esc(run.exit_code)})" if run.exit_code else "") + "</p>")
        tail = artifacts.failure_tail(run.log_err, 25) if run.state != "COMPLETED" else ""
        if tail:
            h.append(f"<h3>last lines of {esc(run.log_err)}</h3><pre>{esc(tail)}</pre>")
    if test:
        h.append(_cards(test))
        extra = []
        if manifest:
            extra.append(f"{esc(manifest.get('epochs_run'))} epochs run, best epoch {esc(manifest.get('best_epoch'))}")
            extra.append(f"wall time {duration(manifest.get('wall_time_s'))}")
        h.append(f'<p class="sub">{" · ".join(extra)}</p>' if extra else "")
        h.append("<h3>metrics (crack = positive class)</h3>" + _metrics_table(sm))
        cms = [_confusion(sm[s], s) for s in ("train", "test") if sm.get(s) and "tn" in sm[s]]
        if cms:
            h.append('<h3>confusion matrices</h3><div class="cols">' + "".join(cms) + "</div>")
    elif run.state == "COMPLETED":
        h.append('<p class="sub">no metrics yet: <code>crackops collect '
                 f'{esc(run.job_id)}</code> reads them.</p>')
    if manifest or (Path(run.out_dir) / "history_loss.png").is_file():
        h.append("<h3>training curves</h3>" + _curves(manifest, run))
    h.append("<h3>efficiency</h3>" + _efficiency(run, manifest))
    if test:
        h.append("<h3>test images the model got wrong</h3>" + _errors_grid(run, manifest, test, max_errors))
    h.append('<div class="cols"><div><h3>config</h3>'
             + _config_table(config, differing or set()) + "</div>" + _dataset_info(manifest) + "</div>")
    h.append("</section>")
    return "\n".join(h)


def _dataset_info(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return ""
    ds = manifest.get("dataset") or {}
    rows = []
    for s in SPLITS:
        c = (ds.get("counts") or {}).get(s)
        fp = (ds.get("fingerprints") or {}).get(s, "")
        if c:
            rows.append([esc(s), esc(c.get("positive")), esc(c.get("negative")), f"<code>{esc(fp[:12])}</code>"])
    v = manifest.get("versions") or {}
    vers = ", ".join(f"{k} {v[k]}" for k in ("python", "tensorflow", "keras", "crackops") if k in v)
    skipped = len(ds.get("skipped") or [])
    return ('<div><h3>data</h3>' + f'<p class="sub">{esc(ds.get("data_dir", ""))}'
            + (f", {skipped} files skipped" if skipped else "") + "</p>"
            + _table(["split", "cracks", "sound", "fingerprint"], rows)
            + f'<p class="sub">{esc(vers)}</p></div>')


def compare_section(cmp: Comparison) -> str:
    from crackops.report.plots import figure_png

    h = ['<section class="compare" id="compare"><h2>comparison</h2>']
    if cmp.verdict:
        h.append(f'<p class="verdict">{esc(cmp.verdict["text"])}</p>')
    for w in cmp.warnings:
        h.append(f'<p class="warn">warning: {esc(w)}</p>')
    shown = [m for m in METRICS if m.source != "accounting" or cmp.has_accounting]
    if cmp.replicated:
        gk = cmp.group_differing
        gm = [m for m in shown if m.in_groups]
        rows, classes = [], []
        for g in cmp.groups:
            rows.append([esc(g.id) + (" ★ best" if g.id == cmp.best_group else "")]
                        + [value(g.config.get(k)) for k in gk]
                        + [esc(g.n if g.n == g.n_runs else f"{g.n} of {g.n_runs}")]
                        + [esc(m.format_stat(g.stats[m.key])) for m in gm])
            classes.append("best" if g.id == cmp.best_group else "")
        h.append("<h3>configs (mean ± std over seeds)</h3>"
                 + _table(["group", *gk, "n", *[m.label for m in gm]], rows, left=1 + len(gk),
                          classes=classes, cls="compact"))
    cols = [m for m in shown if m.column]
    rows, classes = [], []
    for r in cmp.rows:
        rows.append([f'<a href="#run-{esc(r["job_id"])}">{esc(r["job_id"])}</a>' + (" ★ best" if r["job_id"] == cmp.best else ""),
                     esc(r.get("name") or "-"), f'<span class="badge {esc(r["state"])}">{esc(r["state"])}</span>']
                    + ([esc(r.get("group"))] if cmp.replicated else [])
                    + [esc(m.row_cell(r)) for m in cols]
                    + [value(r["config"].get(k)) for k in cmp.shown_differing])
        classes.append("best" if r["job_id"] == cmp.best else "")
    h.append("<h3>runs</h3>" + _table(["job id", "name", "state", *(["group"] if cmp.replicated else []),
                                       *[m.row_header for m in cols], *cmp.shown_differing], rows, left=3,
                                      classes=classes, cls="compact"))
    if cmp.hints:
        h.append('<ul class="hints">' + "".join(f"<li>{esc(x)}</li>" for x in cmp.hints) + "</ul>")
    h.append(f'<h3>curves and test metrics</h3><img class="plot" src="{png_uri(figure_png(cmp))}" alt="comparison">')
    h.append("</section>")
    return "\n".join(h)


def build_report(runs: list[Run], *, max_errors: int = MAX_ERRORS, title: str | None = None) -> str:
    """The report for ``runs`` as one HTML string."""
    ids = [r.job_id for r in runs]
    title = title or ("crackops report: run " + ids[0] if len(ids) == 1 else f"crackops report: {len(ids)} runs")
    cmp = compare_runs(runs) if len(runs) > 1 else None
    differing = set(cmp.differing) if cmp else set()
    nav = ""
    if len(runs) > 1:
        nav = "<nav>" + '<a href="#compare">comparison</a>' + "".join(
            f'<a href="#run-{esc(j)}">{esc(j)}</a>' for j in ids) + "</nav>"
    body = [f"<header><h1>{esc(title)}</h1><p>{esc(', '.join(ids))} · made {when(time.time())} by crackops "
            f"{esc(__version__)}</p>{nav}</header><main>"]
    if cmp is not None:
        body.append(compare_section(cmp))
    for r in runs:
        body.append(run_section(r, differing, max_errors))
    body.append(f"<footer>self-contained report: images are embedded, nothing is loaded from elsewhere.</footer>"
                "</main>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(runs: list[Run], path: str | Path, **kwargs: Any) -> Path:
    """Write the report for ``runs`` to ``path`` (atomically) and return its absolute path."""
    p = Path(path).expanduser().resolve()
    text = build_report(runs, **kwargs)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p


def measures_usage(backend: str) -> bool:
    """Whether the run's backend has accounting that measures CPU and memory use."""
    from crackops.backends import get_backend
    from crackops.errors import CrackopsError

    try:
        return get_backend(backend).measures_usage
    except CrackopsError:   # a backend this installation does not have
        return False
