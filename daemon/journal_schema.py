"""What the journal holds: its types, its tables, their migrations, and how it is opened.

`journal.py` reads and writes through these; everything public here is importable from
`privmask.daemon.journal` as well.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA_VERSION = 6


class JobState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    REVIEW = "review"  # analysed, held until a reviewer decides; never claimed or recovered
    REJECTED = "rejected"  # a reviewer said no: no package, the source kept as it is


class JournalError(Exception):
    """The journal cannot be used (for example, it was written by a newer privmask)."""


class JobStateError(JournalError):
    """A transition was asked of a job that is not in the state it needs (or not yours)."""


class RunEndedError(JournalError):
    """A worker asked for work on behalf of a daemon that is no longer the one running."""


@dataclass(frozen=True)
class Job:
    id: int
    path: str
    sha256: str
    size: int
    state: JobState
    attempts: int
    camera: str | None
    folder: str
    error: str | None
    output: str | None
    ruleset: str | None
    created: float
    updated: float
    duplicate_of: int | None = None
    """For a DUPLICATE record: the id of the job that holds the same content."""
    package: str | None = None
    """The package its latest try was writing: a killed try's partial file is beside it."""


class FileIdentity(NamedTuple):
    """A file as intake saw it: the same path, size, mtime and inode is the same file."""

    path: str
    size: int
    mtime_ns: int
    inode: int


class Claim(NamedTuple):
    """A PROCESSING job as its worker last reported it (what tells a hung worker)."""

    job: int
    worker: str
    heartbeat: float | None
    deadline: float | None  # epoch seconds the try must end by
    package: str | None


_STATES = ", ".join(f"'{s.value}'" for s in JobState)
# the states version 1 knew, as its table was made (version 4 rebuilds the table for more)
_V1_STATES = "'queued', 'processing', 'done', 'failed', 'quarantined', 'duplicate'"

