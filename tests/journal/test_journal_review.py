"""Clips held for review in the real SQLite journal: held by their worker, never claimed or
recovered while waiting, decided once (approved back to the queue, or rejected for good),
every move an event; and a journal of schema 3, made by the code's own migrations, brought
to schema 4 with its jobs, indexes and triggers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from privmask.daemon.journal import (
    SCHEMA_VERSION,
    FileIdentity,
    JobState,
    JobStateError,
    Journal,
    ReviewDecision,
)

from journals import old_journal

REGION = {"points": [[10.0, 10.0], [50.0, 40.0]], "relative": False, "reference_size": [320, 240]}


def _queued(journal: Journal, n: int = 1) -> int:
    identity = FileIdentity(f"/inbox/clip{n}.mp4", 100 + n, n, n)
    job, _ = journal.enqueue(identity, f"{n:064x}", "/inbox", camera="cam1")
    return job.id


def _held(journal: Journal, n: int = 1) -> int:
    job = _queued(journal, n)
    claimed = journal.claim("w1")
    assert claimed is not None and claimed.id == job
    journal.hold_for_review(job, "w1", f"/state/review/{job:06d}")
    return job


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "journal.sqlite") as opened:
        yield opened  # type: ignore[misc]


def test_a_held_job_waits_and_is_neither_claimed_nor_recovered(journal: Journal) -> None:
    job = _held(journal)
    assert journal.get(job).state is JobState.REVIEW
    assert journal.claim("w2") is None
    assert journal.recover() == []
    waiting = journal.waiting_for_review()
    assert [(j.id, r.analysis, r.decision) for j, r in waiting] == [
        (job, f"/state/review/{job:06d}", None)
    ]
    assert journal.counts()["review"] == 1


def test_only_the_worker_holding_the_job_may_hold_it_for_review(journal: Journal) -> None:
    job = _queued(journal)
    with pytest.raises(JobStateError):
        journal.hold_for_review(job, "w1", "/a")  # queued, not processing
    journal.claim("w1")
    with pytest.raises(JobStateError):
        journal.hold_for_review(job, "w2", "/a")
    assert journal.get(job).state is JobState.PROCESSING


def test_approval_requeues_with_the_decision_and_records_who_and_why(journal: Journal) -> None:
    job = _held(journal)
    decision = ReviewDecision(True, (3, 7), (REGION,), "kept the victim", "alice")
    assert journal.decide(job, decision).state is JobState.QUEUED
    review = journal.review_of(job)
    assert review is not None and review.decision is not None
    assert review.decision.keep_visible == (3, 7)
    assert review.decision.regions == (REGION,)
    assert (review.decision.reviewer, review.decision.reason) == ("alice", "kept the victim")
    assert review.decision.decided > 0
    assert journal.waiting_for_review() == []
    claimed = journal.claim("w2")  # the daemon's workers take it on
    assert claimed is not None and claimed.id == job
    events = [(state, detail) for _, state, detail in journal.events(job)]
    assert ("review", "held for review") in events
    assert (
        "queued",
        "approved by alice: kept the victim (kept visible: 3,7; areas added: 1)",
    ) in events


def test_a_rejected_job_is_over_and_a_second_decision_is_refused(journal: Journal) -> None:
    job = _held(journal)
    journal.decide(job, ReviewDecision(False, (), (), "not our camera", "bob"))
    assert journal.get(job).state is JobState.REJECTED
    assert journal.claim("w2") is None
    with pytest.raises(JobStateError, match="not waiting for review"):
        journal.decide(job, ReviewDecision(True, (), (), "changed my mind", "bob"))
    assert journal.events(job)[-1][1:] == (
        "rejected",
        "rejected by bob: not our camera (kept visible: none; areas added: 0)",
    )


def test_a_job_held_again_waits_with_its_decision_cleared(journal: Journal) -> None:
    job = _held(journal)
    journal.decide(job, ReviewDecision(True, (1,), (), "ok", "alice"))
    journal.claim("w2")
    journal.hold_for_review(job, "w2", "/fresh", "the rules changed")
    review = journal.review_of(job)
    assert review is not None and review.decision is None and review.analysis == "/fresh"
    assert journal.events(job)[-1][1:] == ("review", "held for review: the rules changed")


def test_a_view_is_an_event_and_changes_nothing(journal: Journal) -> None:
    job = _held(journal)
    journal.note(job, "sheet viewed by alice")
    assert journal.get(job).state is JobState.REVIEW
    assert journal.events(job)[-1][1:] == ("review", "sheet viewed by alice")


def _schema_3(path: Path) -> None:
    """A journal as the code made it at schema 3, with jobs in every state it knew."""
    db = old_journal(path, 3)
    db.execute("PRAGMA foreign_keys = ON")
    rows = [
        (1, "queued", None, 0),
        (2, "done", None, 1),
        (3, "duplicate", 2, 0),
        (4, "processing", None, 1),
    ]
    for job, state, duplicate_of, attempts in rows:
        sha = f"{2 if state == 'duplicate' else job:064x}"
        db.execute(
            "INSERT INTO jobs (id, path, sha256, size, state, attempts, folder, duplicate_of, "
            "created, updated, worker, deadline, package) VALUES "
            "(?, ?, ?, 10, ?, ?, '/inbox', ?, 1.0, 2.0, 'w', 99.0, '/out/p.zip')",
            (job, f"/inbox/{job}.mp4", sha, state, attempts, duplicate_of),
        )
        db.execute(
            "INSERT INTO files (path, size, mtime_ns, inode, sha256, folder, job_id, recorded) "
            "VALUES (?, 10, 1, ?, ?, '/inbox', ?, 1.0)",
            (f"/inbox/{job}.mp4", job, sha, job),
        )
        db.execute(
            "INSERT INTO job_events (job_id, time, state, detail) VALUES (?, 1.0, ?, 'x')",
            (job, state),
        )
    db.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_journal_of_schema_3_is_migrated_to_review(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    _schema_3(path)
    with Journal(path) as journal:
        assert [(j.id, j.state.value, j.duplicate_of) for j in journal.jobs()] == [
            (1, "queued", None),
            (2, "done", None),
            (3, "duplicate", 2),
            (4, "processing", None),
        ]
        assert journal.get(4).package == "/out/p.zip"
        assert journal.claims()[0].deadline == 99.0
        assert journal.first_file(3).path == "/inbox/3.mp4"
        # the new states are allowed, and the old invariants still held by SQLite
        journal.recover()  # job 4 back in the queue
        held = journal.claim("w1")
        assert held is not None and held.id == 1
        journal.hold_for_review(1, "w1", "/a")
        assert journal.get(1).state is JobState.REVIEW
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"jobs_content", "jobs_queue", "jobs_state", "reviews"} <= names
    assert {"job_events_no_update", "job_events_no_delete"} <= names
    assert "jobs_v4" not in names
    with pytest.raises(sqlite3.IntegrityError):  # one real job per content, still
        db.execute(
            "INSERT INTO jobs (path, sha256, size, state, folder, created, updated) "
            f"VALUES ('/x', '{2:064x}', 1, 'queued', '/inbox', 1, 1)"
        )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM job_events")
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK still lists the states
        db.execute("UPDATE jobs SET state = 'lost' WHERE id = 2")
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'files'").fetchone()[0]
    assert "REFERENCES jobs(id)" in sql
