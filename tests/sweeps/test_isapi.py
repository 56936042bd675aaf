"""Sweeping a Hikvision recorder through ISAPI, against a real HTTP digest peer serving
real program streams: every search page is read, a chunk is downloaded, remuxed and cut
to its range, and a recorder that refuses or is gone says so in one line."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import pytest
from isapi_peer import IsapiPeer, PeerSegment
from vendor_media import FPS, frame_number, numbered_frames, write_ps

from privmask.adapters.isapi import parse_time
from privmask.daemon.sweeps.isapi_source import IsapiSource
from privmask.daemon.sweeps.source import Chunk, NoData, SourceError, Span

BERLIN = ZoneInfo("Europe/Berlin")
WALL = datetime(2026, 3, 1, 10, 0, 0)  # the recorder's clock; 09:00 UTC
UTC_START = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
SECONDS = 3  # each segment
SEGMENTS = 7  # three search pages of at most three


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[PeerSegment]:
    """Seven 3 s segments of track 101 back to back, frames numbered on across them."""
    folder = tmp_path_factory.mktemp("isapi")
    made = []
    for index in range(SEGMENTS):
        frames = numbered_frames(SECONDS * FPS, first=index * SECONDS * FPS)
        path = write_ps(folder / f"{index:08d}.ps", frames)
        start = WALL + timedelta(seconds=index * SECONDS)
        made.append(PeerSegment(101, start, start + timedelta(seconds=SECONDS), path))
    return made


@pytest.fixture
def peer(segments: list[PeerSegment]) -> Iterator[IsapiPeer]:
    recorder = IsapiPeer("admin", "s3cret-pass", segments, page=3)
    with recorder.running():
        yield recorder


def source(url: str, password: str = "s3cret-pass") -> IsapiSource:
    return IsapiSource("nvr", url, "admin", password, timezone=BERLIN, timeout=5)


def at(seconds: float) -> datetime:
    return UTC_START + timedelta(seconds=seconds)


def test_listing_reads_every_search_page_and_places_the_recorder_clock(peer: IsapiPeer) -> None:
    listing = source(peer.url).list(Span(at(0), at(60)))

    (recording,) = listing.recordings
    assert (recording.recording, recording.camera) == ("101", "ch01")
    assert recording.spans == (Span(at(0), at(SEGMENTS * SECONDS)),)
    assert peer.positions == [0, 3, 6]
    assert listing.complete_to == at(60)


def test_a_chunk_is_the_recorders_frames_of_its_range(peer: IsapiPeer, tmp_path: Path) -> None:
    chunk = Chunk("nvr", "101", "ch01", at(4), at(8))  # across the 2nd and 3rd segments

    fetched = source(peer.url).fetch(chunk, tmp_path)

    assert fetched.own_copy and fetched.path.parent == tmp_path
    assert fetched.start == at(4) and fetched.gaps == ()
    with av.open(str(fetched.path)) as clip:
        assert clip.metadata["creation_time"].startswith("2026-03-01T09:00:04")
        shown = [(frame_number(f), round(float(f.time or 0) * FPS)) for f in clip.decode(video=0)]
    assert [n for n, _ in shown] == list(range(4 * FPS, 8 * FPS))
    assert [t for _, t in shown] == list(range(4 * FPS))
    assert sorted(p.name for p in tmp_path.iterdir()) == [fetched.path.name]


def test_a_chunk_past_the_recording_has_a_gap(peer: IsapiPeer, tmp_path: Path) -> None:
    end = SEGMENTS * SECONDS
    fetched = source(peer.url).fetch(
        Chunk("nvr", "101", "ch01", at(end - 2), at(end + 5)), tmp_path
    )

    assert fetched.gaps == (Span(at(end), at(end + 5)),)
    with av.open(str(fetched.path)) as clip:
        numbers = [frame_number(f) for f in clip.decode(video=0)]
    assert numbers == list(range((end - 2) * FPS, end * FPS))


def test_nothing_recorded_is_no_data(peer: IsapiPeer, tmp_path: Path) -> None:
    later = Span(at(3600), at(3900))

    assert source(peer.url).list(later).recordings[0].spans == ()
    with pytest.raises(NoData):
        source(peer.url).fetch(Chunk("nvr", "101", "ch01", later.start, later.end), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_password_is_permanent_and_never_shown(peer: IsapiPeer, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as raised:
        source(peer.url, password="wrong-horse").list(Span(at(0), at(60)))

    assert raised.value.permanent
    message = str(raised.value)
    assert "nvr" in message and "127.0.0.1" in message and "password" in message
    assert "wrong-horse" not in message and "s3cret" not in message
    assert peer.refused >= 1 and peer.requests == []


def test_a_recorder_that_is_down_is_a_passing_error(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    chunk = Chunk("nvr", "101", "ch01", at(0), at(5))

    with pytest.raises(SourceError) as raised:
        source(url).fetch(chunk, tmp_path)

    assert not raised.value.permanent
    assert "unreachable" in str(raised.value) and "127.0.0.1" in str(raised.value)


def test_a_busy_recorder_is_asked_again(peer: IsapiPeer, tmp_path: Path) -> None:
    peer.busy = 1

    fetched = source(peer.url).fetch(Chunk("nvr", "101", "ch01", at(0), at(3)), tmp_path)

    with av.open(str(fetched.path)) as clip:
        assert [frame_number(f) for f in clip.decode(video=0)] == list(range(3 * FPS))


def test_a_download_that_breaks_off_leaves_nothing(peer: IsapiPeer, tmp_path: Path) -> None:
    peer.breaking = 1

    with pytest.raises(SourceError) as raised:
        source(peer.url).fetch(Chunk("nvr", "101", "ch01", at(0), at(3)), tmp_path)

    assert not raised.value.permanent and "broke off" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_times_with_an_offset_are_taken_as_given() -> None:
    assert parse_time("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, 0)
    assert parse_time("2026-03-01T10:00:00+08:00") == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
