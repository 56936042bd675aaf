"""The job journal on real SQLite files, with real worker processes that claim and get killed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from privmask.daemon.journal import (
    SCHEMA_VERSION,
    FileIdentity,
    Job,
    JobState,
    JobStateError,
    Journal,
    JournalError,
    RunEndedError,
)
from privmask.daemon.journal_schema import SCHEMA_V1
from privmask.daemon.retry import MAX_DELAY_SECONDS, RetryPolicy

# Child programs run as `python -c CODE DB ...`: real processes, each with its own connection.
CLAIM_ALL = """
import json, sys, time
from collections.abc import Iterator
from pathlib import Path
from privmask.daemon.journal import Journal
db, worker, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with Journal(Path(db)) as journal:
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    claimed = []
    while (job := journal.claim(worker)) is not None:
        claimed.append(job.id)
        time.sleep(0.001)  # a little work, so that the others get their turn
        journal.finish(job.id, f"out/{job.id}", None, worker=worker)
print(json.dumps(claimed))
"""

CLAIM_AND_HANG = """
import sys, time
from collections.abc import Iterator
from pathlib import Path
from privmask.daemon.journal import Journal
journal = Journal(Path(sys.argv[1]))
job = journal.claim(sys.argv[2])
print(job.id if job else -1, flush=True)
time.sleep(60)
"""

ENQUEUE_FOREVER = """
import sys
from collections.abc import Iterator
from pathlib import Path
from privmask.daemon.journal import FileIdentity, Journal
journal = Journal(Path(sys.argv[1]))
start = int(sys.argv[2])
for i in range(start, start + 10**6):
    sha = f"{i // 3:064x}"  # every third file repeats content: duplicates are written too
    journal.enqueue(FileIdentity(f"/in/{i}.mp4", 1000 + i, i, i), sha, "/in")
    if i == start:
        print("ready", flush=True)
"""

SHA_A, SHA_B = "a" * 64, "b" * 64


def child(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


def add(journal: Journal, n: int, sha: str | None = None, folder: str = "/in") -> tuple[Job, bool]:
    """Enqueue file number n (its content is n's own unless `sha` says otherwise)."""
    return journal.enqueue(
        FileIdentity(f"{folder}/{n}.mp4", 100 + n, n * 1000, n), sha or f"{n:064x}", folder
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
def journal(db: Path) -> Iterator[Journal]:
    with Journal(db) as opened:
        yield opened


def check_integrity(db: Path) -> None:
    """SQLite's own checks, and every file row paired with exactly one job row and back."""
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        orphan_files = con.execute(
            "SELECT count(*) FROM files LEFT JOIN jobs ON jobs.id = files.job_id "
            "WHERE jobs.id IS NULL"
        ).fetchone()[0]
        jobs_without_file = con.execute(
            "SELECT count(*) FROM jobs WHERE id NOT IN (SELECT job_id FROM files)"
        ).fetchone()[0]
        jobs_without_event = con.execute(
            "SELECT count(*) FROM jobs WHERE id NOT IN (SELECT job_id FROM job_events)"
        ).fetchone()[0]
        files, jobs = (
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("files", "jobs")
        )
    assert (orphan_files, jobs_without_file, jobs_without_event) == (0, 0, 0)
    assert files == jobs


# -- opening ----------------------------------------------------------------------------------


def test_opening_sets_the_pragmas_and_schema_version(journal: Journal, db: Path) -> None:
    pragmas = {
        name: journal._db.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "user_version")
    }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "foreign_keys": 1,
        "busy_timeout": 30000,
        "user_version": SCHEMA_VERSION,
    }
    journal.close()
    with Journal(db) as again:  # reopening keeps the data and does not re-create the schema
        assert again.counts()["queued"] == 0


def test_a_journal_from_a_newer_privmask_is_refused(db: Path) -> None:
    Journal(db).close()
    with sqlite3.connect(db) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match="newer"):
        Journal(db)


# -- intake -----------------------------------------------------------------------------------


