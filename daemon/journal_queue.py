"""The journal's side of many machines: jobs sent to a broker, and who took them.

A job sent to the broker is PROCESSING under a claim named `queue:` + where it is: first
`queue:sent`, then `queue:<worker>` once a worker reports it started, with the random id of
that try (`try_id`), which the order carries and every report names. Such claims have no
heartbeat (the broker knows whether a worker is alive: it gives an order back when its
connection dies), so the overdue check passes them by, and a daemon restart leaves those a
worker took to their orders (`recover(keep_queued=True)`).
"""

from __future__ import annotations

import time

from privmask.daemon.journal_db import JournalDB
from privmask.daemon.journal_schema import JobState

QUEUE_PREFIX = "queue:"
SENT = QUEUE_PREFIX + "sent"


class QueueTable(JournalDB):
    def current_try(self, job_id: int) -> str | None:
        """The id of the job's try with the broker now; None when it has none (not sent, or
        done, failed or given back since): a report naming another try is stale."""
        with self._lock:
            row = self._db.execute(
                "SELECT try_id FROM jobs WHERE id = ? AND state = 'processing' "
                "AND worker LIKE 'queue:%'",
                (job_id,),
            ).fetchone()
        return None if row is None else row[0]

    def queue_started(self, job_id: int, try_id: str, worker: str) -> bool:
        """Record that `worker` started the try `try_id` of a job sent to the broker; False
        (nothing changed) when that try is no longer the job's current one."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET worker = ?, updated = ? WHERE id = ? AND state = 'processing' "
                "AND try_id = ? AND worker LIKE 'queue:%'",
                (QUEUE_PREFIX + worker, now, job_id, try_id),
            )
            if cursor.rowcount != 1:
                return False
            attempts = db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            self._event(job_id, JobState.PROCESSING, f"attempt {attempts[0]} on {worker}", now)
            return True

    def mark_local(self, job_id: int, reason: str) -> None:
        """A job sent to the broker that must run on the daemon host: back to QUEUED for the
        daemon's own workers only, with its try given back."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'queued', local = 1, attempts = MAX(0, attempts - 1), "
                "worker = NULL, heartbeat = NULL, not_before = 0, updated = ? "
                "WHERE id = ? AND state = 'processing' AND worker LIKE 'queue:%'",
                (now, job_id),
            )
            self._event(job_id, JobState.QUEUED, f"kept on the daemon host: {reason}", now)

    def with_broker(self) -> int:
        """How many jobs the broker has (sent, waiting or being worked on)."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM jobs WHERE state = 'processing' AND worker LIKE 'queue:%'"
            ).fetchone()
        return int(row[0])

    def jobs_per_worker(self) -> dict[str, tuple[int, int]]:
        """Per worker (as its claims named it): jobs it is on now, and jobs it finished."""
        with self._lock:
            rows = self._db.execute(
                "SELECT worker, sum(state = 'processing'), sum(state = 'done') FROM jobs "
                "WHERE worker IS NOT NULL AND worker != ? GROUP BY worker ORDER BY worker",
                (SENT,),
            ).fetchall()
        return {worker: (int(busy), int(done)) for worker, busy, done in rows}
