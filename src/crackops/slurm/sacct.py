"""sacct and squeue: the command lines crackops runs and the parsing of what they print.

Pure functions over text - nothing here runs a process. ``crackops.backends.slurm`` runs the
commands these functions build (with ``SLURM_TIME_FORMAT=standard`` in the environment, see
``SCHEDULER_ENV``) and hands the output back here.

What the parser knows about real sacct output (Slurm 22.05, ``--parsable2``):

- one allocation row per job (``123``, array task ``23_0``) followed by step rows (``123.batch``,
  ``123.extern``, ``123.0``); MaxRSS and (for running jobs) usage live on step rows only;
- a pending array is one row ``23_[0-3%2]`` for all the tasks that have not started; tasks that
  started get their own rows, which win over the range;
- the state is the first word: ``CANCELLED by 0`` is CANCELLED (by uid 0);
- a job can have no row yet (2-4 s after sbatch; longer for arrays): that is "not finished";
- right after slurmdbd comes back, a finished job can show ``COMPLETED`` with ``End=Unknown``, a
  growing Elapsed and no step rows until the backlog is replayed: such a record is ``incomplete``;
- the Reason column is only meaningful while PENDING (finished jobs keep a stale one);
- job ids are reused after a controller reset: rows are matched to a run by submit time and job
  name, never by id alone.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from crackops.states import TERMINAL_STATES
from crackops.slurm.units import (
    efficiency,
    format_slurm_time,
    parse_duration_s,
    parse_mem_mb,
    parse_timestamp,
)

SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Elapsed", "Timelimit", "NNodes", "AllocCPUS",
                "ReqMem", "MaxRSS", "TotalCPU", "Submit", "Start", "End", "NodeList", "Reason", "SubmitLine")
SQUEUE_FIELDS = ("%i", "%T", "%r", "%j", "%V", "%S", "%e", "%M", "%l", "%C", "%m")
SQUEUE_FORMAT = "|".join(SQUEUE_FIELDS)   # id|state|reason|name|submit|start|end|time used|limit|cpus|mem

#: Environment for every scheduler command: fixed timestamp format, whatever the user's shell says.
SCHEDULER_ENV = {"SLURM_TIME_FORMAT": "standard"}

#: How far before the earliest registry submit time a job's row is still taken for the run, where
#: the row cannot be matched by its submission (no ``SubmitLine``): clock skew between the submitting
#: host and the controller, plus the registry recording the time after sbatch returned.
STARTTIME_MARGIN_S = 600.0
#: How far further back than the oldest run's age sacct's window reaches: wide enough for any clock
#: skew between crackops, the submit host and the controller (rows are matched to runs by their
#: submission, not by time, so a wide window costs nothing but a few old rows of the same ids).
WINDOW_MARGIN_S = 86400.0

_STATE_RE = re.compile(r"^[A-Z_]+( by \S+)?$")   # COMPLETED, CANCELLED by 0

#: Pass at most this many ids in one ``-j`` argument (Linux caps one argument at 128 KiB).
MAX_IDS_PER_CALL = 5000

TERMINAL = TERMINAL_STATES  # the one set (crackops.states), under the name this module always used

_ARRAY_RANGE_RE = re.compile(r"^(?P<base>\d+)_\[(?P<spec>[^\]]+)\]$")


# ------------------------------------------------------------------ command lines

def compact_job_ids(job_ids: Iterable[str]) -> list[str]:
    """Unique ids, in order; two or more tasks of one array collapse to the array id (``23``),
    which sacct/squeue expand to every task - one short argument for a 1000-task array."""
    ids = list(dict.fromkeys(str(j).strip() for j in job_ids if str(j).strip()))
    per_array: dict[str, int] = {}
    for j in ids:
        base, sep, task = j.partition("_")
        if sep and task.isdigit():
            per_array[base] = per_array.get(base, 0) + 1
    out: list[str] = []
    seen: set[str] = set()
    for j in ids:
        base, sep, task = j.partition("_")
        key = base if sep and task.isdigit() and per_array.get(base, 0) >= 2 else j
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def sacct_starttime(submitted_at: Iterable[float], margin_s: float = WINDOW_MARGIN_S,
                    now: float | None = None) -> str:
    """``--starttime`` value, as a duration before sacct's own clock: ``now-<N>seconds``, N the age
    of the oldest run (``now`` minus its registry submit time, both in this process's clock) plus
    ``margin_s``. A duration, not a date: minutes or hours of skew between this process's clock
    and the cluster's change nothing (a date from a fast clock lay in sacct's future: "start time
    after end time")."""
    times = [float(t) for t in submitted_at if t is not None]
    if not times:
        raise ValueError("no submit times")
    now = time.time() if now is None else now
    return f"now-{max(0, int(now - min(times) + margin_s))}seconds"


def build_sacct_command(job_ids: Iterable[str], starttime: str, sacct: str = "sacct",
                        fields: tuple[str, ...] = SACCT_FIELDS) -> list[str]:
    """One sacct call for many jobs, step rows included (MaxRSS/TotalCPU live there)."""
    ids = compact_job_ids(job_ids)
    if not ids:
        raise ValueError("no job ids")
    return [sacct, "--parsable2", "--noheader", f"--format={','.join(fields)}",
            f"--starttime={starttime}", "-j", ",".join(ids)]


def build_sacct_commands(job_ids: Iterable[str], starttime: str, sacct: str = "sacct",
                         max_ids: int = MAX_IDS_PER_CALL, fields: tuple[str, ...] = SACCT_FIELDS) -> list[list[str]]:
    """``build_sacct_command`` split so no ``-j`` argument gets too long (one call up to 5000 ids)."""
    ids = compact_job_ids(job_ids)
    return [build_sacct_command(ids[i:i + max_ids], starttime, sacct, fields) for i in range(0, len(ids), max_ids)]


def lacks_field(error: str, field: str) -> bool:
    """Whether sacct refused ``field`` as unknown (a Slurm older than the field)."""
    return "invalid field" in error.lower() and field.lower() in error.lower()


def build_squeue_command(job_ids: Iterable[str], squeue: str = "squeue") -> list[str]:
    """One squeue call: every state the controller still remembers (finished jobs stay
    ``MinJobAge`` seconds, 300 by default), array tasks one per line."""
    ids = compact_job_ids(job_ids)
    if not ids:
        raise ValueError("no job ids")
    return [squeue, "--noheader", "--array", "--states=all", f"--format={SQUEUE_FORMAT}", "-j", ",".join(ids)]


def build_scancel_command(job_ids: Iterable[str], scancel: str = "scancel") -> list[str]:
    ids = list(dict.fromkeys(str(j).strip() for j in job_ids if str(j).strip()))
    if not ids:
        raise ValueError("no job ids")
    return [scancel, *ids]


# ------------------------------------------------------------------ records

@dataclass
class SacctStep:
    step: str                     # "batch", "extern", "0", ...
    name: str
    state: str
    exit_code: str | None
    elapsed_s: float | None
    alloc_cpus: int | None
    max_rss_mb: float | None
    total_cpu_s: float | None
    start: float | None
    end: float | None


@dataclass
class SacctJob:
    job_id: str                   # "123" or "23_0" (tasks expanded from a pending range too)
    name: str
    state: str                    # first word of State: "CANCELLED by 0" -> "CANCELLED"
    state_raw: str
    cancelled_by: str | None      # uid from "CANCELLED by <uid>"
    exit_code: str | None         # "3:0"
    reason: str | None            # only for PENDING (None otherwise; "None" -> None)
    elapsed_s: float | None
    timelimit_s: float | None
    nnodes: int | None
    alloc_cpus: int | None
    req_mem_mb: float | None      # job total (per-CPU/per-node suffixes resolved)
    req_mem_raw: str
    submit: float | None
    start: float | None
    end: float | None
    nodelist: str | None
    job_total_cpu_s: float | None = None   # TotalCPU of the allocation row
    submit_line: str = ""                  # the sbatch command (its script's path names the submission)
    steps: list[SacctStep] = field(default_factory=list)
    from_range: str | None = None          # "23_[0-3%2]" when expanded from a pending array row

    @property
    def max_rss_mb(self) -> float | None:
        vals = [s.max_rss_mb for s in self.steps if s.max_rss_mb is not None]
        return max(vals) if vals else None

    @property
    def total_cpu_s(self) -> float | None:
        """The allocation row's TotalCPU (Slurm sums the steps there); the step sum if it is 0."""
        step_sum = sum(s.total_cpu_s for s in self.steps if s.total_cpu_s is not None)
        job = self.job_total_cpu_s
        if job:
            return job
        if any(s.total_cpu_s is not None for s in self.steps):
            return step_sum
        return job

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def placeholder(self) -> bool:
        """A ``123|allocation|PENDING|...`` row written before the real one: not finished."""
        return self.state == "PENDING" and self.name == "allocation"

    @property
    def incomplete(self) -> bool:
        """Finished according to State but the record is not whole yet (no End time)."""
        return self.terminal and self.end is None

    @property
    def finished(self) -> bool:
        return self.terminal and not self.incomplete

    def accounting(self, state: str | None = None) -> dict[str, Any]:
        """The registry's ``accounting`` column: efficiency numbers, hints and where they came from.
        ``state`` overrides Slurm's for the hints (a COMPLETED job that crashed gets none)."""
        acc = efficiency(state=state or self.state, elapsed_s=self.elapsed_s, timelimit_s=self.timelimit_s,
                         alloc_cpus=self.alloc_cpus, req_mem_mb=self.req_mem_mb, max_rss_mb=self.max_rss_mb,
                         total_cpu_s=self.total_cpu_s)
        if (state or self.state) not in TERMINAL:
            # usage (TotalCPU, MaxRSS) reaches sacct when steps end: ratios now would read as 0 %
            acc.update(total_cpu_s=None, max_rss_mb=None, cpu_eff=None, mem_eff=None)
        acc.update({"state": self.state_raw, "exit_code": self.exit_code, "nodelist": self.nodelist,
                    "req_mem": self.req_mem_raw, "nnodes": self.nnodes,
                    "steps": [s.step for s in self.steps], "source": "sacct"})
        if self.incomplete:
            acc["incomplete"] = True
        return acc

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_rss_mb"] = self.max_rss_mb
        d["total_cpu_s"] = self.total_cpu_s
        return d


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _clean(text: str | None) -> str | None:
    s = (text or "").strip()
    return None if s in ("", "None", "None assigned", "(null)", "Unknown", "N/A") else s


def split_state(raw: str) -> tuple[str, str | None]:
    """``CANCELLED by 0`` -> (``CANCELLED``, ``0``); ``COMPLETED`` -> (``COMPLETED``, None);
    squeue's ``CANCELLED+`` (truncated) -> ``CANCELLED``."""
    words = (raw or "").split()
    if not words:
        return "UNKNOWN", None
    state = words[0].rstrip("+").upper()
    by = words[2] if len(words) >= 3 and words[1].lower() == "by" else None
    return state, by


def _small_int(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


def expand_array_range(job_id: str) -> list[str]:
    """``23_[0-3%2]`` -> [``23_0``, ``23_1``, ``23_2``, ``23_3``]; ``23_[1,4-5]`` -> three ids;
    anything else -> [job_id]."""
    m = _ARRAY_RANGE_RE.match(job_id)
    if not m:
        return [job_id]
    base, spec = m.group("base"), m.group("spec").split("%", 1)[0]
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        step = 1
        if ":" in hi:
            hi, _, st = hi.partition(":")
            step = int(st) if _small_int(st) and int(st) > 0 else 1
        # ASCII digits of a sane length: str.isdigit() accepts '²', and int() refuses 4300+ digits
        if not _small_int(lo) or (sep and not _small_int(hi)):
            return [job_id]
        a, b = int(lo), int(hi) if sep else int(lo)
        if b - a > 1_000_000:
            return [job_id]
        out.extend(f"{base}_{i}" for i in range(a, b + 1, step))
    return out or [job_id]


def parse_sacct(text: str, fields: tuple[str, ...] = SACCT_FIELDS) -> list[SacctJob]:
    """Parse ``sacct --parsable2 --noheader --format=<fields>`` output into jobs, in output order.

    Step rows attach to their job. A pending array range row yields one job per task not listed
    on its own. Unreadable lines are skipped. Several allocation rows with the same id (id reuse)
    are all kept: ``select_job`` picks the right one.
    """
    idx = {f: i for i, f in enumerate(fields)}
    n = len(fields)
    jobs: list[SacctJob] = []
    last_by_id: dict[str, SacctJob] = {}
    ranges: list[SacctJob] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = line.split("|")
        last_is_line = fields[-1] == "SubmitLine"
        if len(cols) == n - 1 and last_is_line:
            cols.append("")        # a row recorded without it (older Slurm, older fixtures)
        if len(cols) < n:
            continue
        if len(cols) > n:          # a '|' inside a job name (or the submit line): glue it back together
            extra = len(cols) - n
            k = idx["JobName"]
            glued = cols[:k] + ["|".join(cols[k:k + extra + 1])] + cols[k + extra + 1:]
            if last_is_line and "State" in idx and not _STATE_RE.match(glued[idx["State"]].strip()):
                glued = cols[:n - 1] + ["|".join(cols[n - 1:])]
            cols = glued

        def get(name: str) -> str:
            return cols[idx[name]] if name in idx else ""

        jid = get("JobID").strip()
        if not jid:
            continue
        base, dot, step = jid.partition(".")
        state, by = split_state(get("State"))
        alloc_cpus = _int(get("AllocCPUS"))
        if dot:
            parent = last_by_id.get(base)
            if parent is None:
                continue
            parent.steps.append(SacctStep(
                step=step, name=get("JobName"), state=state, exit_code=_clean(get("ExitCode")),
                elapsed_s=parse_duration_s(get("Elapsed")), alloc_cpus=alloc_cpus,
                max_rss_mb=parse_mem_mb(get("MaxRSS"), default_unit="K"),
                total_cpu_s=parse_duration_s(get("TotalCPU")),
                start=parse_timestamp(get("Start")), end=parse_timestamp(get("End"))))
            continue
        nnodes = _int(get("NNodes"))
        job = SacctJob(
            job_id=jid, name=get("JobName"), state=state, state_raw=get("State").strip(), cancelled_by=by,
            exit_code=_clean(get("ExitCode")),
            reason=_clean(get("Reason")) if state == "PENDING" else None,
            elapsed_s=parse_duration_s(get("Elapsed")), timelimit_s=parse_duration_s(get("Timelimit")),
            nnodes=nnodes, alloc_cpus=alloc_cpus,
            req_mem_mb=parse_mem_mb(get("ReqMem"), alloc_cpus=alloc_cpus, nnodes=nnodes),
            req_mem_raw=get("ReqMem").strip(), submit=parse_timestamp(get("Submit")),
            start=parse_timestamp(get("Start")), end=parse_timestamp(get("End")),
            nodelist=_clean(get("NodeList")), job_total_cpu_s=parse_duration_s(get("TotalCPU")),
            submit_line=get("SubmitLine").strip())
        last_by_id[jid] = job
        if _ARRAY_RANGE_RE.match(jid):
            ranges.append(job)
        else:
            jobs.append(job)
    # expand pending ranges into tasks that have no row of their own
    have = {j.job_id for j in jobs}
    for r in ranges:
        for tid in expand_array_range(r.job_id):
            if tid in have or tid == r.job_id:
                continue
            t = SacctJob(**{**{k: getattr(r, k) for k in r.__dataclass_fields__}, "job_id": tid,
                            "steps": list(r.steps), "from_range": r.job_id})
            jobs.append(t)
    return jobs


def index_jobs(jobs: Iterable[SacctJob]) -> dict[str, list[SacctJob]]:
    out: dict[str, list[SacctJob]] = {}
    for j in jobs:
        out.setdefault(j.job_id, []).append(j)
    return out


def select_job(index: dict[str, list[SacctJob]], job_id: str, *, submitted_at: float | None = None,
               job_name: str | None = None, margin_s: float = STARTTIME_MARGIN_S,
               marker: str | None = None) -> SacctJob | None:
    """The row of *this* run. With ``marker`` (a text only this run's submission has in its
    ``SubmitLine``: its submitit folder), the row whose submit line holds it, whatever the clocks
    say; rows of that id whose submit lines do not are other jobs (an id handed out again), so no
    row yet. Without a marker or submit lines (older Slurm): same id, submitted no earlier than
    ``submitted_at - margin_s`` and (when both are known) the same job name; the latest such row.
    None = no row yet."""
    cands = index.get(str(job_id), [])
    if marker and any(j.submit_line for j in cands):
        mine = [j for j in cands if marker in j.submit_line]
        return max(mine, key=lambda j: (j.submit or 0.0)) if mine else None
    ok = []
    for j in cands:
        if submitted_at is not None and j.submit is not None and j.submit < submitted_at - margin_s:
            continue                            # an older job that had the same id
        if job_name and j.name and j.name != job_name and not j.placeholder:
            continue
        ok.append(j)
    if not ok:
        return None
    return max(ok, key=lambda j: (j.submit or 0.0))


# ------------------------------------------------------------------ squeue

@dataclass
class SqueueJob:
    job_id: str
    state: str
    reason: str | None
    name: str
    submit: float | None
    start: float | None           # only for jobs that started (squeue prints an estimate for PENDING)
    end: float | None             # only for finished jobs (squeue prints the expected end otherwise)
    elapsed_s: float | None
    timelimit_s: float | None
    cpus: int | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def parse_squeue(text: str) -> dict[str, SqueueJob]:
    """Parse ``squeue --noheader --array --states=all --format=<SQUEUE_FORMAT>`` output by job id."""
    out: dict[str, SqueueJob] = {}
    n = len(SQUEUE_FIELDS)
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) < n or not cols[0].strip():
            continue
        if len(cols) > n:                      # '|' in the job name (4th column)
            extra = len(cols) - n
            cols = cols[:3] + ["|".join(cols[3:4 + extra])] + cols[4 + extra:]
        jid, st_raw, reason, name, submit, start, end, used, limit, cpus, _mem = cols[:n]
        state, _ = split_state(st_raw)
        started = state not in ("PENDING",)
        for tid in expand_array_range(jid.strip()):
            out[tid] = SqueueJob(
                job_id=tid, state=state,
                reason=_clean(reason) if state in ("PENDING", "FAILED", "TIMEOUT", "CANCELLED",
                                                   "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED") else None,
                name=name, submit=parse_timestamp(submit),
                start=parse_timestamp(start) if started else None,
                end=parse_timestamp(end) if state in TERMINAL else None,
                elapsed_s=parse_duration_s(used), timelimit_s=parse_duration_s(limit), cpus=_int(cpus))
    return out


# ------------------------------------------------------------------ errors

def sacct_error_line(stderr: str, returncode: int | None = None) -> str:
    """The line worth quoting from a failed sacct/squeue: the last ``error:`` line, else the
    last non-empty one, else the exit status."""
    lines = [l.strip() for l in (stderr or "").splitlines() if l.strip()]
    errs = [l for l in lines if "error" in l.lower() or "disabled" in l.lower()]
    pick = (errs or lines or [None])[-1]
    if pick is None:
        return f"exit status {returncode}" if returncode is not None else "no output"
    return re.sub(r"^(sacct|squeue|scancel): error: ", "", pick)


def squeue_unknown_ids(stderr: str) -> bool:
    """squeue exits 1 with this when it knows none of the ids asked: not a failure for us."""
    return "invalid job id specified" in (stderr or "").lower()
