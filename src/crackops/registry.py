"""The run registry: one SQLite file in the state directory, the only module that writes it.

Safe for several crackops processes at once (WAL journal, busy timeout, short transactions).
Schema changes are ordered migrations recorded in ``_migrations``; never edit an old one.

Runs are keyed by ``run_key`` (the registry's own counter), not by job id: Slurm hands out a job
id again after a controller reset, and both runs are kept. A *ref* names one run: ``<job_id>`` is
the newest run with that id (by submit time), ``<job_id>~1`` the one before, ``~2`` before that.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from crackops.errors import NotFoundError, RegistryError
from crackops.migrations import MIGRATIONS
from crackops.paths import parse_ref, state_dir, validate_job_id
from crackops.states import LIVE_STATES, TERMINAL_STATES  # noqa: F401  (re-exported)

#: SQLite's own wait for a lock (the busy timeout), seconds.
BUSY_TIMEOUT_S = 30.0
#: Seconds a write waits for other writers, beyond SQLite's own busy timeout, before it gives up.
BUSY_RETRY_S = 120.0


def _is_busy(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


_JSON_COLS = ("config", "resources", "metrics", "accounting", "extra", "provenance")
_SWEEP_JSON_COLS = ("grid", "seeds", "base_config", "resources", "extra")


@dataclass
class Run:
    job_id: str
    backend: str
    state: str
    config: dict[str, Any]
    resources: dict[str, Any]
    submitted_at: float
    out_dir: str
    name: str | None = None
    reason: str | None = None
    exit_code: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    log_out: str | None = None
    log_err: str | None = None
    metrics: dict[str, Any] | None = None
    collected_at: float | None = None
    state_source: str | None = None
    refreshed_at: float | None = None
    accounting: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    run_key: int | None = None     # the registry's key (set when recorded)
    ref: str | None = None         # how to name it: job_id, or job_id~N for an older run with that id

    @property
    def shown_id(self) -> str:
        """What listings show and commands accept: the job id, or ``<job_id>~N`` for an older run
        whose job id was handed out again."""
        return self.ref or self.job_id
    sweep_id: str | None = None
    provenance: dict[str, Any] | None = None
    attempt: int | None = None
    continues: str | None = None
    retries: int | None = None              # automatic reruns left (``submit --retries N``)
    rerun_claimed_at: float | None = None   # when a crackops process took on rerunning this run

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def elapsed_s(self) -> float | None:
        if self.accounting and self.accounting.get("elapsed_s") is not None:
            return float(self.accounting["elapsed_s"])
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else (None if self.terminal else time.time())
        return None if end is None else max(0.0, end - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ref"] = self.ref or self.job_id
        d["elapsed_s"] = self.elapsed_s
        return d


_NOT_COLUMNS = ("run_key", "ref")


def _run_row(run: Run) -> dict[str, Any]:
    """``run`` as a row of the runs table: its columns, JSON ones encoded (job id checked)."""
    validate_job_id(run.job_id)
    d = {k: getattr(run, k) for k in run.__dataclass_fields__ if k not in _NOT_COLUMNS}
    for k in _JSON_COLS:
        d[k] = json.dumps(d[k]) if d[k] is not None else None
    return d


def _insert_runs(c: sqlite3.Connection, rows: list[dict[str, Any]]) -> int | None:
    """Insert rows made by ``_run_row`` (inside a transaction); the last one's run_key."""
    if not rows:
        return None
    sql = f"INSERT INTO runs ({', '.join(rows[0])}) VALUES ({', '.join('?' for _ in rows[0])})"
    if len(rows) == 1:
        return c.execute(sql, tuple(rows[0].values())).lastrowid
    c.executemany(sql, [tuple(r.values()) for r in rows])
    return None
_UNKNOWN_HINT = "see `crackops status` for the ids you have"


@dataclass
class Sweep:
    """Many runs submitted together: a grid of config values times seeds."""

    sweep_id: str
    name: str
    backend: str
    grid: dict[str, list[Any]]
    seeds: list[int]
    base_config: dict[str, Any]
    resources: dict[str, Any]
    created_at: float
    max_parallel: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


SQLITE_MAGIC = b"SQLite format 3\x00"


def default_path() -> Path:
    return state_dir() / "registry.db"


def corrupt_error(path: Path | str, why: str) -> RegistryError:
    """The one line for a registry that cannot be read: which file, and how to get the runs back
    (every finished run's folder holds what its row needs: ``crackops import``)."""
    return RegistryError(f"the registry {path} is damaged ({why}); nothing was changed in it",
                         f"move it away (mv {path} {path}.damaged) and record the runs again from their "
                         "folders: crackops import OUT_DIR")


