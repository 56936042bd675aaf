"""The ONVIF Profile G sweep source against real peers on loopback: the small ONVIF
recorder (`onvif_device.py`) for search, and GStreamer's ONVIF replay server
(`replay_peer.py`) for the recorded video."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from onvif_device import FakeRecording, OnvifDevice
from replay_peer import ReplayServer, Served, decoded, write_recording

from privmask.daemon.sweeps.onvif_source import OnvifSource
from privmask.daemon.sweeps.source import Chunk, NoData, SourceError, Span

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
USER, PASSWORD = "operator", "recorder-secret"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def source(device: OnvifDevice, password: str = PASSWORD, **kw: object) -> OnvifSource:
    return OnvifSource("nvr", device.url, USER, password, timeout=5, **kw)  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> Iterator[OnvifDevice]:
    recordings = [
        FakeRecording("rec-1", "gate", at(0), at(3600), gaps=[(at(600), at(900))]),
        FakeRecording("rec-2", "yard", at(0), at(1800)),
        FakeRecording("rec-3", "old", at(-7200), at(-3600), status="Stopped"),
    ]
    with OnvifDevice(recordings, skew=timedelta(hours=3)) as device:
        yield device


def test_the_recordings_of_a_window_with_their_cameras_and_gaps(recorder: OnvifDevice) -> None:
    listing = source(recorder).list(Span(at(0), at(7200)))
    by_token = {r.recording: r for r in listing.recordings}
    assert set(by_token) == {"rec-1", "rec-2"}  # rec-3 holds nothing in the window
    assert by_token["rec-1"].camera == "gate"
    assert by_token["rec-1"].spans == (Span(at(0), at(600)), Span(at(900), at(3600)))
    assert by_token["rec-2"].spans == (Span(at(0), at(1800)),)
    # the recorder has written everything up to its earliest DataTo (a stopped recording's
    # DataTo holds nothing back: nothing more will come)
    assert listing.complete_to == at(1800)
    assert not recorder.open_searches


def test_only_the_recordings_asked_for(recorder: OnvifDevice) -> None:
    listing = source(recorder, recordings=frozenset({"rec-1"})).list(Span(at(0), at(7200)))
    assert [r.recording for r in listing.recordings] == ["rec-1"]
    assert listing.complete_to == at(3600)


def test_a_wrong_password_is_a_permanent_error_naming_the_recorder(
    recorder: OnvifDevice,
) -> None:
    wrong = "Wrong-Pass-1234"
    nvr = source(recorder, password=wrong)
    with pytest.raises(SourceError) as caught:
        nvr.list(Span(at(0), at(7200)))
    assert caught.value.permanent
    message = str(caught.value)
    assert recorder.url in message and "\n" not in message
    assert wrong not in message and PASSWORD not in message and wrong not in repr(nvr)


def test_an_unreachable_recorder_is_a_passing_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/onvif/device_service"
    with pytest.raises(SourceError) as caught:
        OnvifSource("nvr", url, USER, PASSWORD, timeout=2).list(Span(at(0), at(60)))
    assert not caught.value.permanent
    assert url in str(caught.value)


@pytest.fixture
def replaying(tmp_path: Path) -> Iterator[tuple[OnvifDevice, Path]]:
    """A recorder whose recording rec-1 (camera gate) is a 4 s clip starting at T0, replayed
    by GStreamer's ONVIF server with the same credentials."""
    clip = write_recording(tmp_path / "recorded.mp4", "h264", seconds=4)
    with ReplayServer([Served("/rec-1", T0, clip, "h264")], USER, PASSWORD) as server:
        recordings = [FakeRecording("rec-1", "gate", at(0), at(4))]
        uri = lambda token: server.url(f"/{token}")  # noqa: E731
        with OnvifDevice(recordings, replay_uri=uri, skew=timedelta(hours=-3)) as device:
            yield device, clip


