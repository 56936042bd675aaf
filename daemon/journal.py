"""The SQLite journal of every file and job of the watch-folder daemon.

One database file, one owner per connection: the daemon's main process records files
(`seen`, `enqueue`, `quarantine_file`, `recover`), and any worker process, each with its own
`Journal`, claims and settles jobs (`claim`, `heartbeat`, `finish`, `fail`).

Why it cannot lose or duplicate work:

- Every change is one explicit transaction (`BEGIN IMMEDIATE`, so a writer takes the write
  lock before it reads): a file row and its job row are written together or not at all, and
  two processes can never claim the same job.
- `journal_mode=WAL` with `synchronous=FULL`: a committed transaction survives kill -9 and a
  power cut; an uncommitted one is rolled back when the database is next opened.
- Content is keyed by sha256, and a partial UNIQUE index (`WHERE state != 'duplicate'`) makes
  SQLite itself refuse a second real job for the same content.
- A job stays PROCESSING while a worker has it; `recover` at start-up puts the jobs of dead
  workers back in the queue, counting the interrupted attempt, so a file that crashes the
  daemon every time is quarantined after `RetryPolicy.max_attempts`.

Every transition appends a row to `job_events` (time, state, detail), which triggers keep
append-only, for the audit trail.

What it cannot do: it does not stop a worker that `recover(stale_after=...)` judged hung;
that worker learns it lost the job when `heartbeat`, `finish` or `fail` raise `JobStateError`
(pass `worker=` to `finish` and `fail` to have them check who holds the claim).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from privmask.daemon.retry import RetryPolicy

SCHEMA_VERSION = 1


class JobState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


class JournalError(Exception):
    """The journal cannot be used (for example, it was written by a newer privmask)."""


class JobStateError(JournalError):
    """A transition was asked of a job that is not in the state it needs (or not yours)."""


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


class FileIdentity(NamedTuple):
    """A file as intake saw it: the same path, size, mtime and inode is the same file."""

    path: str
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class _File:
    """What intake knows of a file: its identity on disk, its content and where it came from."""

    identity: FileIdentity
    sha256: str
    folder: str
    camera: str | None


def is_stale(heartbeat: float | None, now: float, stale_after: float | None) -> bool:
    """Whether a PROCESSING job's worker counts as gone (None `stale_after`: all are gone)."""
    if stale_after is None or heartbeat is None:
        return True
    return now - heartbeat > stale_after


_STATES = ", ".join(f"'{s.value}'" for s in JobState)

