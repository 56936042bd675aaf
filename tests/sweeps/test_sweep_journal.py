"""The sweep tables of the real SQLite journal: each chunk recorded once, the watermark
moved only over chunks whose packages are durable (or gaps), never past the listing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from privmask.daemon.journal import SCHEMA_VERSION, FileIdentity, Journal
from privmask.daemon.sweeps.source import Chunk

from journals import old_journal

T0 = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)


def chunk(n: int, recording: str = "rec1") -> Chunk:
    start = T0 + timedelta(minutes=15 * n)
    return Chunk("nvr", recording, "cam1", start, start + timedelta(minutes=15))


def queue_job(journal: Journal, c: Chunk, path: Path) -> int:
    path.write_bytes(c.key.encode())
    info = path.stat()
    identity = FileIdentity(str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    job, _ = journal.enqueue(identity, c.key, str(path.parent), c.camera)
    assert journal.take_chunk(c.key)
    journal.chunk_queued(c.key, job.id, path, own_copy=True, gap=False)
    return job.id


def finish(journal: Journal, job_id: int) -> None:
    job = journal.claim("w")
    assert job is not None and job.id == job_id
    journal.finish(job_id, "/outbox/p.zip", "rules")


def test_a_chunk_is_recorded_once_whoever_plans_it(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        chunks = (chunk(0), chunk(1))
        assert journal.record_chunks(chunks, by_recording=False) == list(chunks)
        assert journal.take_chunk(chunk(0).key)
        assert not journal.take_chunk(chunk(0).key)  # a second taker gets nothing
        # a double fire plans the same chunks: only the one not yet taken waits
        assert journal.record_chunks(chunks, by_recording=False) == [chunk(1)]
        assert len(journal.chunks("nvr")) == 2


def test_a_file_is_taken_once_whatever_span_it_is_seen_with(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        whole = Chunk("f", "cam1/a.mp4", None, T0, T0 + timedelta(minutes=5))
        clipped = Chunk("f", "cam1/a.mp4", None, T0 + timedelta(minutes=1), whole.end)
        journal.record_chunks((whole,), by_recording=True)
        assert journal.record_chunks((clipped,), by_recording=True) == []


def test_the_watermark_moves_only_over_packaged_chunks_and_gaps(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        chunks = (chunk(0), chunk(1), chunk(2))
        journal.record_chunks(chunks, by_recording=False)
        journal.listed("nvr", T0, chunk(3).start)
        first = queue_job(journal, chunks[0], tmp_path / "a.mp4")
        journal.take_chunk(chunks[1].key)
        journal.chunk_gap(chunks[1].key)
        third = queue_job(journal, chunks[2], tmp_path / "c.mp4")
        assert journal.settle("nvr") == T0  # nothing packaged yet
        finish(journal, first)
        own: list[Path] = []
        assert journal.settle("nvr", own_done=own) == chunks[2].start  # the gap counts
        assert own == [tmp_path / "a.mp4"]
        finish(journal, third)
        assert journal.settle("nvr") == chunks[2].end
        assert journal.swept_recording_time(third) == chunks[2].start  # for the worker's facts
        assert journal.swept_recording_time(9999) is None
        assert journal.source_status("nvr").covered_to == chunks[2].end


def test_the_watermark_waits_for_a_fetch_cut_short(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record_chunks((chunk(0), chunk(1)), by_recording=False)
        journal.listed("nvr", T0, chunk(2).start)
        journal.take_chunk(chunk(0).key)  # then the process is killed
        journal.take_chunk(chunk(1).key)
        journal.chunk_gap(chunk(1).key)
        assert journal.settle("nvr") == T0
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.release_fetching() == 1
        assert journal.record_chunks((chunk(0),), by_recording=False) == [chunk(0)]


def test_an_error_is_kept_until_a_good_run(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.failed("nvr", "nvr1: unreachable") == 1
        assert journal.failed("nvr", "nvr1: unreachable") == 2
        journal.retry_at("nvr", 2000.0)
        status = journal.source_status("nvr")
        assert (status.last_error, status.failures, status.next_attempt) == (
            "nvr1: unreachable",
            2,
            2000.0,
        )
        journal.listed("nvr", T0, T0)
        assert journal.source_status("nvr").last_error is None


def test_a_version_4_journal_gains_the_sweep_tables(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    old_journal(path, 4).close()
    with Journal(path) as journal:
        journal.record_chunks((chunk(0),), by_recording=False)
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION


def test_two_sweeps_over_one_source_share_its_chunks_and_wait_for_them(tmp_path: Path) -> None:
    """Chunks are keyed by the source ("onvif:URL"), watermarks by the sweep: a chunk the
    nightly sweep recorded is the hourly sweep's too, and holds both watermarks back until
    its package is durable."""
    source = "onvif:http://10.0.0.5/onvif/device_service"
    shared = tuple(Chunk(source, "rec1", "cam1", c.start, c.end) for c in (chunk(0), chunk(1)))
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.record_chunks(shared, by_recording=False) == list(shared)
        journal.listed("nightly", T0, shared[1].end)
        job = queue_job(journal, shared[0], tmp_path / "a.mp4")
        journal.take_chunk(shared[1].key)
        journal.chunk_gap(shared[1].key)
        # the hourly sweep plans the same time: nothing new to fetch
        assert journal.record_chunks(shared, by_recording=False) == []
        journal.listed("hourly", T0, shared[1].end)
        assert journal.settle("hourly", source=source) == T0  # the nightly's job is not done
        finish(journal, job)
        assert journal.settle("hourly", source=source) == shared[1].end
        assert journal.settle("nightly", source=source) == shared[1].end
        assert journal.with_gaps(source=source) == 1
        assert len(journal.chunks(source)) == 2
