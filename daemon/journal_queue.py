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
from dataclasses import dataclass

from privmask.daemon.journal_db import JournalDB
from privmask.daemon.journal_schema import JobState

QUEUE_PREFIX = "queue:"
SENT = QUEUE_PREFIX + "sent"
# the latest event of a job: when it was sent, when a worker started it, when it was done
_LATEST_EVENT = "(SELECT max(time) FROM job_events WHERE job_id = jobs.id)"


@dataclass(frozen=True)
class BrokerJob:
    """A job with the broker, as the journal has it (`privmask status`)."""

    id: int
    path: str
    worker: str | None  # the worker on it; None: sent, not taken yet
    attempt: int
    since: float  # its latest event: sent, or started by `worker`


@dataclass(frozen=True)
class QueueWorker:
    """A worker as the journal knows it: from the jobs its claims name."""

    name: str
    busy: tuple[int, ...]  # the jobs it is on now
    done: int
    seen: float  # its jobs' latest event (0: it has taken none)
    heard: float | None = None  # its latest sign of life; None: never heard (older worker)
    stopped: bool = False  # its latest sign of life said it stops


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

    def broker_jobs(self) -> list[BrokerJob]:
        """The jobs with the broker (sent, or taken by a worker), oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, path, worker, attempts, {_LATEST_EVENT} FROM jobs "
                "WHERE state = 'processing' AND worker LIKE 'queue:%' ORDER BY id"
            ).fetchall()
        return [
            BrokerJob(id_, path, None if worker == SENT else worker[len(QUEUE_PREFIX) :], n, t)
            for id_, path, worker, n, t in rows
        ]

    def worker_heard(
        self, name: str, host: str | None, concurrency: int | None, stopped: bool = False
    ) -> None:
        """A worker's sign of life (or that it stops), on the daemon's clock."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO workers_heard (name, heard, host, concurrency, stopped) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET heard = excluded.heard, "
                "host = excluded.host, concurrency = excluded.concurrency, "
                "stopped = excluded.stopped",
                (name, time.time(), host, concurrency, int(stopped)),
            )

    def queue_workers(self) -> list[QueueWorker]:
        """Every worker that took a job from the broker or said it is there, latest first. A
        job counts for the worker that holds it or held it last (a job another worker took
        over is theirs). Seen: the time of its jobs' latest event, read from `updated`, which
        every move of a job writes with its event (one scan, no look-up of every job's
        events); heard: its latest sign of life."""
        with self._lock:
            rows = self._db.execute(
                "SELECT worker, group_concat(CASE WHEN state = 'processing' THEN id END), "
                "sum(state = 'done'), max(updated) AS seen FROM jobs "
                "WHERE worker LIKE 'queue:%' AND worker != ? GROUP BY worker "
                "ORDER BY seen DESC, worker",
                (SENT,),
            ).fetchall()
            heard = {
                name: (float(when), bool(stopped))
                for name, when, stopped in self._db.execute(
                    "SELECT name, heard, stopped FROM workers_heard"
                )
            }
        found = {
            worker[len(QUEUE_PREFIX) :]: (
                tuple(sorted(int(i) for i in busy.split(","))) if busy else (),
                int(done),
                float(seen or 0.0),
            )
            for worker, busy, done, seen in rows
        }
        workers = []
        for name in set(found) | set(heard):
            busy, done, seen = found.get(name, ((), 0, 0.0))
            when, stopped = heard.get(name, (None, False))
            workers.append(QueueWorker(name, busy, done, seen, when, stopped))
        return sorted(workers, key=lambda w: (-max(w.seen, w.heard or 0.0), w.name))
