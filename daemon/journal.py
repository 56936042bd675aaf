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

One daemon at a time: the daemon records its run (`start_run`), and a worker claiming on
behalf of another run (an orphan of a daemon killed with kill -9) gets `RunEndedError`, no job.

What it cannot do: it does not stop a worker judged hung (`claims` tells the service, which
kills it); such a worker learns it lost the job when `heartbeat`, `update_claim`, `finish` or
`fail` raise `JobStateError` (pass `worker=` to `finish` and `fail` to have them check who
holds the claim).

The types, tables and migrations are in `journal_schema.py`; opening and reading in
`journal_db.py`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass

from privmask.daemon.journal_escrow import EscrowCopy, EscrowTable
from privmask.daemon.journal_queue import QUEUE_PREFIX, SENT, QueueTable
from privmask.daemon.journal_review import Review, ReviewDecision, ReviewTable
from privmask.daemon.journal_schema import (
    SCHEMA_VERSION,
    Claim,
    FileIdentity,
    Job,
    JobState,
    JobStateError,
    JournalError,
    RunEndedError,
)
from privmask.daemon.journal_sweeps import SweepTable
from privmask.daemon.retry import RetryPolicy

__all__ = [
    "SCHEMA_VERSION",
    "Claim",
    "EscrowCopy",
    "FileIdentity",
    "Job",
    "JobState",
    "JobStateError",
    "Journal",
    "JournalError",
    "Review",
    "ReviewDecision",
    "RunEndedError",
]


@dataclass(frozen=True)
class _File:
    """What intake knows of a file: its identity on disk, its content and where it came from."""

    identity: FileIdentity
    sha256: str
    folder: str
    camera: str | None