def check_file(path: Path) -> None:
    """Refuse a registry file that is not a whole SQLite database, before SQLite opens it (and
    before anything could write to it): garbage bytes (no SQLite header), or a file shorter than
    the size its header gives (truncated). A missing or empty file is a new registry."""
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return
    except OSError as e:
        raise RegistryError(f"cannot read the registry {path}: {e.strerror or e}",
                            "check its permissions, or point CRACKOPS_HOME elsewhere") from None
    if not head.startswith(SQLITE_MAGIC[:len(head)]) or (len(head) >= 16 and not head.startswith(SQLITE_MAGIC)):
        raise corrupt_error(path, "not an SQLite database")
    if len(head) < 100:
        raise corrupt_error(path, f"truncated: {size} bytes")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # the header's page count is valid when its "valid for" counter matches the change counter
    if pages and head[24:28] == head[92:96] and size < pages * page_size:
        raise corrupt_error(path, f"truncated: {size} of {pages * page_size} bytes")


def is_corruption(e: BaseException) -> bool:
    """Whether an SQLite error says the file is damaged (not a lock, a constraint, a full disk)."""
    return type(e) is sqlite3.DatabaseError


class Registry:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_file(self.path)
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            if not is_corruption(e):
                raise
            if getattr(self, "_conn", None) is not None:
                self._conn.close()
            raise corrupt_error(self.path, str(e)) from None

    def _open(self) -> None:
        self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        for _ in range(20):
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as e:  # some network filesystems refuse WAL
                if not _is_busy(e):
                    break
                time.sleep(0.1)   # another process is switching a new file to WAL: once more
        self._migrate()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._begin()
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting out other writers. SQLite's busy timeout covers most waits,
        but a busy error can still come back (the timeout passed on a loaded machine, a WAL
        recovery by another process): try again, with growing pauses, for ``BUSY_RETRY_S``."""
        deadline = time.monotonic() + BUSY_RETRY_S
        pause = 0.05
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if not _is_busy(e) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(1.0, pause * 2)

    def _migrate(self) -> None:
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
            done = {r[0] for r in c.execute("SELECT name FROM _migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for stmt in (s.strip() for s in sql.split(";")):
                    if stmt and not all(l.strip().startswith("--") for l in stmt.splitlines() if l.strip()):
                        c.execute(stmt)
                c.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))

    def applied_migrations(self) -> list[str]:
        """Names in the order they were applied (not sorted: a sort would hide an order problem)."""
        return [r[0] for r in self._conn.execute("SELECT name FROM _migrations ORDER BY rowid")]

    # ------------------------------------------------------------ rows
    @staticmethod
    def _row_to_run(row: sqlite3.Row) -> Run:
        d = dict(row)
        for k in _JSON_COLS:
            d[k] = json.loads(d[k]) if d.get(k) else ({} if k in ("config", "resources", "extra") else None)
        return Run(**d)

    def add(self, run: Run) -> Run:
        """Record a run (a job id already recorded is fine: a new run with a reused id)."""
        row = _run_row(run)
        with self._tx() as c:
            run.run_key = _insert_runs(c, [row])
        run.ref = self._ref_of(run)
        return run

    def _ref_of(self, run: Run) -> str:
        older_or_newer = self._conn.execute(
            "SELECT count(*) FROM runs WHERE job_id = ? AND (submitted_at > ? OR (submitted_at = ? AND run_key > ?))",
            (run.job_id, run.submitted_at, run.submitted_at, run.run_key)).fetchone()[0]
        return run.job_id if older_or_newer == 0 else f"{run.job_id}~{older_or_newer}"

    def key(self, ref: "str | Run") -> int:
        """The run_key of a ref (``1234``: the newest run with job id 1234, ``1234~1``: the one before)."""
        if isinstance(ref, Run):
            if ref.run_key is not None:
                return ref.run_key
            ref = ref.ref or ref.job_id
        job_id, back = parse_ref(ref)
        row = self._conn.execute(
            "SELECT run_key FROM runs WHERE job_id = ? ORDER BY submitted_at DESC, run_key DESC LIMIT 1 OFFSET ?",
            (job_id, back)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown job id {ref!r}", _UNKNOWN_HINT)
        return int(row[0])

    @staticmethod
    def _encode(changes: dict[str, Any]) -> dict[str, Any]:
        bad = set(changes) - set(Run.__dataclass_fields__) | (set(changes) & set(_NOT_COLUMNS))
        if bad:
            raise ValueError(f"unknown run fields {bad}")
        changes = dict(changes)
        for k in _JSON_COLS:
            if k in changes and changes[k] is not None:
                changes[k] = json.dumps(changes[k])
        return changes

    def update(self, ref: "str | Run", **changes: Any) -> None:
        """Change one run, named by a ref (see ``key``) or by the ``Run`` itself."""
        if not changes:
            return
        changes = self._encode(changes)
        key = self.key(ref)
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._tx() as c:
            cur = c.execute(f"UPDATE runs SET {sets} WHERE run_key = ?", (*changes.values(), key))
            if cur.rowcount == 0:
                raise NotFoundError(f"unknown job id {ref!r}", _UNKNOWN_HINT)

    def update_many(self, updates: dict[int, dict[str, Any]]) -> None:
        """Apply many updates, keyed by run_key, in one transaction (status refresh of 1000 runs)."""
        encoded = {k: self._encode(ch) for k, ch in updates.items() if ch}
        with self._tx() as c:
            for key, changes in encoded.items():
                sets = ", ".join(f"{k} = ?" for k in changes)
                c.execute(f"UPDATE runs SET {sets} WHERE run_key = ?", (*changes.values(), key))

    def get(self, ref: str) -> Run:
        key = self.key(str(ref))
        row = self._conn.execute("SELECT * FROM runs WHERE run_key = ?", (key,)).fetchone()
        run = self._row_to_run(row)
        run.ref = self._ref_of(run)
        return run

    def list(self, job_ids: Iterable[str] | None = None, states: Iterable[str] | None = None,
             limit: int | None = None) -> list[Run]:
        """Runs ordered by submit time; ``job_ids``: refs (each names one run: the newest with that
        id, or ``id~N``), unknown ones raise ``NotFoundError`` naming them all."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            from crackops.errors import UsageError

            raise UsageError(f"--limit {limit} must be a whole number of at least 1", "e.g. --limit 20")
        sql, args = "SELECT * FROM runs", []
        where = []
        if job_ids is not None:
            refs = list(dict.fromkeys(str(j).strip() for j in job_ids))
            keys, missing = [], []
            for ref in refs:
                try:
                    keys.append(self.key(ref))
                except NotFoundError:
                    missing.append(ref)
            if missing:
                raise NotFoundError(f"unknown job id{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                                    _UNKNOWN_HINT)
            where.append(f"run_key IN ({', '.join('?' for _ in keys)})")
            args += keys
        if states is not None:
            st = list(states)
            where.append(f"state IN ({', '.join('?' for _ in st)})")
            args += st
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = " ORDER BY submitted_at, job_id, run_key"
        sql += order
        if limit:
            sql = (f"SELECT * FROM ({sql.replace(order, ' ORDER BY submitted_at DESC, job_id DESC, run_key DESC')} "
                   f"LIMIT {min(limit, 2**63 - 1)}){order}")   # more than SQLite counts: all of them
        runs = [self._row_to_run(r) for r in self._conn.execute(sql, args)]
        self._set_refs(runs)
        return runs

    def _set_refs(self, runs: list[Run]) -> None:
        ids = {r.job_id for r in runs}
        reused = {row[0] for row in self._conn.execute(
            "SELECT job_id FROM runs GROUP BY job_id HAVING count(*) > 1")} & ids
        for r in runs:
            r.ref = self._ref_of(r) if r.job_id in reused else r.job_id

    # ------------------------------------------------------------ submissions not recorded yet
    def add_pending(self, submission_id: str, backend: str, job_name: str, created_at: float, holder: str,
                    run: dict[str, Any]) -> None:
        """Note a submission about to be sent to the scheduler (see ``crackops.api.submit``); for
        a Slurm sweep, ``run`` holds the sweep, its runs' templates and its arrays (``crackops.sweeps``)."""
        with self._tx() as c:
            c.execute("INSERT INTO pending_submissions VALUES (?, ?, ?, ?, ?, ?)",
                      (submission_id, backend, job_name, created_at, holder, json.dumps(run)))

    def pending(self) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self._conn.execute("SELECT * FROM pending_submissions ORDER BY created_at")]
        for r in rows:
            r["run"] = json.loads(r["run"])
        return rows

    def drop_pending(self, submission_id: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM pending_submissions WHERE submission_id = ?", (submission_id,))

    def run_of_submission(self, submission_id: str) -> Run | None:
        row = self._conn.execute("SELECT * FROM runs WHERE json_extract(config, '$.submission_id') = ? "
                                 "ORDER BY run_key DESC LIMIT 1", (submission_id,)).fetchone()
        if row is None:
            return None
        run = self._row_to_run(row)
        run.ref = self._ref_of(run)
        return run

    def record_submission(self, run: Run, submission_id: str, *, adopting: bool = False) -> Run | None:
        """Record the run of a pending submission and forget the pending row, in one transaction,
        so that exactly one process records it: the submitter, or one that adopts it after the
        submitter died. Adopting a submission that is no longer pending records nothing (None);
        the submitter whose submission was adopted meanwhile gets the adopted run back."""
        row = _run_row(run)
        adopted_key = None
        with self._tx() as c:
            gone = c.execute("DELETE FROM pending_submissions WHERE submission_id = ?", (submission_id,)).rowcount
            if not gone:
                if adopting:
                    return None
                row = c.execute("SELECT run_key FROM runs WHERE json_extract(config, '$.submission_id') = ?",
                                (submission_id,)).fetchone()
                adopted_key = row[0] if row is not None else None
            if adopted_key is None:
                run.run_key = _insert_runs(c, [row])
        if adopted_key is not None:
            return self.run_of_submission(submission_id)
        run.ref = self._ref_of(run)
        return run

    def identities(self) -> tuple[set[str], set[str]]:
        """The submission ids and the out dirs of every recorded run (what ``import`` skips)."""
        subs, dirs = set(), set()
        for sid, out_dir in self._conn.execute(
                "SELECT json_extract(config, '$.submission_id'), out_dir FROM runs"):
            if sid:
                subs.add(sid)
            dirs.add(out_dir)
        return subs, dirs

    def add_many(self, runs: Iterable[Run]) -> None:
        """Record many runs in one transaction (a sweep of 1000 runs)."""
        rows = [_run_row(run) for run in runs]
        if rows:
            with self._tx() as c:
                _insert_runs(c, rows)

    # ------------------------------------------------------------ reruns
    def claim_rerun(self, run: Run, now: float, lease_s: float) -> bool:
        """Take on rerunning ``run``, for every crackops process using this registry: True for
        exactly one caller. The claim stays once the rerun is recorded; a claim older than
        ``lease_s`` whose rerun was never recorded (its process died while submitting) can be
        taken again. :meth:`release_rerun` gives it back after a failed submission."""
        key = self.key(run)
        with self._tx() as c:
            cur = c.execute(
                "UPDATE runs SET rerun_claimed_at = ? WHERE run_key = ? AND (rerun_claimed_at IS NULL OR "
                "(rerun_claimed_at < ? AND NOT EXISTS (SELECT 1 FROM runs n WHERE n.continues = runs.job_id "
                "AND n.submitted_at >= runs.submitted_at)))", (now, key, now - lease_s))
            return cur.rowcount == 1

    def release_rerun(self, run: Run) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET rerun_claimed_at = NULL WHERE run_key = ?", (self.key(run),))

    def continued_by(self, run: Run) -> Run | None:
        """The run that continues ``run`` (a rerun of it), if any: the newest."""
        row = self._conn.execute(
            "SELECT * FROM runs WHERE continues = ? AND submitted_at >= ? ORDER BY submitted_at DESC, "
            "run_key DESC LIMIT 1", (run.job_id, run.submitted_at)).fetchone()
        if row is None:
            return None
        new = self._row_to_run(row)
        new.ref = self._ref_of(new)
        return new

    # ------------------------------------------------------------ scheduler calls (throttle)
    def claim_call(self, command: str, now: float, lease_s: float, holder: str) -> tuple[bool, dict[str, Any] | None]:
        """Take the right to run ``command`` now, for every process using this registry: granted
        unless an earlier claim's ``next_at`` is still ahead. A grant holds others off for
        ``lease_s`` (the call in flight) until :meth:`finish_call` sets the real ``next_at``.
        Returns (granted, the row as it was)."""
        with self._tx() as c:
            row = c.execute("SELECT * FROM scheduler_calls WHERE command = ?", (command,)).fetchone()
            before = dict(row) if row is not None else None
            if before is not None:
                since = before["ended_at"] if before["ended_at"] is not None else before["started_at"]
                if since is not None and now < since:
                    # written in a clock ahead of this one (another host, a skewed clock): the wait
                    # its writer meant is a duration, counted from now in this clock
                    before["next_at"] = now + max(0.0, before["next_at"] - since)
                    c.execute("UPDATE scheduler_calls SET next_at = ?, started_at = ?, ended_at = ? WHERE command = ?",
                              (before["next_at"], now if before["ended_at"] is None else before["started_at"],
                               now if before["ended_at"] is not None else None, command))
                if now < before["next_at"]:
                    return False, before
            c.execute("INSERT INTO scheduler_calls (command, next_at, started_at, ended_at, holder) "
                      "VALUES (?, ?, ?, NULL, ?) ON CONFLICT(command) DO UPDATE SET next_at = excluded.next_at, "
                      "started_at = excluded.started_at, ended_at = NULL, holder = excluded.holder",
                      (command, now + lease_s, now, holder))
        return True, before

    def finish_call(self, command: str, *, ended_at: float, duration_s: float, next_at: float,
                    failures: int, error: str | None) -> None:
        with self._tx() as c:
            c.execute("UPDATE scheduler_calls SET ended_at = ?, duration_s = ?, next_at = ?, failures = ?, "
                      "last_error = ? WHERE command = ?", (ended_at, duration_s, next_at, failures, error, command))

    def scheduler_call(self, command: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM scheduler_calls WHERE command = ?", (command,)).fetchone()
        return dict(row) if row is not None else None

    # ------------------------------------------------------------ sweeps
    def add_sweep(self, sweep: Sweep, runs: Iterable[Run] = (), *, submission_id: str | None = None,
                  adopting: bool = False) -> Sweep | None:
        """Record a sweep and (in the same transaction) its member runs. ``submission_id``: the
        sweep's pending row (a Slurm sweep, noted before its first sbatch), forgotten in the same
        transaction, so that exactly one process records the sweep, its submitter or one adopting
        it (``crackops.api.adopt_submissions``). Adopting a sweep no longer pending records nothing
        (None); a submitter whose sweep was adopted meanwhile adds the runs it is missing."""
        from crackops.errors import UsageError

        d = sweep.to_dict()
        for k in _SWEEP_JSON_COLS:
            d[k] = json.dumps(d[k])
        run_rows = [_run_row(run) for run in runs]
        with self._tx() as c:
            if submission_id is not None and not c.execute(
                    "DELETE FROM pending_submissions WHERE submission_id = ?", (submission_id,)).rowcount:
                if adopting:
                    return None
                known = {row[0] for row in c.execute("SELECT job_id FROM runs WHERE sweep_id = ?", (sweep.sweep_id,))}
                if c.execute("SELECT 1 FROM sweeps WHERE sweep_id = ?", (sweep.sweep_id,)).fetchone() is not None:
                    _insert_runs(c, [r for r in run_rows if r["job_id"] not in known])
                    return self._row_to_sweep(c.execute("SELECT * FROM sweeps WHERE sweep_id = ?",
                                                        (sweep.sweep_id,)).fetchone())
            try:
                c.execute(f"INSERT INTO sweeps ({', '.join(d)}) VALUES ({', '.join('?' for _ in d)})",
                          tuple(d.values()))
            except sqlite3.IntegrityError:
                raise UsageError(f"a sweep named {sweep.name!r} exists already",
                                 "pick another --name, or see it: crackops status --sweep " + sweep.name) from None
            _insert_runs(c, run_rows)
        return sweep

    def update_sweep(self, sweep_id: str, **changes: Any) -> None:
        for k in _SWEEP_JSON_COLS:
            if k in changes and changes[k] is not None:
                changes[k] = json.dumps(changes[k])
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._tx() as c:
            c.execute(f"UPDATE sweeps SET {sets} WHERE sweep_id = ?", (*changes.values(), sweep_id))

    @staticmethod
    def _row_to_sweep(row: sqlite3.Row) -> Sweep:
        d = dict(row)
        for k in _SWEEP_JSON_COLS:
            d[k] = json.loads(d[k]) if d.get(k) else ({} if k in ("extra", "grid") else [])
        return Sweep(**d)

    def get_sweep(self, name_or_id: str) -> Sweep:
        row = self._conn.execute("SELECT * FROM sweeps WHERE name = ? OR sweep_id = ? ORDER BY name = ? DESC",
                                 (name_or_id, name_or_id, name_or_id)).fetchone()
        if row is None:
            names = [r[0] for r in self._conn.execute("SELECT name FROM sweeps ORDER BY created_at DESC LIMIT 5")]
            raise NotFoundError(f"unknown sweep {name_or_id!r}",
                                f"known: {', '.join(names)}" if names else "start one: crackops sweep --data DIR --grid KEY=V1,V2")
        return self._row_to_sweep(row)

    def list_sweeps(self) -> list[Sweep]:
        return [self._row_to_sweep(r) for r in self._conn.execute("SELECT * FROM sweeps ORDER BY created_at")]

    def sweep_runs(self, sweep_id: str) -> list[Run]:
        runs = [self._row_to_run(r) for r in self._conn.execute(
            "SELECT * FROM runs WHERE sweep_id = ? ORDER BY submitted_at, job_id, run_key", (sweep_id,))]
        self._set_refs(runs)
        return runs