def test_happy_path_enqueue_claim_finish(journal: Journal) -> None:
    job, created = journal.enqueue(
        FileIdentity("/in/cam1/a.mp4", 1234, 5, 77), SHA_A, "/in/cam1", "cam1"
    )
    assert created
    assert (job.state, job.attempts, job.camera, job.folder) == (
        JobState.QUEUED,
        0,
        "cam1",
        "/in/cam1",
    )
    assert journal.counts() == {s.value: (1 if s is JobState.QUEUED else 0) for s in JobState}

    claimed = journal.claim("w1")
    assert claimed is not None
    assert (claimed.id, claimed.state, claimed.attempts) == (job.id, JobState.PROCESSING, 1)
    assert journal.claim("w2") is None  # nothing else queued
    journal.heartbeat(job.id, "w1")
    journal.finish(job.id, "/out/a.zip", "site.yaml", worker="w1")

    done = journal.get(job.id)
    assert (done.state, done.output, done.ruleset, done.error) == (
        JobState.DONE,
        "/out/a.zip",
        "site.yaml",
        None,
    )
    assert done.updated >= done.created
    assert journal.counts()["done"] == 1 and journal.counts()["processing"] == 0
    assert [state for _, state, _ in journal.events(job.id)] == ["queued", "processing", "done"]
    assert journal.events(job.id)[1][2] == "attempt 1 by w1"
    assert journal.jobs(JobState.DONE) == [done]


def test_same_content_under_two_paths_is_one_job_and_one_duplicate(journal: Journal) -> None:
    first, created = journal.enqueue(FileIdentity("/in/a.mp4", 10, 1, 1), SHA_A, "/in")
    second, created_again = journal.enqueue(
        FileIdentity("/in/copy-of-a.mp4", 10, 2, 2), SHA_A, "/in"
    )
    assert created and not created_again
    assert second.state is JobState.DUPLICATE and second.duplicate_of == first.id
    assert second.path == "/in/copy-of-a.mp4"
    assert journal.counts()["queued"] == 1 and journal.counts()["duplicate"] == 1
    assert journal.events(second.id)[0][1:] == ("duplicate", f"same content as job {first.id}")
    # Content already done (or in any state) is still never processed again.
    claimed = journal.claim("w")
    assert claimed is not None
    journal.finish(claimed.id, "out", None)
    third, created_third = journal.enqueue(FileIdentity("/other/a.mp4", 10, 3, 3), SHA_A, "/other")
    assert not created_third and third.duplicate_of == first.id
    assert journal.claim("w") is None


def test_sqlite_itself_refuses_a_second_job_for_the_same_content(journal: Journal) -> None:
    add(journal, 1, SHA_A)
    with pytest.raises(sqlite3.IntegrityError):
        journal._db.execute(
            "INSERT INTO jobs (path, sha256, size, state, folder, created, updated) "
            "VALUES ('/x', ?, 1, 'queued', '/', 0, 0)",
            (SHA_A,),
        )


def test_a_path_announced_again_is_seen_and_not_requeued(journal: Journal) -> None:
    identity = FileIdentity("/in/a.mp4", 10, 123, 9)
    assert not journal.seen(identity)
    job, _ = journal.enqueue(identity, SHA_A, "/in")
    assert journal.seen(identity)
    again, created = journal.enqueue(identity, SHA_A, "/in")
    assert not created and again == job
    assert journal.counts()["queued"] == 1 and journal.counts()["duplicate"] == 0
    # The same path rewritten (new mtime) is a new file; new content makes a new job.
    assert not journal.seen(FileIdentity("/in/a.mp4", 10, 456, 9))
    _, created_new = journal.enqueue(FileIdentity("/in/a.mp4", 10, 456, 9), SHA_B, "/in")
    assert created_new