class Journal(ReviewTable, EscrowTable, SweepTable, QueueTable):
    """One connection to the journal; one per process (a lock makes it safe across threads).
    Opening, reading and the transaction helpers are in `JournalDB`; the escrow table's
    rows in `EscrowTable`; clips held for review in `ReviewTable`; sweep sources and chunks
    in `SweepTable`; jobs sent to a broker in `QueueTable`."""

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
        workers: Collection[str] | None = None,
        now: float | None = None,
        orderly: bool = False,
        keep_queued: bool = False,
    ) -> list[Job]:
        """Give back the jobs of workers that are gone; returns the jobs it changed.

        `orderly`: the daemon itself stopped them (a clean shutdown past its deadline). Such
        an interruption says nothing about the clip, so it does not use up a try.

        At daemon start (no filter) every PROCESSING job is orphaned. While other workers
        run, say which are gone: `workers` (the names they claimed with, e.g. of a worker
        process that died, or was killed for being hung: see `liveness.overdue`).
        The interrupted attempt counts: a job goes back to QUEUED (claimable at once) while
        `policy` allows another try, and is QUARANTINED ("interrupted N times") once not.
        `keep_queued`: jobs a worker took from the broker stay as they are (it reports on
        them); those sent but not taken yet go back without using a try, to be sent again
        (the daemon may have died before the broker had the order; a duplicate order finds
        the job's lease or package and its reports, naming an old try, change nothing).
        """
        policy = policy or RetryPolicy()
        now = time.time() if now is None else now
        changed: list[int] = []
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, attempts, worker FROM jobs WHERE state = 'processing'"
            ).fetchall()
            for job_id, attempts, worker in rows:
                if workers is not None and worker not in workers:
                    continue
                if keep_queued and str(worker).startswith(QUEUE_PREFIX) and worker != SENT:
                    continue  # a worker took it: it reports on it
                if orderly or worker == SENT:  # not taken yet: sent again, a new try id
                    db.execute(
                        "UPDATE jobs SET state = 'queued', attempts = MAX(0, attempts - 1), "
                        "error = NULL, worker = NULL, heartbeat = NULL, not_before = 0, "
                        "try_id = NULL, updated = ? WHERE id = ?",
                        (now, job_id),
                    )
                    why = "put back at shutdown" if orderly else "not taken from the broker yet"
                    self._event(job_id, JobState.QUEUED, why, now)
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

    def start_run(self, pid: int, now: float | None = None) -> str:
        """Record the daemon now running on this journal; returns its run id, which its
        workers claim with. Claims on behalf of any earlier run are refused from now on."""
        run, now = secrets.token_hex(8), time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "INSERT INTO daemon (id, run, pid, started) VALUES (1, ?, ?, ?) ON CONFLICT(id) "
                "DO UPDATE SET run = excluded.run, pid = excluded.pid, started = excluded.started",
                (run, pid, now),
            )
        return run

    def claim(
        self,
        worker: str,
        now: float | None = None,
        *,
        run: str | None = None,
        time_limit: float | None = None,
        local: bool | None = None,
        try_id: str | None = None,
    ) -> Job | None:
        """Take the oldest due QUEUED job for `worker`, or None when none is due.

        `run`: the daemon run the worker belongs to; RunEndedError if another daemon has
        started since. `time_limit`: seconds this try may take (see `update_claim`).
        `local`: True, only jobs that must run on the daemon host; False, only the others
        (what the queue takes); None, any. `try_id`: the id of a try sent to the broker."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            if run is not None:
                current = db.execute("SELECT run FROM daemon WHERE id = 1").fetchone()
                if current is None or current[0] != run:
                    raise RunEndedError(f"daemon run {run} has ended; {worker} gets no job")
            placed = "" if local is None else f"AND local = {int(local)} "
            row = db.execute(
                f"SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ? {placed}"
                "ORDER BY id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            deadline = None if time_limit is None else now + time_limit
            db.execute(
                "UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker = ?, "
                "heartbeat = ?, deadline = ?, package = NULL, try_id = ?, updated = ? "
                "WHERE id = ?",
                (worker, now, deadline, try_id, now, row[0]),
            )
            job = self._get(db, row[0])
            self._event(job.id, JobState.PROCESSING, f"attempt {job.attempts} by {worker}", now)
            return job

    def update_claim(
        self,
        job_id: int,
        worker: str,
        *,
        deadline: float | None = None,
        package: str | None = None,
    ) -> None:
        """What `worker` learnt about its try: the time it may take once the clip's duration
        is known, and the package it is about to write. JobStateError if not its job."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET deadline = coalesce(?, deadline), package = coalesce(?, package) "
                "WHERE id = ? AND state = 'processing' AND worker = ?",
                (deadline, package, job_id, worker),
            )
            if cursor.rowcount != 1:
                raise JobStateError(f"job {job_id} is not being processed by {worker}")

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

    def release(
        self,
        job_id: int,
        reason: str,
        delay: float,
        *,
        worker: str | None = None,
        why: str = "waiting for storage",
    ) -> None:
        """A try stopped by no fault of the clip (the site's storage full, read-only or
        missing; `why` names anything else): back to QUEUED in `delay` seconds with the try
        given back, since nothing is known about the clip."""
        now = time.time()
        with self._transaction() as db:
            self._check_processing(job_id, worker)
            db.execute(
                "UPDATE jobs SET state = 'queued', attempts = MAX(0, attempts - 1), error = ?, "
                "worker = NULL, heartbeat = NULL, not_before = ?, updated = ? WHERE id = ?",
                (reason, now + delay, now, job_id),
            )
            self._event(job_id, JobState.QUEUED, f"{why}: {reason}", now)

    # -- operator side --------------------------------------------------------------------

    def requeue(self, job_id: int, now: float | None = None) -> Job:
        """An operator's retry (`privmask retry`): QUARANTINED -> QUEUED, claimable at once,
        with its tries reset, and an event saying who did it. JobStateError from any other
        state, KeyError for no such job. Whether the source is still the clip is the
        caller's to check (the worker checks its hash again before it redacts)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            state = self._get(db, job_id).state
            if state is not JobState.QUARANTINED:
                raise JobStateError(f"job {job_id} is {state}, not quarantined")
            db.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, worker = NULL, "
                "heartbeat = NULL, deadline = NULL, package = NULL, not_before = 0, "
                "updated = ? WHERE id = ?",
                (now, job_id),
            )
            self._event(job_id, JobState.QUEUED, "retried by operator", now)
            return self._get(db, job_id)

    # -- helpers (called inside a transaction) --------------------------------------------

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