# Statements, not a script: `executescript` would commit in the middle of our transaction.
_SCHEMA_V1 = (
    f"""CREATE TABLE jobs (
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
_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1}

_JOB_COLUMNS = (
    "id, path, sha256, size, state, attempts, camera, folder, error, output, ruleset, "
    "created, updated, duplicate_of"
)


def _job(row: tuple[Any, ...]) -> Job:
    (id_, path, sha, size, state, attempts, camera, folder, error, output, ruleset) = row[:11]
    created, updated, duplicate_of = row[11:14]
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
    )


class Journal:
    """One connection to the journal; one per process (a lock makes it safe across threads)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        # isolation_level=None: no implicit transactions; every one is opened explicitly.
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._configure(timeout)
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _configure(self, timeout: float) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"{self.path}: cannot use WAL journal mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> None:
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"{self.path}: journal schema {version} is newer than this privmask "
                    f"understands ({SCHEMA_VERSION}); upgrade privmask"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    self._db.execute(statement)
            if version != SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock first, so reads in it stay true."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- intake side ----------------------------------------------------------------------

    def seen(self, identity: FileIdentity) -> bool:
        """Whether this exact file (path, size, mtime, inode) is journaled already."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM files WHERE path = ? AND size = ? AND mtime_ns = ? AND inode = ?",
                tuple(identity),
            ).fetchone()
        return row is not None

    def enqueue(
        self,
        identity: FileIdentity,
        sha256: str,
        folder: str,
        camera: str | None = None,
    ) -> tuple[Job, bool]:
        """Record a stable file: a new QUEUED job (True), or its DUPLICATE record (False).

        Content that any job holds already (whatever its state) is recorded as a DUPLICATE
        of that job and never queued. A file announced again with the same identity returns
        the job it got the first time, with False.
        """
        file = _File(identity, sha256, folder, camera)
        return self._record(file, JobState.QUEUED, None, f"enqueued {identity.path}")

    def quarantine_file(
        self,
        identity: FileIdentity,
        sha256: str,
        folder: str,
        reason: str,
        camera: str | None = None,
    ) -> Job:
        """Record a file rejected at validation as a QUARANTINED job with `reason`.

        Content some job holds already is recorded as a DUPLICATE of that job instead (the
        existing job decides its fate), and a file recorded before returns its job as is.
        """
        file = _File(identity, sha256, folder, camera)
        return self._record(file, JobState.QUARANTINED, reason, reason)[0]

    def recover(
        self,
        policy: RetryPolicy | None = None,
        *,
        stale_after: float | None = None,
        workers: Collection[str] | None = None,
        now: float | None = None,
        orderly: bool = False,
    ) -> list[Job]:
        """Give back the jobs of workers that are gone; returns the jobs it changed.

        `orderly`: the daemon itself stopped them (a clean shutdown past its deadline). Such
        an interruption says nothing about the clip, so it does not use up a try.

        At daemon start (no filter) every PROCESSING job is orphaned. While other workers
        run, say which are gone: `workers` (the names they claimed with, e.g. of a worker
        process that died) and/or `stale_after` (heartbeat older than that many seconds).
        The interrupted attempt counts: a job goes back to QUEUED (claimable at once) while
        `policy` allows another try, and is QUARANTINED ("interrupted N times") once not.
        """
        policy = policy or RetryPolicy()
        now = time.time() if now is None else now
        changed: list[int] = []
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, attempts, heartbeat, worker FROM jobs WHERE state = 'processing'"
            ).fetchall()
            for job_id, attempts, heartbeat, worker in rows:
                if workers is not None and worker not in workers:
                    continue
                if not is_stale(heartbeat, now, stale_after):
                    continue
                if orderly:
                    db.execute(
                        "UPDATE jobs SET state = 'queued', attempts = MAX(0, attempts - 1), "
                        "error = NULL, worker = NULL, heartbeat = NULL, not_before = 0, "
                        "updated = ? WHERE id = ?",
                        (now, job_id),
                    )
                    self._event(job_id, JobState.QUEUED, "put back at shutdown", now)
                    changed.append(job_id)
                    continue
                interruptions = self._interruptions(job_id) + 1
                if policy.next_step(attempts, permanent=False) == "quarantine":
                    state, error = JobState.QUARANTINED, f"interrupted {interruptions} times"
                else:
                    state, error = JobState.QUEUED, f"interrupted (attempt {attempts})"
                db.execute(
                    "UPDATE jobs SET state = ?, error = ?, worker = NULL, heartbeat = NULL, "
                    "not_before = 0, updated = ? WHERE id = ?",
                    (state.value, error, now, job_id),
                )
                self._event(job_id, state, f"interrupted: worker {worker} gone", now)
                changed.append(job_id)
            return [self._get(db, job_id) for job_id in changed]

    # -- worker side ----------------------------------------------------------------------

    def claim(self, worker: str, now: float | None = None) -> Job | None:
        """Take the oldest due QUEUED job for `worker`, or None when none is due."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ? "
                "ORDER BY id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker = ?, "
                "heartbeat = ?, updated = ? WHERE id = ?",
                (worker, now, now, row[0]),
            )
            job = self._get(db, row[0])
            self._event(job.id, JobState.PROCESSING, f"attempt {job.attempts} by {worker}", now)
            return job

    def heartbeat(self, job_id: int, worker: str) -> None:
        """Say `worker` is still on the job; raises JobStateError if it no longer holds it."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET heartbeat = ? WHERE id = ? AND state = 'processing' "
                "AND worker = ?",
                (now, job_id, worker),
            )
            if cursor.rowcount != 1:
                raise JobStateError(f"job {job_id} is not being processed by {worker}")

    def finish(
        self, job_id: int, output: str, ruleset: str | None, *, worker: str | None = None
    ) -> None:
        """PROCESSING -> DONE with its output; raises JobStateError from any other state."""
        now = time.time()
        with self._transaction() as db:
            self._check_processing(job_id, worker)
            db.execute(
                "UPDATE jobs SET state = 'done', output = ?, ruleset = ?, error = NULL, "
                "heartbeat = NULL, updated = ? WHERE id = ?",
                (output, ruleset, now, job_id),
            )
            self._event(job_id, JobState.DONE, output, now)

    def fail(
        self,
        job_id: int,
        error: str,
        policy: RetryPolicy,
        permanent: bool = False,
        now: float | None = None,
        *,
        worker: str | None = None,
    ) -> JobState:
        """A try failed: back to QUEUED after a backoff, or QUARANTINED; returns which."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            attempts = self._check_processing(job_id, worker)
            if policy.next_step(attempts, permanent) == "quarantine":
                state, not_before = JobState.QUARANTINED, now
            else:
                state, not_before = JobState.QUEUED, now + policy.delay(attempts)
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, not_before = ?, heartbeat = NULL, "
                "updated = ? WHERE id = ?",
                (state.value, error, not_before, now, job_id),
            )
            self._event(job_id, state, error, now)
            return state

    # -- reading --------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job with this id; KeyError if there is none."""
        with self._lock:
            return self._get(self._db, job_id)

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state, every state present."""
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        found = dict(rows)
        return {state.value: found.get(state.value, 0) for state in JobState}

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs in id order, optionally only those in `state`."""
        query = f"SELECT {_JOB_COLUMNS} FROM jobs"
        params: tuple[Any, ...] = (limit,)
        if state is not None:
            query += " WHERE state = ?"
            params = (JobState(state).value, limit)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id LIMIT ?", params).fetchall()
        return [_job(row) for row in rows]

    def events(self, job_id: int) -> list[tuple[float, str, str]]:
        """The audit trail of one job: (time, state, detail), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT time, state, detail FROM job_events WHERE job_id = ? ORDER BY id",
                (job_id,),
            ).fetchall()
        return [(t, s, d) for t, s, d in rows]

    # -- helpers (called inside a transaction) --------------------------------------------

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job:
        row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _job(row)

    def _record(
        self, file: _File, state: JobState, error: str | None, detail: str
    ) -> tuple[Job, bool]:
        """Write a file and its job in one transaction: both rows or neither survive a crash."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT job_id FROM files WHERE path = ? AND size = ? AND mtime_ns = ? "
                "AND inode = ?",
                tuple(file.identity),
            ).fetchone()
            if row is not None:
                return self._get(db, row[0]), False
            owner = db.execute(
                "SELECT id FROM jobs WHERE sha256 = ? AND state != 'duplicate'", (file.sha256,)
            ).fetchone()
            duplicate_of = None if owner is None else int(owner[0])
            if duplicate_of is not None:
                state, detail = JobState.DUPLICATE, f"same content as job {duplicate_of}"
            cursor = db.execute(
                "INSERT INTO jobs (path, sha256, size, state, camera, folder, error, "
                "duplicate_of, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    file.identity.path,
                    file.sha256,
                    file.identity.size,
                    state.value,
                    file.camera,
                    file.folder,
                    error,
                    duplicate_of,
                    now,
                    now,
                ),
            )
            job_id = int(cursor.lastrowid or 0)
            db.execute(
                "INSERT INTO files (path, size, mtime_ns, inode, sha256, folder, job_id, "
                "recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *file.identity,
                    file.sha256,
                    file.folder,
                    job_id,
                    now,
                ),
            )
            self._event(job_id, state, detail, now)
            return self._get(db, job_id), duplicate_of is None

    def _event(self, job_id: int, state: JobState, detail: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO job_events (job_id, time, state, detail) VALUES (?, ?, ?, ?)",
            (job_id, now, state.value, detail),
        )

    def _interruptions(self, job_id: int) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM job_events WHERE job_id = ? AND detail LIKE 'interrupted:%'",
            (job_id,),
        ).fetchone()
        return int(row[0])

    def _check_processing(self, job_id: int, worker: str | None) -> int:
        """The job's attempts, if it is PROCESSING (by `worker`, when given); else raise."""
        row = self._db.execute(
            "SELECT state, worker, attempts FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise KeyError(job_id)
        state, holder, attempts = row
        if state != JobState.PROCESSING:
            raise JobStateError(f"job {job_id} is {state}, not processing")
        if worker is not None and holder != worker:
            raise JobStateError(f"job {job_id} is held by {holder}, not {worker}")
        return int(attempts)