def test_a_file_rejected_at_validation_is_quarantined_with_its_reason(journal: Journal) -> None:
    job = journal.quarantine_file(FileIdentity("/in/bad.mp4", 3, 1, 1), SHA_A, "/in", "not a video")
    assert (job.state, job.error) == (JobState.QUARANTINED, "not a video")
    assert journal.seen(FileIdentity("/in/bad.mp4", 3, 1, 1))
    assert journal.claim("w") is None
    # The same bad content under another name is a duplicate of it, not a second job.
    copy, created = journal.enqueue(FileIdentity("/in/bad2.mp4", 3, 2, 2), SHA_A, "/in")
    assert not created and copy.duplicate_of == job.id
    assert journal.events(job.id) == [(job.created, "quarantined", "not a video")]


# -- workers ----------------------------------------------------------------------------------


def test_claims_come_oldest_first(journal: Journal) -> None:
    ids = [add(journal, n)[0].id for n in range(3)]
    claimed = [journal.claim("w") for _ in range(3)]
    assert [job.id for job in claimed if job] == ids


def test_only_the_holder_may_heartbeat_finish_or_fail(journal: Journal) -> None:
    job, _ = add(journal, 1)
    with pytest.raises(JobStateError):
        journal.finish(job.id, "out", None)  # still queued
    assert journal.claim("w1") is not None
    with pytest.raises(JobStateError):
        journal.heartbeat(job.id, "w2")
    with pytest.raises(JobStateError):
        journal.finish(job.id, "out", None, worker="w2")
    with pytest.raises(JobStateError):
        journal.fail(job.id, "boom", RetryPolicy(), worker="w2")
    journal.finish(job.id, "out", None, worker="w1")
    with pytest.raises(JobStateError):
        journal.finish(job.id, "out", None)  # done already
    with pytest.raises(KeyError):
        journal.get(999)


