"""ONVIF replay against a real replay server on loopback (GStreamer's RTSPOnvifServer, see
replay_peer.py): a stretch of a recording comes back as an MP4 whose frames are the
recording's own frames of that stretch, at their recording times; failures leave no file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from replay_peer import FPS, ReplayServer, Served, decoded, free_port, write_recording

from privmask.adapters.replay import ReplayError, replay

START = datetime(2026, 3, 29, 0, 30, 0, tzinfo=UTC)  # the recordings' first frame
USER, PASSWORD = "operator", "s3cret-Pw"
CODEC_NAMES = {"h264": "h264", "h265": "hevc"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recordings")
    made = {codec: write_recording(folder / f"{codec}.mp4", codec) for codec in ("h264", "h265")}
    # 2 s recorded, a 2 s hole, 2 s more
    made["gap"] = write_recording(folder / "gap.mp4", "h264", hole=(2 * FPS, 2))
    return made


@pytest.fixture(scope="module")
def server(clips: dict[str, Path]) -> Iterator[ReplayServer]:
    codecs = {"h264": "h264", "h265": "h265", "gap": "h264"}
    served = [Served(f"/{name}", START, clip, codecs[name]) for name, clip in clips.items()]
    with ReplayServer(served, user=USER, password=PASSWORD) as peer:
        yield peer


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def frame_index(moment: datetime) -> int:
    return round((moment - START).total_seconds() * FPS)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_a_stretch_comes_back_as_the_recordings_own_frames(
    server: ReplayServer, clips: dict[str, Path], tmp_path: Path, codec: str
) -> None:
    target = tmp_path / "chunk.mp4"
    got = replay(server.url(f"/{codec}"), USER, PASSWORD, at(1.5), at(3.0), target)

    # from the keyframe before the start (one a second) to the last frame before the end
    assert (got.first, got.last, got.frames, got.gaps) == (at(1.0), at(2.96), 50, ())
    pictures, source = decoded(target), decoded(clips[codec])
    assert len(pictures) == 50
    assert all(np.array_equal(p, s) for p, s in zip(pictures, source[25:75]))
    with av.open(str(target)) as container:
        assert container.metadata["creation_time"] == "2026-03-29T00:30:01.000000Z"
        assert container.streams.video[0].codec_context.name == CODEC_NAMES[codec]
    assert [p.name for p in tmp_path.iterdir()] == ["chunk.mp4"]


def test_a_hole_in_the_recording_is_a_gap(
    server: ReplayServer, clips: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "chunk.mp4"
    got = replay(server.url("/gap"), USER, PASSWORD, at(1.5), at(5.0), target)

    assert (got.first, got.last, got.frames) == (at(1.0), at(4.96), 50)
    assert got.gaps == ((at(1.96), at(4.0)),)
    pictures, source = decoded(target), decoded(clips["gap"])
    assert len(pictures) == 50
    assert all(np.array_equal(p, s) for p, s in zip(pictures, source[25:75]))


def test_the_replay_request_asks_for_onvif_replay_of_the_clock_range(
    server: ReplayServer, tmp_path: Path
) -> None:
    replay(server.url("/h264"), USER, PASSWORD, at(0.25), at(1.0), tmp_path / "c.mp4")

    sent = server.requests()
    setup = [r for r in sent if r["method"] == "SETUP"][-1]
    play = [r for r in sent if r["method"] == "PLAY"][-1]
    assert setup["require"] == "onvif-replay"
    assert play["require"] == "onvif-replay"
    assert play["range"] == "clock=20260329T003000.250Z-20260329T003001.000Z"
    assert play["rate_control"] == "no"
    assert sent[-1]["method"] == "TEARDOWN"


def test_a_stretch_beyond_the_recording_is_no_data_and_no_file(
    server: ReplayServer, tmp_path: Path
) -> None:
    with pytest.raises(ReplayError) as error:
        replay(server.url("/h264"), USER, PASSWORD, at(10), at(12), tmp_path / "c.mp4")

    assert error.value.code == "no_data"
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_password_is_an_auth_error_that_does_not_show_it(
    server: ReplayServer, tmp_path: Path
) -> None:
    with pytest.raises(ReplayError) as error:
        replay(server.url("/h264"), USER, "wrong-Pw", at(0), at(1), tmp_path / "c.mp4")

    assert error.value.code == "auth"
    assert "wrong-Pw" not in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_the_url_are_used_and_never_shown(
    server: ReplayServer, tmp_path: Path
) -> None:
    url = server.url("/nothing-here").replace("rtsp://", f"rtsp://{USER}:{PASSWORD}@")
    with pytest.raises(ReplayError) as error:
        replay(url, None, None, at(0), at(1), tmp_path / "c.mp4")

    assert error.value.code == "refused"  # authenticated, then 404 for the unknown mount
    assert PASSWORD not in str(error.value) and USER not in str(error.value)


def test_a_recorder_that_goes_away_mid_stream_leaves_no_file(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    served = [Served("/h264", START, clips["h264"], "h264")]
    # the server exits after 30 RTP packets
    with ReplayServer(served, die_after=30) as dying, pytest.raises(ReplayError) as error:
        replay(dying.url("/h264"), None, None, at(0), at(4), tmp_path / "c.mp4")

    assert error.value.code == "unreachable"
    assert list(tmp_path.iterdir()) == []


def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/h264"
    with pytest.raises(ReplayError) as error:
        replay(url, USER, PASSWORD, at(0), at(1), tmp_path / "c.mp4", timeout=2)

    assert error.value.code == "unreachable"
    assert list(tmp_path.iterdir()) == []


def test_b_frames_keep_their_order_and_every_frame_decodes(tmp_path: Path) -> None:
    clip = write_recording(tmp_path / "b.mp4", "h264", seconds=2, b_frames=2)
    target = tmp_path / "out" / "chunk.mp4"
    target.parent.mkdir()
    with ReplayServer([Served("/b", START, clip, "h264")]) as peer:
        got = replay(peer.url("/b"), None, None, at(0), at(3), target)

    pictures, source = decoded(target), decoded(clip)
    assert got.first == START
    assert len(pictures) == got.frames >= 2 * FPS - 2  # the server may stop short of the end
    assert all(np.array_equal(p, s) for p, s in zip(pictures, source))
