"""Chunking a sweep's window: fixed chunks on UTC boundaries, keys that do not move between
runs, files taken whole and only once complete, where the first run starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from privmask.daemon.sweeps.plan import first_start, floor_to, plan, window
from privmask.daemon.sweeps.source import Listing, Recording, Span

T0 = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
Q = timedelta(minutes=15)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def listing(*recordings: Recording, complete_to: datetime | None = None) -> Listing:
    return Listing(recordings, complete_to or at(10_000))


def test_a_recording_is_cut_on_utc_chunk_boundaries() -> None:
    rec = Recording("rec1", "cam1", (Span(at(5), at(40)),))
    planned = plan("nvr", listing(rec), Span(at(0), at(60)), Q, cuts=True)
    assert [(c.start, c.end) for c in planned.chunks] == [
        (at(0), at(15)),
        (at(15), at(30)),
        (at(30), at(45)),
    ]
    assert {c.camera for c in planned.chunks} == {"cam1"}
    assert planned.reach == at(60)


def test_only_whole_chunks_before_the_window_end_are_taken() -> None:
    rec = Recording("rec1", None, (Span(at(0), at(60)),))
    planned = plan("nvr", listing(rec), Span(at(0), at(37)), Q, cuts=True)
    assert [c.end for c in planned.chunks] == [at(15), at(30)]
    assert planned.reach == at(30)  # the next run takes 30..45 whole


def test_keys_are_the_same_whatever_window_finds_a_chunk() -> None:
    rec = Recording("rec1", None, (Span(at(0), at(90)),))
    first = plan("nvr", listing(rec), Span(at(0), at(50)), Q, cuts=True)
    second = plan("nvr", listing(rec), Span(at(20), at(90)), Q, cuts=True)
    keys = [c.key for c in first.chunks + second.chunks]
    assert len(set(keys)) == 6  # 0..90 in six chunks; 15..30 found twice, one key
    assert first.chunks[1].key == second.chunks[0].key
    assert first.chunks[1].key == f"nvr|rec1|{at(15).isoformat()}|{at(30).isoformat()}"


def test_a_source_still_writing_holds_the_reach() -> None:
    rec = Recording("rec1", None, (Span(at(0), at(60)),))
    planned = plan("nvr", listing(rec, complete_to=at(31)), Span(at(0), at(60)), Q, cuts=True)
    assert planned.reach == at(30)
    assert [c.end for c in planned.chunks] == [at(15), at(30)]


def test_a_gap_between_spans_makes_no_chunk() -> None:
    rec = Recording("rec1", None, (Span(at(0), at(10)), Span(at(50), at(60))))
    planned = plan("nvr", listing(rec), Span(at(0), at(60)), Q, cuts=True)
    assert [c.start for c in planned.chunks] == [at(0), at(45)]


def test_a_file_is_one_chunk_taken_once_complete() -> None:
    done = Recording("cam1/a.mp4", "cam1", (Span(at(1), at(9)),))
    writing = Recording("cam1/b.mp4", "cam1", (Span(at(50), at(70)),))
    planned = plan("folder", listing(done, writing), Span(at(0), at(60)), Q, cuts=False)
    assert [(c.recording, c.start, c.end) for c in planned.chunks] == [("cam1/a.mp4", at(1), at(9))]
    assert planned.reach == at(50)  # b.mp4 is taken by the run that sees it end


def test_the_camera_of_the_sweep_fills_in() -> None:
    rec = Recording("a.mp4", None, (Span(at(1), at(2)),))
    planned = plan("f", listing(rec), Span(at(0), at(5)), Q, cuts=False, camera="gate")
    assert planned.chunks[0].camera == "gate"


def test_floor_is_on_utc_boundaries_whatever_the_zone() -> None:
    berlin = datetime(2026, 3, 29, 3, 37, tzinfo=ZoneInfo("Europe/Berlin"))
    assert floor_to(berlin, Q) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_the_first_run_starts_at_midnight_of_the_previous_site_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 02:30 CET on the spring-forward night
    start = first_start(now, berlin, since=None)
    assert start == datetime(2026, 3, 28, 0, 0, tzinfo=berlin).astimezone(UTC)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert first_start(now, berlin, since=since) == since


def test_the_window_goes_on_from_what_is_covered() -> None:
    now = at(200)
    assert window(at(30), at(0), now, timedelta(hours=2)) == Span(at(30), at(80))
    assert window(None, at(0), now, timedelta(0)) == Span(at(0), at(200))
    assert window(at(190), at(0), now, timedelta(hours=1)) is None  # nothing due yet
