"""The journal's review table: clips held for a reviewer (`review: required`) and decisions.

A worker that has analysed a clip holds its job for review (PROCESSING -> REVIEW). A REVIEW
job is never claimed and `recover` leaves it alone, so it waits across restarts. A
reviewer's decision (`decide`) sends it back to the queue with the decision stored
(approved), or ends it (REJECTED: no package, the source kept). Every move, and every view
of its unmasked pictures (`note`), is an event in `job_events`: who, when, why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from privmask.daemon.journal_db import JournalDB
from privmask.daemon.journal_schema import JOB_COLUMNS, Job, JobState, JobStateError, job_from_row

_COLUMNS = "analysis, held, approve, keep_visible, regions, reason, reviewer, decided"


@dataclass(frozen=True)
class ReviewDecision:
    """A reviewer's decision as the journal keeps it (plain values).

    `regions`: each `{"points": [[x, y], ...], "relative": bool, "reference_size": [w, h]
    or None}`, masked on every frame besides the rule's own regions."""

    approve: bool
    keep_visible: tuple[int, ...]
    regions: tuple[dict[str, Any], ...]
    reason: str
    reviewer: str
    decided: float = 0.0  # epoch seconds; set by `decide`


@dataclass(frozen=True)
class Review:
    """A job's review: its analysis folder, since when it waits, and the decision, if any."""

    job: int
    analysis: str
    held: float
    decision: ReviewDecision | None


class ReviewTable(JournalDB):
    def hold_for_review(self, job_id: int, worker: str, analysis: str, why: str = "") -> None:
        """PROCESSING (by `worker`) -> REVIEW, waiting with `analysis`; a decision made
        earlier is cleared (the clip was analysed again). JobStateError if not its job."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = 'review', worker = NULL, heartbeat = NULL, "
                "deadline = NULL, package = NULL, error = NULL, updated = ? "
                "WHERE id = ? AND state = 'processing' AND worker = ?",
                (now, job_id, worker),
            )
            if cursor.rowcount != 1:
                raise JobStateError(f"job {job_id} is not being processed by {worker}")
            db.execute(
                f"INSERT OR REPLACE INTO reviews (job_id, {_COLUMNS}) "
                "VALUES (?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL)",
                (job_id, analysis, now),
            )
            self._event(job_id, JobState.REVIEW, f"held for review{': ' + why if why else ''}", now)

    def decide(self, job_id: int, decision: ReviewDecision) -> Job:
        """REVIEW -> QUEUED with `decision` stored (approved), or -> REJECTED; returns the
        job. JobStateError if it is not waiting for review, KeyError for no such job."""
        now = time.time()
        approve = decision.approve
        with self._transaction() as db:
            state = self._get(db, job_id).state
            if state is not JobState.REVIEW:
                raise JobStateError(f"job {job_id} is {state}, not waiting for review")
            db.execute(
                "UPDATE reviews SET approve = ?, keep_visible = ?, regions = ?, reason = ?, "
                "reviewer = ?, decided = ? WHERE job_id = ?",
                (
                    int(approve),
                    json.dumps(list(decision.keep_visible)),
                    json.dumps(list(decision.regions)),
                    decision.reason,
                    decision.reviewer,
                    now,
                    job_id,
                ),
            )
            new = JobState.QUEUED if approve else JobState.REJECTED
            db.execute(
                # being held was no failed try: an approved job starts its tries afresh
                "UPDATE jobs SET state = ?, attempts = 0, not_before = 0, error = ?, updated = ? "
                "WHERE id = ?",
                (new.value, None if approve else f"rejected: {decision.reason}", now, job_id),
            )
            kept = ",".join(map(str, decision.keep_visible)) or "none"
            verb = "approved" if approve else "rejected"
            detail = (
                f"{verb} by {decision.reviewer}: {decision.reason} (kept visible: {kept}; "
                f"areas added: {len(decision.regions)})"
            )
            self._event(job_id, new, detail, now)
            return self._get(db, job_id)

    def note(self, job_id: int, detail: str) -> None:
        """An event on a job that does not move it (a reviewer viewed its crops)."""
        now = time.time()
        with self._transaction() as db:
            job = self._get(db, job_id)
            self._event(job_id, job.state, detail, now)

    def waiting_for_review(self) -> list[tuple[Job, Review]]:
        """The jobs waiting for review and their reviews, longest waiting first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_prefixed(JOB_COLUMNS)}, r.{_COLUMNS.replace(', ', ', r.')} "
                "FROM jobs j JOIN reviews r ON r.job_id = j.id WHERE j.state = 'review' "
                "ORDER BY r.held, j.id"
            ).fetchall()
        width = len(JOB_COLUMNS.split(","))
        return [
            (job, _review(job.id, row[width:]))
            for row in rows
            for job in [job_from_row(row[:width])]
        ]

    def review_of(self, job_id: int) -> Review | None:
        """The job's review (held, and decided or not), or None if it was never held."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM reviews WHERE job_id = ?", (job_id,)
            ).fetchone()
        return None if row is None else _review(job_id, row)


def _prefixed(columns: str) -> str:
    return ", ".join(f"j.{c.strip()}" for c in columns.split(","))


def _review(job_id: int, row: tuple[Any, ...]) -> Review:
    analysis, held, approve, keep, regions, reason, reviewer, decided = row
    decision = None
    if approve is not None:
        decision = ReviewDecision(
            bool(approve),
            tuple(int(i) for i in json.loads(keep)),
            tuple(json.loads(regions)),
            reason,
            reviewer,
            decided,
        )
    return Review(job_id, analysis, held, decision)
