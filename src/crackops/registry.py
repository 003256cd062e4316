"""The run registry: one SQLite file in the state directory, the only module that writes it.

Safe for several crackops processes at once (WAL journal, busy timeout, short transactions).
Schema changes are ordered migrations recorded in ``_migrations``; never edit an old one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from crackops.errors import NotFoundError
from crackops.paths import state_dir, validate_job_id
from crackops.states import LIVE_STATES, TERMINAL_STATES  # noqa: F401  (re-exported)

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_runs",
        """
        CREATE TABLE runs (
            job_id       TEXT PRIMARY KEY,
            backend      TEXT NOT NULL,
            name         TEXT,
            state        TEXT NOT NULL,
            reason       TEXT,
            exit_code    TEXT,
            config       TEXT NOT NULL,
            resources    TEXT NOT NULL,
            submitted_at REAL NOT NULL,
            started_at   REAL,
            ended_at     REAL,
            out_dir      TEXT NOT NULL,
            log_out      TEXT,
            log_err      TEXT,
            metrics      TEXT,
            collected_at REAL,
            state_source TEXT,
            refreshed_at REAL
        );
        CREATE INDEX runs_submitted ON runs(submitted_at);
        CREATE INDEX runs_state ON runs(state);
        """,
    ),
    (
        "002_accounting",
        """
        ALTER TABLE runs ADD COLUMN accounting TEXT;   -- sacct numbers: elapsed, cpus, maxrss, totalcpu...
        ALTER TABLE runs ADD COLUMN extra TEXT;        -- backend-specific details (pid, submitit folder...)
        """,
    ),
    (
        "003_attempts",
        """
        ALTER TABLE runs ADD COLUMN attempt INTEGER;   -- the job's attempt number (requeues, resumes)
        ALTER TABLE runs ADD COLUMN continues TEXT;    -- job id of the run this one continues (rerun)
        """,
    ),
]

_JSON_COLS = ("config", "resources", "metrics", "accounting", "extra")


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
    attempt: int | None = None
    continues: str | None = None

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
        d["elapsed_s"] = self.elapsed_s
        return d


class Registry:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else state_dir() / "registry.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 30000")
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:  # some network filesystems refuse WAL
            pass
        self._migrate()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

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
        return [r[0] for r in self._conn.execute("SELECT name FROM _migrations ORDER BY name")]

    # ------------------------------------------------------------ rows
    @staticmethod
    def _row_to_run(row: sqlite3.Row) -> Run:
        d = dict(row)
        for k in _JSON_COLS:
            d[k] = json.loads(d[k]) if d.get(k) else ({} if k in ("config", "resources", "extra") else None)
        return Run(**d)

    def add(self, run: Run) -> Run:
        validate_job_id(run.job_id)
        d = {k: getattr(run, k) for k in run.__dataclass_fields__}
        for k in _JSON_COLS:
            d[k] = json.dumps(d[k]) if d[k] is not None else None
        cols = ", ".join(d)
        marks = ", ".join("?" for _ in d)
        with self._tx() as c:
            c.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(d.values()))
        return run

    def update(self, job_id: str, **changes: Any) -> None:
        if not changes:
            return
        bad = set(changes) - set(Run.__dataclass_fields__)
        if bad:
            raise ValueError(f"unknown run fields {bad}")
        for k in _JSON_COLS:
            if k in changes and changes[k] is not None:
                changes[k] = json.dumps(changes[k])
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._tx() as c:
            cur = c.execute(f"UPDATE runs SET {sets} WHERE job_id = ?", (*changes.values(), job_id))
            if cur.rowcount == 0:
                raise NotFoundError(f"unknown job id {job_id!r}", "see `crackops status` for the ids you have")

    def update_many(self, updates: dict[str, dict[str, Any]]) -> None:
        """Apply many updates in one transaction (status refresh of 1000 runs)."""
        with self._tx() as c:
            for job_id, changes in updates.items():
                if not changes:
                    continue
                changes = dict(changes)
                for k in _JSON_COLS:
                    if k in changes and changes[k] is not None:
                        changes[k] = json.dumps(changes[k])
                sets = ", ".join(f"{k} = ?" for k in changes)
                c.execute(f"UPDATE runs SET {sets} WHERE job_id = ?", (*changes.values(), job_id))

    def get(self, job_id: str) -> Run:
        validate_job_id(job_id)
        row = self._conn.execute("SELECT * FROM runs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown job id {job_id!r}", "see `crackops status` for the ids you have")
        return self._row_to_run(row)

    def list(self, job_ids: Iterable[str] | None = None, states: Iterable[str] | None = None,
             limit: int | None = None) -> list[Run]:
        sql, args = "SELECT * FROM runs", []
        where = []
        if job_ids is not None:
            ids = [validate_job_id(j) for j in job_ids]
            where.append(f"job_id IN ({', '.join('?' for _ in ids)})")
            args += ids
        if states is not None:
            st = list(states)
            where.append(f"state IN ({', '.join('?' for _ in st)})")
            args += st
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY submitted_at, job_id"
        if limit:
            sql = f"SELECT * FROM ({sql.replace(' ORDER BY submitted_at, job_id', ' ORDER BY submitted_at DESC, job_id DESC')} LIMIT {int(limit)}) ORDER BY submitted_at, job_id"
        runs = [self._row_to_run(r) for r in self._conn.execute(sql, args)]
        if job_ids is not None:
            found = {r.job_id for r in runs}
            missing = [j for j in ids if j not in found]
            if missing:
                raise NotFoundError(f"unknown job id{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                                    "see `crackops status` for the ids you have")
        return runs
