"""The registry's schema, as ordered migrations: each applied once, in order, recorded in
``_migrations``. Never edit one that has shipped; add the next. ``crackops.registry`` applies them."""

from __future__ import annotations

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
        "003_run_key",   # a job id may come back (Slurm controller reset): key runs by a counter
        """
        CREATE TABLE runs_keyed (
            run_key      INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id       TEXT NOT NULL,
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
            refreshed_at REAL,
            accounting   TEXT,
            extra        TEXT
        );
        INSERT INTO runs_keyed (job_id, backend, name, state, reason, exit_code, config, resources,
            submitted_at, started_at, ended_at, out_dir, log_out, log_err, metrics, collected_at,
            state_source, refreshed_at, accounting, extra)
          SELECT job_id, backend, name, state, reason, exit_code, config, resources, submitted_at,
            started_at, ended_at, out_dir, log_out, log_err, metrics, collected_at, state_source,
            refreshed_at, accounting, extra FROM runs ORDER BY submitted_at, job_id;
        DROP TABLE runs;
        ALTER TABLE runs_keyed RENAME TO runs;
        CREATE INDEX runs_job_id ON runs(job_id, submitted_at);
        CREATE INDEX runs_submitted ON runs(submitted_at);
        CREATE INDEX runs_state ON runs(state)
        """,
    ),
    (
        "004_sweeps_provenance",
        """
        CREATE TABLE sweeps (
            sweep_id     TEXT PRIMARY KEY,
            name         TEXT NOT NULL UNIQUE,
            backend      TEXT NOT NULL,
            grid         TEXT NOT NULL,    -- {key: [values]} in the order given
            seeds        TEXT NOT NULL,    -- [seed, ...]
            base_config  TEXT NOT NULL,
            resources    TEXT NOT NULL,
            max_parallel INTEGER,
            created_at   REAL NOT NULL,
            extra        TEXT              -- arrays (Slurm), queue (local), provenance summary
        );
        ALTER TABLE runs ADD COLUMN sweep_id TEXT;     -- the sweep a run belongs to, if any
        ALTER TABLE runs ADD COLUMN provenance TEXT;   -- code, packages, data fingerprint, command line
        CREATE INDEX runs_sweep ON runs(sweep_id);
        """,
    ),
    (
        "005_attempts",
        """
        ALTER TABLE runs ADD COLUMN attempt INTEGER;   -- the job's attempt number (requeues, resumes)
        ALTER TABLE runs ADD COLUMN continues TEXT;    -- job id of the run this one continues (rerun)
        """,
    ),
    (
        "006_scheduler_calls",   # one sacct call per interval for all crackops processes of a user
        """
        CREATE TABLE scheduler_calls (
            command     TEXT PRIMARY KEY,  -- 'sacct'
            next_at     REAL NOT NULL,     -- nobody calls before this (interval, backoff, call in flight)
            started_at  REAL,              -- the last call's start
            ended_at    REAL,              -- ... and end (NULL while in flight)
            duration_s  REAL,
            failures    INTEGER NOT NULL DEFAULT 0,   -- failed or slow calls in a row (backoff)
            last_error  TEXT,
            holder      TEXT               -- pid@host of the process making the call
        )
        """,
    ),
    (
        "007_reruns",   # --retries N, and one rerun per run even with several crackops processes
        """
        ALTER TABLE runs ADD COLUMN retries INTEGER;           -- automatic reruns left (submit --retries N)
        ALTER TABLE runs ADD COLUMN rerun_claimed_at REAL;     -- a crackops process took on rerunning it
        CREATE INDEX runs_continues ON runs(continues);        -- wait follows reruns: one lookup per ended run
        """,
    ),
    (
        "008_pending_submissions",   # written before sbatch: a submitter killed after it is adopted
        """
        CREATE TABLE pending_submissions (
            submission_id TEXT PRIMARY KEY,   -- config.submission_id: names the job's files
            backend       TEXT NOT NULL,
            job_name      TEXT NOT NULL,      -- what the scheduler lists the job under
            created_at    REAL NOT NULL,      -- just before the scheduler was asked
            holder        TEXT,               -- pid@host of the submitting process
            run           TEXT NOT NULL       -- the run to record once its job id is known (JSON)
        )
        """,
    ),
]