def test_four_processes_claim_200_jobs_each_exactly_once(db: Path, tmp_path: Path) -> None:
    with Journal(db) as journal:
        ids = {add(journal, n)[0].id for n in range(200)}
    go = tmp_path / "go"
    workers = [child(CLAIM_ALL, db, f"w{i}", go) for i in range(4)]
    for worker in workers:  # every worker has the journal open: start them together
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    go.touch()
    claims = [json.loads(worker.communicate(timeout=30)[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)

    every_claim = [job_id for claimed in claims for job_id in claimed]
    assert sorted(every_claim) == sorted(ids)  # none lost, none claimed twice
    assert sum(1 for claimed in claims if claimed) >= 2  # they really did run side by side
    with Journal(db) as journal:
        assert journal.counts()["done"] == 200
        assert {job.attempts for job in journal.jobs(limit=1000)} == {1}
    check_integrity(db)


def test_a_worker_killed_mid_job_is_requeued_then_quarantined(db: Path) -> None:
    policy = RetryPolicy(max_attempts=3)
    with Journal(db) as journal:
        job, _ = add(journal, 1)
    for attempt in range(1, 4):
        worker = child(CLAIM_AND_HANG, db, f"w{attempt}")
        assert worker.stdout is not None
        assert int(worker.stdout.readline()) == job.id
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        with Journal(db) as journal:  # the daemon restarting
            assert journal.get(job.id).state is JobState.PROCESSING
            recovered = journal.recover(policy)
            assert [j.id for j in recovered] == [job.id]
            after = journal.get(job.id)
        assert after.attempts == attempt
        if attempt < 3:
            assert after.state is JobState.QUEUED
        else:
            assert (after.state, after.error) == (JobState.QUARANTINED, "interrupted 3 times")
    with Journal(db) as journal:
        assert journal.claim("w") is None
        assert [s for _, s, _ in journal.events(job.id)] == ["queued"] + [
            "processing",
            "queued",
        ] * 2 + ["processing", "quarantined"]
    check_integrity(db)


def test_recover_named_workers_leaves_the_others_alone(journal: Journal) -> None:
    dead, _ = add(journal, 1)
    alive, _ = add(journal, 2)
    journal.claim("host:101:w0")
    journal.claim("host:102:w1")
    recovered = journal.recover(RetryPolicy(), workers=["host:101:w0"])
    assert [job.id for job in recovered] == [dead.id]
    assert journal.get(alive.id).state is JobState.PROCESSING
    assert journal.events(dead.id)[-1][1:] == ("queued", "interrupted: worker host:101:w0 gone")


def test_fail_retries_after_backoff_then_quarantines(journal: Journal) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_seconds=10.0)
    job, _ = add(journal, 1)
    t = 1000.0
    assert journal.claim("w", now=t) is not None
    assert journal.fail(job.id, "decoder crashed", policy, now=t) is JobState.QUEUED
    assert journal.get(job.id).error == "decoder crashed"
    assert journal.claim("w", now=t + 9.9) is None  # not before the backoff
    assert journal.claim("w", now=t + 10.0) is not None
    assert journal.fail(job.id, "again", policy, now=t + 10) is JobState.QUEUED
    assert journal.claim("w", now=t + 10 + 19.9) is None  # the backoff doubled
    claimed = journal.claim("w", now=t + 30.0)
    assert claimed is not None and claimed.attempts == 3
    assert journal.fail(job.id, "third time", policy, now=t + 30) is JobState.QUARANTINED
    assert journal.claim("w", now=t + 10_000) is None
    final = journal.get(job.id)
    assert (final.state, final.attempts, final.error) == (JobState.QUARANTINED, 3, "third time")


def test_a_permanent_failure_quarantines_at_once(journal: Journal) -> None:
    job, _ = add(journal, 1)
    journal.claim("w")
    assert journal.fail(job.id, "unsupported codec", RetryPolicy(), permanent=True) is (
        JobState.QUARANTINED
    )
    assert journal.get(job.id).attempts == 1


def test_a_queued_retry_does_not_block_younger_jobs(journal: Journal) -> None:
    first, _ = add(journal, 1)
    second, _ = add(journal, 2)
    journal.claim("w", now=1000.0)
    journal.fail(first.id, "x", RetryPolicy(backoff_seconds=60), now=1000.0)
    claimed = journal.claim("w", now=1001.0)
    assert claimed is not None and claimed.id == second.id


def test_events_are_append_only(journal: Journal) -> None:
    job, _ = add(journal, 1)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        journal._db.execute("UPDATE job_events SET detail = 'x' WHERE job_id = ?", (job.id,))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        journal._db.execute("DELETE FROM job_events")


# -- crashes during intake --------------------------------------------------------------------


def test_a_crash_mid_enqueue_leaves_no_half_recorded_file(db: Path) -> None:
    Journal(db).close()
    start = 0
    for _ in range(3):  # kill at three arbitrary moments
        writer = child(ENQUEUE_FOREVER, db, start)
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.25)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        check_integrity(db)
        with Journal(db) as journal:  # it opens, and a restart carries on where it stopped
            counts = journal.counts()
            start = 10 * (counts["queued"] + counts["duplicate"]) + 10
    assert counts["queued"] > 0 and counts["duplicate"] > 0
    # No content was queued twice: one non-duplicate job per sha256.
    with sqlite3.connect(db) as con:
        queued_twice = con.execute(
            "SELECT count(*) FROM (SELECT sha256 FROM jobs WHERE state != 'duplicate' "
            "GROUP BY sha256 HAVING count(*) > 1)"
        ).fetchone()[0]
    assert queued_twice == 0


# -- pure decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "permanent", "step"),
    [
        (1, False, "retry"),
        (2, False, "retry"),
        (3, False, "quarantine"),
        (9, False, "quarantine"),
        (1, True, "quarantine"),
    ],
)
def test_retry_policy_next_step(attempts: int, permanent: bool, step: str) -> None:
    assert RetryPolicy(max_attempts=3).next_step(attempts, permanent) == step


def test_retry_policy_delay_doubles_and_is_capped() -> None:
    policy = RetryPolicy(backoff_seconds=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert policy.delay(8) == MAX_DELAY_SECONDS == 3600.0
    assert policy.delay(10_000) == MAX_DELAY_SECONDS  # no overflow on absurd counts
    assert policy.delay(0) == 30.0
    assert RetryPolicy(backoff_seconds=0).delay(5) == 0.0


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_seconds=-1)


