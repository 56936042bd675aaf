"""Sweeping a Dahua recorder through its HTTP API, against a real HTTP digest peer serving
real DHAV files: every findNextFile page is read and the finder always destroyed, a chunk
is downloaded, remuxed and cut to its range, the recorder's wall clock is placed with the
site's zone (and an hour that happens twice is a gap), and a recorder that refuses or is
gone says so in one line."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import pytest
from dahua_peer import DahuaPeer, PeerFile
from vendor_media import FPS, frame_number, numbered_frames, write_dav

from privmask.daemon.sweeps.dahua_source import DahuaSource
from privmask.daemon.sweeps.source import Chunk, NoData, SourceError, Span

BERLIN = ZoneInfo("Europe/Berlin")
WALL = datetime(2026, 7, 1, 12, 0, 0)  # the recorder's clock; 10:00 UTC (summer time)
UTC_START = datetime(2026, 7, 1, 10, 0, 0, tzinfo=UTC)
SECONDS = 3
FILES = 5  # three findNextFile pages of at most two
FOLD = datetime(2026, 10, 25, 2, 30, 0)  # clocks go back at 03:00: 02:30 happens twice


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[PeerFile]:
    """Five 3 s files of channel 1 back to back, frames numbered on across them; and one
    on channel 2 in the hour that happens twice on the fall-back night, and one there that
    holds less than the recorder lists."""
    folder = tmp_path_factory.mktemp("dahua")
    made = []
    for index in range(FILES):
        start = WALL + timedelta(seconds=index * SECONDS)
        frames = numbered_frames(SECONDS * FPS, first=index * SECONDS * FPS)
        path = write_dav(folder / f"{index}.dav", frames, start)
        made.append(PeerFile(1, start, start + timedelta(seconds=SECONDS), path))
    fold = write_dav(folder / "fold.dav", numbered_frames(SECONDS * FPS), FOLD)
    made.append(PeerFile(2, FOLD, FOLD + timedelta(seconds=SECONDS), fold))
    short = write_dav(folder / "short.dav", numbered_frames(SECONDS * FPS), WALL)
    made.append(PeerFile(2, WALL, WALL + timedelta(minutes=1), short))  # listed longer than it is
    return made


@pytest.fixture
def peer(recorded: list[PeerFile]) -> Iterator[DahuaPeer]:
    recorder = DahuaPeer("admin", "s3cret-pass", recorded, channels=2, page=2)
    with recorder.running():
        yield recorder


def source(url: str, password: str = "s3cret-pass") -> DahuaSource:
    return DahuaSource("dvr", url, "admin", password, timezone=BERLIN, timeout=5)


def at(seconds: float) -> datetime:
    return UTC_START + timedelta(seconds=seconds)


def test_listing_reads_every_page_in_the_recorders_clock(peer: DahuaPeer) -> None:
    listing = source(peer.url).list(Span(at(0), at(60)))

    first, second = listing.recordings
    assert (first.recording, first.camera) == ("1", "ch1")
    assert first.spans == (Span(at(0), at(FILES * SECONDS)),)
    assert second.spans == (Span(at(0), at(60)),)
    asked = peer.asked[0]
    assert asked["condition.Channel"] == "1"
    assert asked["condition.StartTime"] == "2026-07-01 10:00:00"  # wall clock, 2 h margin
    assert asked["condition.EndTime"] == "2026-07-01 14:01:00"
    assert peer.finders == {}  # every finder destroyed


def test_a_chunk_is_the_recorders_frames_of_its_range(peer: DahuaPeer, tmp_path: Path) -> None:
    chunk = Chunk("dvr", "1", "ch1", at(2), at(7))  # across three files

    fetched = source(peer.url).fetch(chunk, tmp_path)

    assert fetched.own_copy and fetched.start == at(2) and fetched.gaps == ()
    with av.open(str(fetched.path)) as clip:
        assert clip.metadata["creation_time"].startswith("2026-07-01T10:00:02")
        shown = [(frame_number(f), round(float(f.time or 0) * FPS)) for f in clip.decode(video=0)]
    assert [n for n, _ in shown] == list(range(2 * FPS, 7 * FPS))
    assert [t for _, t in shown] == list(range(5 * FPS))
    assert peer.finders == {}


def test_an_hour_that_happens_twice_is_a_gap(peer: DahuaPeer, tmp_path: Path) -> None:
    night = Span(
        datetime(2026, 10, 24, 23, 0, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, tzinfo=UTC)
    )

    listing = source(peer.url).list(night)

    assert listing.recordings[1].spans == ()
    with pytest.raises(NoData):
        source(peer.url).fetch(Chunk("dvr", "2", "ch2", night.start, night.end), tmp_path)


def test_nothing_recorded_is_no_data(peer: DahuaPeer, tmp_path: Path) -> None:
    with pytest.raises(NoData):
        source(peer.url).fetch(Chunk("dvr", "1", "ch1", at(7200), at(7500)), tmp_path)
    assert list(tmp_path.iterdir()) == [] and peer.finders == {}


def test_a_wrong_password_is_permanent_and_never_shown(peer: DahuaPeer) -> None:
    with pytest.raises(SourceError) as raised:
        source(peer.url, password="wrong-horse").list(Span(at(0), at(60)))

    assert raised.value.permanent
    message = str(raised.value)
    assert "dvr" in message and "127.0.0.1" in message and "password" in message
    assert "wrong-horse" not in message and "s3cret" not in message


def test_a_recorder_that_is_down_is_a_passing_error(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"

    with pytest.raises(SourceError) as raised:
        source(url).fetch(Chunk("dvr", "1", "ch1", at(0), at(5)), tmp_path)

    assert not raised.value.permanent and "unreachable" in str(raised.value)


def test_a_listed_stretch_without_frames_is_no_data(peer: DahuaPeer, tmp_path: Path) -> None:
    with pytest.raises(NoData):
        source(peer.url).fetch(Chunk("dvr", "2", "ch2", at(30), at(40)), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_absurd_channel_count_is_refused_not_trusted(recorded: list[PeerFile]) -> None:
    """A hostile or broken recorder claiming a billion channels gets one line, not a sweep
    that builds a billion recordings (and runs the daemon out of memory)."""
    recorder = DahuaPeer("admin", "s3cret-pass", recorded, channels=10**9, page=2)
    with recorder.running(), pytest.raises(SourceError) as raised:
        source(recorder.url).list(Span(at(0), at(60)))
    assert "channels" in str(raised.value) and not raised.value.permanent
