"""The journal's side of many machines, on real SQLite files: jobs sent to the broker keep
their claim across a daemon restart, jobs kept on the daemon host go only to its own
workers, and every worker's part is on record."""

from __future__ import annotations

from pathlib import Path

from privmask.daemon.journal import FileIdentity, JobState, Journal
from privmask.daemon.journal_queue import SENT
from privmask.daemon.retry import RetryPolicy

from journals import old_journal


def queued(journal: Journal, n: int) -> list[int]:
    return [
        journal.enqueue(FileIdentity(f"/in/{i}.mp4", 1, 1, i), f"{i:064x}", "/in")[0].id
        for i in range(n)
    ]


def test_a_job_a_worker_took_survives_a_daemon_restart_and_records_its_worker(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        (job_id,) = queued(journal, 1)
        sent = journal.claim(SENT, local=False, try_id="t1")
        assert sent is not None and sent.id == job_id
        assert journal.current_try(job_id) == "t1"
        assert not journal.queue_started(job_id, "t0", "w1@hostB")  # not the current try
        assert journal.queue_started(job_id, "t1", "w0@hostA")
        # a restart: the daemon's own workers' jobs go back, the broker's stay with it
        assert journal.recover(RetryPolicy(), keep_queued=True) == []
        assert [(j.id, j.worker) for j in journal.broker_jobs()] == [(job_id, "w0@hostA")]
        journal.finish(job_id, "/out/a.zip", "r" * 64)
        assert journal.current_try(job_id) is None  # reports of that try are stale now
        assert [(w.name, w.busy, w.done) for w in journal.queue_workers()] == [
            ("w0@hostA", (), 1)
        ]
        details = [detail for _, _, detail in journal.events(job_id)]
        assert "attempt 1 on w0@hostA" in details


def test_a_job_sent_but_not_taken_is_sent_again_after_a_restart_without_using_a_try(
    tmp_path: Path,
) -> None:
    """The daemon may have died before the broker had the order: it is sent again, under a
    new try id (a duplicate order's reports then name a try that is over)."""
    with Journal(tmp_path / "j.sqlite") as journal:
        (job_id,) = queued(journal, 1)
        journal.claim(SENT, local=False, try_id="t1")
        (back,) = journal.recover(RetryPolicy(), keep_queued=True)
        assert back.id == job_id and back.state is JobState.QUEUED and back.attempts == 0
        assert journal.current_try(job_id) is None


def test_without_a_broker_a_restart_takes_its_jobs_back(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        (job_id,) = queued(journal, 1)
        journal.claim(SENT, local=False, try_id="t1")
        assert journal.queue_started(job_id, "t1", "w0@hostA")
        (back,) = journal.recover(RetryPolicy())  # `queue:` removed from the config
        assert back.id == job_id and back.state is JobState.QUEUED


def test_a_job_kept_local_goes_only_to_the_daemons_own_workers(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        first, second = queued(journal, 2)
        sent = journal.claim(SENT, local=False)
        assert sent is not None and sent.id == first
        journal.mark_local(first, "held for review")
        kept = journal.get(first)
        assert kept.state is JobState.QUEUED and kept.attempts == 0  # its try given back
        again = journal.claim(SENT, local=False)
        assert again is not None and again.id == second  # the queue passes it by
        assert journal.claim(SENT, local=False) is None
        mine = journal.claim("host:1:w0", local=True)
        assert mine is not None and mine.id == first


def test_a_version_5_journal_is_upgraded_with_no_job_kept_local(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    db = old_journal(path, 5)
    db.execute(
        "INSERT INTO jobs (path, sha256, size, state, folder, created, updated) "
        "VALUES ('/in/a.mp4', ?, 1, 'queued', '/in', 0, 0)",
        ("a" * 64,),
    )
    db.close()
    with Journal(path) as journal:
        job = journal.claim(SENT, local=False)
        assert job is not None and job.path == "/in/a.mp4"