def test_orderly_put_back_at_shutdown_keeps_the_tries(journal: Journal) -> None:
    job, _ = add(journal, 1)
    policy = RetryPolicy(max_attempts=2)
    for _ in range(3):  # three clean restarts during one long job
        claimed = journal.claim("w0")
        assert claimed is not None and claimed.attempts == 1
        (back,) = journal.recover(policy, orderly=True)
        assert (back.state, back.attempts) == (JobState.QUEUED, 0)
    journal.claim("w0")
    (crashed,) = journal.recover(policy)  # a crash, by contrast, uses up the try
    assert (crashed.state, crashed.attempts) == (JobState.QUEUED, 1)


# -- one daemon at a time, its workers' claims, and their limits -----------------------------


def test_a_worker_of_a_daemon_that_is_gone_gets_no_job(journal: Journal) -> None:
    first = journal.start_run(pid=101)
    add(journal, 1)
    add(journal, 2)
    assert journal.claim("host:201:w0", run=first) is not None
    second = journal.start_run(pid=102)  # the daemon was restarted; an orphan still asks
    with pytest.raises(RunEndedError):
        journal.claim("host:201:w0", run=first)
    assert journal.counts()["queued"] == 1
    claimed = journal.claim("host:301:w0", run=second)
    assert claimed is not None and claimed.id == 2


def test_a_claim_carries_its_deadline_and_its_package(journal: Journal) -> None:
    job, _ = add(journal, 1)
    journal.claim("w0", now=1000.0, time_limit=600.0)
    (claim,) = journal.claims()
    assert (claim.job, claim.worker, claim.heartbeat, claim.deadline) == (job.id, "w0", 1000, 1600)
    journal.update_claim(job.id, "w0", deadline=5000.0, package="/out/case_1.zip")
    with pytest.raises(JobStateError):
        journal.update_claim(job.id, "w1", deadline=9999.0)  # not the holder
    (claim,) = journal.claims()
    assert (claim.deadline, claim.package) == (5000.0, "/out/case_1.zip")
    (back,) = journal.recover(RetryPolicy(), workers=["w0"])
    assert back.package == "/out/case_1.zip"  # the service cleans up its partial from this
    assert journal.claims() == []


def test_the_journal_file_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Journal(tmp_path / "journal.sqlite") as journal:
            add(journal, 1)
            made = sorted(tmp_path.glob("journal.sqlite*"))
            assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in made] == ["0o600"] * len(made)
    finally:
        os.umask(old)


def test_a_journal_of_schema_1_is_migrated_and_keeps_its_jobs(db: Path) -> None:
    with sqlite3.connect(db) as con:
        for statement in SCHEMA_V1:
            con.execute(statement)
        con.execute(
            "INSERT INTO jobs (path, sha256, size, state, folder, created, updated) "
            "VALUES ('/in/a.mp4', ?, 1, 'queued', '/in', 1, 1)",
            (SHA_A,),
        )
        con.execute("PRAGMA user_version = 1")
    con.close()
    with Journal(db) as journal:
        job = journal.claim("w0", time_limit=60.0)
        assert job is not None and job.path == "/in/a.mp4" and job.package is None


def test_a_try_stopped_by_storage_goes_back_without_using_the_try(journal: Journal) -> None:
    job, _ = add(journal, 1)
    claimed = journal.claim("w1")
    assert claimed is not None and claimed.attempts == 1
    journal.release(job.id, "outbox is on a read-only filesystem", delay=0, worker="w1")
    back = journal.get(job.id)
    assert (back.state, back.attempts) == (JobState.QUEUED, 0)
    assert journal.events(job.id)[-1][2].startswith("waiting for storage:")
    again = journal.claim("w1")
    assert again is not None and again.attempts == 1  # the next try is still the first


def test_only_the_holder_may_release_a_job(journal: Journal) -> None:
    job, _ = add(journal, 1)
    journal.claim("w1")
    with pytest.raises(JobStateError):
        journal.release(job.id, "disk full", delay=0, worker="w2")