def test_a_chunk_is_fetched_into_an_mp4_starting_at_the_chunk_start(
    replaying: tuple[OnvifDevice, Path], tmp_path: Path
) -> None:
    device, clip = replaying
    staging = tmp_path / "staging"
    staging.mkdir()
    chunk = Chunk("nvr", "rec-1", "gate", at(1), at(3))  # keyframes every second
    fetched = source(device).fetch(chunk, staging)
    assert fetched.own_copy and fetched.path.parent == staging
    assert fetched.path.suffix == ".mp4"
    assert fetched.start == chunk.start
    assert fetched.gaps == ()
    with av.open(str(fetched.path)) as container:  # what recording-time detection reads
        assert container.metadata["creation_time"].startswith("2026-03-29T00:30:01")
    pictures, recorded = decoded(fetched.path), decoded(clip)
    assert len(pictures) == 50  # 2 s at 25 fps: the source's frames 25..74
    assert np.array_equal(pictures[0], recorded[25])
    assert np.array_equal(pictures[-1], recorded[74])


def test_a_replay_uri_naming_another_host_is_replayed_from_the_recorder_itself(
    tmp_path: Path,
) -> None:
    """The replay URI comes from the recorder's answer: a hostile recorder (or anyone on its
    plain-HTTP path) could point it elsewhere to collect a digest of the password. Like the
    SOAP addresses, it is pinned to the recorder's configured host."""
    clip = write_recording(tmp_path / "recorded.mp4", "h264", seconds=2)
    with ReplayServer([Served("/rec-1", T0, clip, "h264")], USER, PASSWORD) as server:
        recordings = [FakeRecording("rec-1", "gate", at(0), at(2))]
        elsewhere = lambda token: server.url(f"/{token}").replace("127.0.0.1", "127.0.0.2")  # noqa: E731
        with OnvifDevice(recordings, replay_uri=elsewhere) as device:
            staging = tmp_path / "staging"
            staging.mkdir()
            fetched = source(device).fetch(Chunk("nvr", "rec-1", "gate", at(0), at(1)), staging)
    assert fetched.path.is_file()


def test_a_chunk_without_recorded_data_is_no_data(
    replaying: tuple[OnvifDevice, Path], tmp_path: Path
) -> None:
    device, _ = replaying
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(NoData):
        source(device).fetch(Chunk("nvr", "rec-1", "gate", at(60), at(62)), staging)
    assert list(staging.iterdir()) == []


def test_a_replay_refused_for_its_credentials_is_a_permanent_error(tmp_path: Path) -> None:
    """The recorder's RTSP side wants other credentials than its ONVIF side."""
    clip = write_recording(tmp_path / "recorded.mp4", "h264", seconds=2)
    staging = tmp_path / "staging"
    staging.mkdir()
    with ReplayServer([Served("/rec-1", T0, clip, "h264")], USER, "rtsp-only-pass") as server:
        uri = lambda token: server.url(f"/{token}")  # noqa: E731
        recordings = [FakeRecording("rec-1", "gate", at(0), at(2))]
        with (
            OnvifDevice(recordings, replay_uri=uri) as device,
            pytest.raises(SourceError) as caught,
        ):
            source(device).fetch(Chunk("nvr", "rec-1", "gate", at(0), at(1)), staging)
    assert caught.value.permanent
    assert device.url in str(caught.value) and PASSWORD not in str(caught.value)
    assert list(staging.iterdir()) == []


def test_a_replay_server_that_cannot_be_reached_is_a_passing_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recordings = [FakeRecording("rec-1", "gate", at(0), at(2))]
    uri = lambda token: f"rtsp://127.0.0.1:{port}/{token}"  # noqa: E731
    with OnvifDevice(recordings, replay_uri=uri) as device, pytest.raises(SourceError) as caught:
        source(device).fetch(Chunk("nvr", "rec-1", "gate", at(0), at(1)), tmp_path)
    assert not caught.value.permanent
    assert list(tmp_path.iterdir()) == []