# Statements, not a script: `executescript` would commit in the middle of our transaction.
SCHEMA_V1 = (
    f"""CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_V1_STATES})),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        camera TEXT,
        folder TEXT NOT NULL,
        error TEXT,
        output TEXT,
        ruleset TEXT,
        worker TEXT,
        heartbeat REAL,
        not_before REAL NOT NULL DEFAULT 0,  -- epoch seconds; 0: claimable at once
        duplicate_of INTEGER REFERENCES jobs(id),
        created REAL NOT NULL,
        updated REAL NOT NULL,
        CHECK ((state = 'duplicate') = (duplicate_of IS NOT NULL))
    )""",
    # The invariant "same content is processed once" held by SQLite, not only by this code.
    "CREATE UNIQUE INDEX jobs_content ON jobs(sha256) WHERE state != 'duplicate'",
    "CREATE INDEX jobs_queue ON jobs(id, not_before) WHERE state = 'queued'",
    "CREATE INDEX jobs_state ON jobs(state, id)",
    """CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        folder TEXT NOT NULL,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        recorded REAL NOT NULL,
        UNIQUE (path, size, mtime_ns, inode)
    )""",
    "CREATE INDEX files_job ON files(job_id)",
    """CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        time REAL NOT NULL,
        state TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX job_events_job ON job_events(job_id, id)",
    """CREATE TRIGGER job_events_no_update BEFORE UPDATE ON job_events
       BEGIN SELECT RAISE(ABORT, 'job_events is append-only'); END""",
    """CREATE TRIGGER job_events_no_delete BEFORE DELETE ON job_events
       BEGIN SELECT RAISE(ABORT, 'job_events is append-only'); END""",
)
# Version 2: a try's time limit and the package it writes; the daemon run workers belong to.
SCHEMA_V2 = (
    "ALTER TABLE jobs ADD COLUMN deadline REAL",  # epoch seconds; NULL: no limit
    "ALTER TABLE jobs ADD COLUMN package TEXT",
    """CREATE TABLE daemon (
        id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row: the daemon of this state folder
        run TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started REAL NOT NULL
    )""",
)
# Version 3: escrow copies of originals (custody): one row per job, file jobs and live
# segments alike (`job` is text: "000123" or "live-..."); rows are never deleted, a copy
# removed by retention keeps its row with `deleted` set.
SCHEMA_V3 = (
    """CREATE TABLE escrow (
        job TEXT PRIMARY KEY,
        file TEXT NOT NULL,             -- name in the escrow store: the job id, never a camera
        sha256 TEXT NOT NULL,           -- of the age file
        bytes INTEGER NOT NULL,
        source_sha256 TEXT NOT NULL,    -- of the original it holds
        written REAL NOT NULL,
        expires REAL,                   -- epoch seconds; NULL: kept until a person removes it
        deleted REAL,
        rule TEXT NOT NULL,
        ruleset TEXT NOT NULL,
        recorded TEXT                   -- recording start, ISO 8601, where known
    )""",
    "CREATE INDEX escrow_expires ON escrow(expires) WHERE deleted IS NULL",
)
# Version 4: review (`review: required`). The state CHECK lists the states, and SQLite
# cannot change a constraint: the jobs table is rebuilt (SQLite's own 12-step recipe, run
# with foreign keys off and checked before commit), its indexes made again; the other
# tables, their triggers and their references to `jobs` are untouched.
_JOBS_V4 = f"""CREATE TABLE jobs_v4 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_STATES})),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        camera TEXT,
        folder TEXT NOT NULL,
        error TEXT,
        output TEXT,
        ruleset TEXT,
        worker TEXT,
        heartbeat REAL,
        not_before REAL NOT NULL DEFAULT 0,  -- epoch seconds; 0: claimable at once
        duplicate_of INTEGER REFERENCES jobs(id),
        created REAL NOT NULL,
        updated REAL NOT NULL,
        deadline REAL,  -- epoch seconds; NULL: no limit
        package TEXT,
        CHECK ((state = 'duplicate') = (duplicate_of IS NOT NULL))
    )"""
_JOB_FIELDS = (
    "id, path, sha256, size, state, attempts, camera, folder, error, output, ruleset, worker, "
    "heartbeat, not_before, duplicate_of, created, updated, deadline, package"
)
SCHEMA_V4 = (
    _JOBS_V4,
    f"INSERT INTO jobs_v4 ({_JOB_FIELDS}) SELECT {_JOB_FIELDS} FROM jobs",
    "DROP TABLE jobs",
    "ALTER TABLE jobs_v4 RENAME TO jobs",
    *SCHEMA_V1[1:4],  # the jobs indexes, as version 1 made them
    # one row per job held for review: its analysis, and the reviewer's decision once made
    # (NULL `approve`: undecided). A review held again (the rules changed) clears the
    # decision; every decision stays in job_events.
    """CREATE TABLE reviews (
        job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
        analysis TEXT NOT NULL,       -- the analysis folder (mode 700: unmasked crops)
        held REAL NOT NULL,           -- when it began waiting
        approve INTEGER CHECK (approve IN (0, 1)),
        keep_visible TEXT,            -- JSON list of subject ids
        regions TEXT,                 -- JSON list of {points, relative, reference_size}
        reason TEXT,
        reviewer TEXT,
        decided REAL
    )""",
)
# Version 5: scheduled sweeps (`journal_sweeps.py`). Per sweep source: how far it is
# covered (the watermark), how far its last listing reached, its last error and when it is
# tried again. Per chunk: its key, UNIQUE, so that a double fire, a restart or an
# overlapping manual run records it once; its state and the job that took it.
SCHEMA_V5 = (
    """CREATE TABLE sweep_sources (
        name TEXT PRIMARY KEY,
        covered_to REAL,          -- epoch seconds: every chunk before it settled; NULL: none
        listed_to REAL,           -- the last complete listing reached here
        last_run REAL,
        last_error TEXT,          -- one line, never a password; NULL after a good run
        failures INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL         -- a retry after an error, epoch seconds
    )""",
    """CREATE TABLE sweep_chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        recording TEXT NOT NULL,
        camera TEXT,
        start REAL NOT NULL,
        end REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('planned', 'fetching', 'queued', 'gap', 'settled')),
        job_id INTEGER REFERENCES jobs(id),
        gap INTEGER NOT NULL DEFAULT 0 CHECK (gap IN (0, 1)),  -- part of it had no data
        path TEXT,                -- the clip its job reads
        recorded REAL,            -- its first frame's recording time, as the source told it
        own_copy INTEGER NOT NULL DEFAULT 0 CHECK (own_copy IN (0, 1)),
        created REAL NOT NULL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX sweep_chunks_source ON sweep_chunks(source, state, start)",
    "CREATE INDEX sweep_chunks_recording ON sweep_chunks(source, recording)",
)
# Version 6: many machines (`queue/`). A job that must run on the daemon host (held for
# review: its unmasked analysis never leaves it) is marked `local`; the daemon's own
# workers take only those while a broker takes the rest. A try sent to the broker has an id.
SCHEMA_V6 = (
    "ALTER TABLE jobs ADD COLUMN local INTEGER NOT NULL DEFAULT 0 CHECK (local IN (0, 1))",
    # the random id of the try sent to the broker: only reports naming it are applied
    "ALTER TABLE jobs ADD COLUMN try_id TEXT",
    # each worker's latest sign of life (a signed report every queue.alive_seconds)
    """CREATE TABLE workers_heard (
        name TEXT PRIMARY KEY,
        heard REAL NOT NULL,      -- epoch seconds, the daemon's clock
        host TEXT,
        concurrency INTEGER,
        stopped INTEGER NOT NULL DEFAULT 0 CHECK (stopped IN (0, 1))  -- said it stops
    )""",
)
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: SCHEMA_V1,
    2: SCHEMA_V2,
    3: SCHEMA_V3,
    4: SCHEMA_V4,
    5: SCHEMA_V5,
    6: SCHEMA_V6,
}

