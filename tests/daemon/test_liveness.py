"""Is a job still being worked on: time limits, overdue decisions, the worker's heartbeat."""

from __future__ import annotations

from pathlib import Path

import pytest

from privmask.daemon.journal import FileIdentity, Journal
from privmask.daemon.liveness import (
    FLOOR_SECONDS,
    STALE_SECONDS,
    Heartbeat,
    overdue,
    time_limit,
)

from harness import eventually


def test_the_time_limit_grows_with_the_clip_and_has_a_floor() -> None:
    assert time_limit(0.0) == FLOOR_SECONDS
    assert time_limit(3600.0) > time_limit(60.0) > FLOOR_SECONDS
    assert time_limit(3600.0) >= 3600.0 * 5  # far slower than real time is still working


def test_overdue() -> None:
    now = 10_000.0
    assert overdue(heartbeat=now - 1, deadline=now + 1, now=now) is None
    assert overdue(heartbeat=now - STALE_SECONDS - 1, deadline=now + 1, now=now) == "no_heartbeat"
    assert overdue(heartbeat=now - 1, deadline=now - 1, now=now) == "over_time"
    assert overdue(heartbeat=None, deadline=None, now=now) is None  # nothing to judge by


@pytest.fixture
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Journal(tmp_path / "journal.sqlite") as opened:
        opened.enqueue(FileIdentity("/in/a.mp4", 1, 1, 1), "a" * 64, "/in")
        yield opened


def test_a_worker_heartbeats_while_it_works(journal: Journal) -> None:
    job = journal.claim("w0", now=1000.0)
    assert job is not None
    with Heartbeat(journal, job.id, "w0", every=0.01) as heartbeat:
        assert eventually(lambda: (journal.claims()[0].heartbeat or 0) > 1000.0, timeout=10)
    assert not heartbeat.lost


def test_a_heartbeat_stops_when_the_job_was_taken_away(journal: Journal) -> None:
    job = journal.claim("w0")
    assert job is not None
    journal.recover(workers=["w0"])  # judged hung meanwhile
    with Heartbeat(journal, job.id, "w0", every=0.01) as heartbeat:
        assert eventually(lambda: heartbeat.lost, timeout=10)
