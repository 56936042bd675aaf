"""The journal's connection: a private file opened with explicit pragmas at the current
schema, transactions that take the write lock first, and every read.

`Journal` (journal.py) adds the writes: intake, recovery and the workers' claims.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from privmask.daemon.journal_schema import (
    JOB_COLUMNS,
    Claim,
    FileIdentity,
    Job,
    JobState,
    JournalError,
    check_version,
    configure,
    enforce_references,
    job_from_row,
    make_private,
    migrate,
)


class JournalDB:
    """One connection; a lock makes it safe across threads."""

    def __init__(self, path: Path, timeout: float = 30.0, *, upgrade: bool = True) -> None:
        """`upgrade`: bring an older schema up to this privmask's (the daemon does, at its
        start). Commands open with False: a newer privmask's command beside an older
        running daemon must not move the journal where that daemon cannot read it; a
        journal of another schema is then a JournalError saying so, and a missing one too."""
        self.path = Path(path)
        self._lock = threading.RLock()
        if not upgrade and not self.path.exists():
            raise JournalError(f"no journal at {self.path}: the daemon has not run with it")
        make_private(self.path)
        # isolation_level=None: no implicit transactions; every one is opened explicitly.
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            configure(self._db, self.path, timeout)
            with self._transaction() as db:
                if upgrade:
                    migrate(db, self.path)
                else:
                    check_version(db, self.path)
            enforce_references(self._db)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> JournalDB:
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

    # -- reading ----------------------------------------------------------------------------

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

    def job_of_package(self, package: Path) -> Job | None:
        """The job that published `package` (the path its worker recorded), if any."""
        path = str(Path(package).absolute())
        with self._lock:
            row = self._db.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE package = ? OR output = ? ORDER BY id",
                (path, path),
            ).fetchone()
        return job_from_row(row) if row else None

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs in id order, optionally only those in `state`."""
        query = f"SELECT {JOB_COLUMNS} FROM jobs"
        params: tuple[Any, ...] = (limit,)
        if state is not None:
            query += " WHERE state = ?"
            params = (JobState(state).value, limit)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id LIMIT ?", params).fetchall()
        return [job_from_row(row) for row in rows]

    def claims(self) -> list[Claim]:
        """Every PROCESSING job's worker, last heartbeat, deadline and package, by job id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, worker, heartbeat, deadline, package FROM jobs "
                "WHERE state = 'processing' ORDER BY id"
            ).fetchall()
        return [Claim(*row) for row in rows]

    def first_file(self, job_id: int) -> FileIdentity:
        """The file as intake took it for this job (its mtime is the recording time of last
        resort, and must not change if the file is touched before a retry)."""
        with self._lock:
            row = self._db.execute(
                "SELECT path, size, mtime_ns, inode FROM files WHERE job_id = ? ORDER BY id "
                "LIMIT 1",
                (job_id,),
            ).fetchone()
        if row is None:
            raise KeyError(job_id)
        return FileIdentity(*row)

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
        row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return job_from_row(row)

    def _event(self, job_id: int, state: JobState, detail: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO job_events (job_id, time, state, detail) VALUES (?, ?, ?, ?)",
            (job_id, now, state.value, detail),
        )