JOB_COLUMNS = (
    "id, path, sha256, size, state, attempts, camera, folder, error, output, ruleset, "
    "created, updated, duplicate_of, package"
)


def job_from_row(row: tuple[Any, ...]) -> Job:
    (id_, path, sha, size, state, attempts, camera, folder, error, output, ruleset) = row[:11]
    created, updated, duplicate_of, package = row[11:15]
    return Job(
        id=id_,
        path=path,
        sha256=sha,
        size=size,
        state=JobState(state),
        attempts=attempts,
        camera=camera,
        folder=folder,
        error=error,
        output=output,
        ruleset=ruleset,
        created=created,
        updated=updated,
        duplicate_of=duplicate_of,
        package=package,
    )


def make_private(path: Path) -> None:
    """The journal holds inbox paths and the audit trail: its owner's alone. A new file is
    made 0600 before SQLite opens it (SQLite gives its -wal and -shm files the same mode);
    an older, readable one is tightened when its owner opens it."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = file.stat()
        except OSError:
            continue
        if file.is_file() and info.st_uid == os.geteuid() and info.st_mode & 0o077:
            file.chmod(0o600)


def configure(db: sqlite3.Connection, path: Path, timeout: float) -> None:
    """The pragmas every connection needs; explicit, since SQLite's defaults are not these."""
    db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise JournalError(f"{path}: cannot use WAL journal mode (got {mode!r})")
    db.execute("PRAGMA synchronous = FULL")


def enforce_references(db: sqlite3.Connection) -> None:
    """Foreign keys on, once migrated: a table rebuild needs them off (a pragma that cannot
    change inside a transaction), and every later write needs them on."""
    db.execute("PRAGMA foreign_keys = ON")


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path}: journal schema {version} is newer than this privmask "
            f"understands ({SCHEMA_VERSION}); upgrade privmask"
        )


def check_version(db: sqlite3.Connection, path: Path) -> None:
    """JournalError unless the journal has this privmask's schema (for a command, which
    never upgrades it)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    _refuse_newer(version, path)
    if version < SCHEMA_VERSION:
        raise JournalError(
            f"{path}: journal schema {version} is older than this privmask's "
            f"({SCHEMA_VERSION}); restart the daemon (privmask run) with this privmask to "
            "upgrade it: commands never do"
        )


def migrate(db: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> None:
    """Bring the schema to `target` (SCHEMA_VERSION; tests make older ones), step by step.
    Call inside a write transaction, with foreign keys off: a step may rebuild a table, and
    the references are checked here before the transaction commits."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    _refuse_newer(version, path)
    for step in range(version + 1, target + 1):
        for statement in MIGRATIONS[step]:
            db.execute(statement)
    if version < target:
        broken = db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:  # raised inside the transaction: rolled back, the old schema kept
            raise JournalError(f"{path}: migration broke references: {broken[:3]}")
        db.execute(f"PRAGMA user_version = {target}")
