"""Sweeps of an ONVIF Profile G recorder as a user runs them (`privmask sweep run`, no
daemon), against real peers on loopback: the small ONVIF recorder (`onvif_device.py`) for
the search, GStreamer's ONVIF replay server (`replay_peer.py`) for the video, whose request
log shows what was fetched.

The recorder holds one recording over the previous day with data in a few short stretches
(motion recording): 02:00, 09:30 (with a 2 s hole inside it) and 17:45 UTC."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from onvif_device import FakeRecording, OnvifDevice
from replay_peer import FPS, ReplayServer, Served
from test_sweep_cli import site

from harness import privmask

USER, PASSWORD = "operator", "recorder-secret"
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY = MIDNIGHT - timedelta(days=1)  # "the previous day", the first run's window (site: UTC)
SECONDS = 2  # each stretch of recorded data


@pytest.fixture(autouse=True)
def _still_the_same_day() -> None:
    """The recorder's day is fixed when this module is imported; a suite that runs past
    midnight (UTC) meanwhile would sweep another 'previous day' than the one it serves."""
    if datetime.now(UTC) >= MIDNIGHT + timedelta(days=1):
        pytest.skip("midnight (UTC) passed since this module was imported")


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute, seconds=second)


# where the recording holds data: 2 s each; 09:30:02..09:30:04 is a hole inside a chunk
STRETCHES = (at(2, 0), at(9, 30), at(9, 30, 4), at(17, 45))
CHUNKS = ("02:00", "09:30", "17:45")  # the 15-minute chunks holding data


def write_stretches(path: Path) -> Path:
    """The recorder's file: 2 s at 25 fps per stretch, each stretch starting on a keyframe,
    the file's timeline jumping over the time between them (as recorders store it)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        # a keyframe every second and nowhere else: a stretch starts on one, as a recorder's
        # recording resumes with one
        params = f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=0"
        stream.options = {"preset": "veryfast", "x264-params": params}
        index = 0
        for start in STRETCHES:
            offset = round((start - STRETCHES[0]).total_seconds() * FPS)
            for n in range(SECONDS * FPS):
                picture = np.full((128, 160, 3), (index * 7) % 256, np.uint8)
                picture[40:80, (index * 3) % 120 :][:, :40] = 255
                frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
                frame.pts, index = offset + n, index + 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def recording() -> FakeRecording:
    """Data from the first stretch to midnight (the recorder still records), except between
    the stretches: what FindEvents reports as the track's data-present changes."""
    ends = [s + timedelta(seconds=SECONDS) for s in STRETCHES]
    gaps = list(zip(ends, [*STRETCHES[1:], MIDNIGHT], strict=True))
    return FakeRecording("rec-1", "gate", STRETCHES[0], MIDNIGHT, gaps=gaps)


@dataclass
class Recorder:
    device: OnvifDevice
    replay: ReplayServer
    clip: Path

    def served(self) -> list[Served]:
        return [Served("/rec-1", STRETCHES[0], self.clip, "h264")]

    def played(self) -> Counter[str]:
        """The clock ranges the replay server was asked to play, counted."""
        plays = [r for r in self.replay.requests() if r["method"] == "PLAY" and r["authorization"]]
        return Counter(_chunk_of(r["range"]) for r in plays)


def _chunk_of(clock: str) -> str:
    """`clock=20260329T093000Z-20260329T094500Z` -> "09:30" (the chunk's site time)."""
    start = clock.removeprefix("clock=").split("-")[0]
    return f"{start[9:11]}:{start[11:13]}"


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    clip = write_stretches(tmp_path / "recorded.mp4")
    served = [Served("/rec-1", STRETCHES[0], clip, "h264")]
    replay = ReplayServer(served, USER, PASSWORD).start()
    uri = lambda token: f"rtsp://127.0.0.1:{replay.port}/{token}"  # noqa: E731
    try:
        with OnvifDevice([recording()], replay_uri=uri, skew=timedelta(minutes=7)) as device:
            yield Recorder(device, replay, clip)
    finally:
        if replay.folder.exists():  # a test may have taken it down itself
            replay.stop()


def nvr_sweep(device: OnvifDevice, secret: Path, name: str = "nightly", **more: Any) -> dict:
    return {"name": name, "schedule": "30 2 * * *", "lag": "0s",
            "source": {"onvif": device.url, "username": USER,
                       "password": {"file": str(secret)}}, **more}  # fmt: skip


def password_file(tmp_path: Path) -> Path:
    secret = tmp_path / "nvr-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    return secret


def status_of(config: Path) -> dict[str, str]:
    """`privmask sweep status`, one line per sweep, by sweep name."""
    shown = privmask("sweep", "status", "--config", config)
    assert shown.returncode == 0, shown.stderr
    return {line.split()[0]: line for line in shown.stdout.splitlines()}


def covered(line: str) -> str:
    return line.split("covered up to ")[1][:16]


def chunk_gaps(tmp_path: Path) -> dict[str, bool]:
    """What the journal recorded per chunk: whether part of it had no data."""
    journal = tmp_path / "state" / "journal.sqlite"
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT start, gap FROM sweep_chunks ORDER BY start").fetchall()
    return {f"{datetime.fromtimestamp(s, UTC):%H:%M}": bool(g) for s, g in rows}


def test_a_day_of_recording_is_swept_in_chunks_each_stretch_once(
    recorder: Recorder, tmp_path: Path, models_dir: Path
) -> None:
    config = site(tmp_path, models_dir, [nvr_sweep(recorder.device, password_file(tmp_path))])
    swept = privmask("sweep", "run", "nightly", "--config", config, models=models_dir)
    assert swept.returncode == 0, swept.stderr
    assert "nightly: 3 chunk(s): 3 packaged (1 with a gap)" in swept.stdout
    # each stretch fetched once; the empty hours between them were never asked for
    assert recorder.played() == Counter(CHUNKS)
    packages = sorted(p.name for p in (tmp_path / "outbox").glob("*.zip"))
    times = [f"gate_{DAY:%Y%m%d}_{chunk.replace(':', '')}00" for chunk in CHUNKS]
    assert [p[: len(times[0])] for p in packages] == times
    # the hole inside the 09:30 chunk is recorded as a gap, not an error
    assert chunk_gaps(tmp_path) == {"02:00": False, "09:30": True, "17:45": False}
    line = status_of(config)["nightly"]
    assert covered(line) == f"{MIDNIGHT:%Y-%m-%d} 00:00"  # the window's end: the whole day
    assert "last error -" in line and "gaps 1 chunk(s)" in line
    assert list((tmp_path / "state" / "sweeps" / "nightly").iterdir()) == []  # copies gone
    again = privmask("sweep", "run", "nightly", "--config", config, models=models_dir)
    assert again.returncode == 0, again.stderr
    assert recorder.played() == Counter(CHUNKS)  # nothing fetched twice


def test_a_recorder_offline_then_back_is_caught_up_each_chunk_once(
    recorder: Recorder, tmp_path: Path, models_dir: Path
) -> None:
    config = site(tmp_path, models_dir, [nvr_sweep(recorder.device, password_file(tmp_path))])
    recorder.replay.stop()  # the recorder's video side is down; its port stays ours
    failed = privmask("sweep", "run", "nightly", "--config", config, models=models_dir)
    assert failed.returncode == 1
    assert PASSWORD not in failed.stdout + failed.stderr and "Traceback" not in failed.stderr
    (line,) = [x for x in failed.stderr.splitlines() if x.startswith("privmask: error:")]
    assert recorder.device.url in line  # names the recorder
    status = status_of(config)["nightly"]
    assert covered(status) == f"{DAY:%Y-%m-%d} 00:00"  # the watermark waits
    assert recorder.device.url in status.split("last error ")[1]
    assert PASSWORD not in status
    assert list((tmp_path / "outbox").glob("*.zip")) == []

    back = ReplayServer(recorder.served(), USER, PASSWORD)
    back.port = recorder.replay.port  # the same address the recorder hands out
    with back:
        caught_up = privmask("sweep", "run", "nightly", "--config", config, models=models_dir)
        played = Recorder(recorder.device, back, recorder.clip).played()
    assert caught_up.returncode == 0, caught_up.stderr
    assert "nightly: 3 chunk(s): 3 packaged" in caught_up.stdout
    assert played == Counter(CHUNKS)  # each chunk fetched once
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 3
    status = status_of(config)["nightly"]
    assert covered(status) == f"{MIDNIGHT:%Y-%m-%d} 00:00" and "last error -" in status


def test_two_sweeps_over_one_recorder_fetch_and_package_each_chunk_once(
    recorder: Recorder, tmp_path: Path, models_dir: Path
) -> None:
    secret = password_file(tmp_path)
    nightly = nvr_sweep(recorder.device, secret)
    hourly = nvr_sweep(recorder.device, secret, name="hourly", schedule="0 * * * *")
    config = site(tmp_path, models_dir, [nightly, hourly])
    first = privmask("sweep", "run", "nightly", "--config", config, models=models_dir)
    assert first.returncode == 0, first.stderr
    second = privmask("sweep", "run", "hourly", "--config", config, models=models_dir)
    assert second.returncode == 0, second.stderr
    assert "hourly: 3 chunk(s): 3 packaged" in second.stdout  # made by the other sweep
    assert recorder.played() == Counter(CHUNKS)  # the recorder was asked once per chunk
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 3
    status = status_of(config)
    assert covered(status["nightly"]) == covered(status["hourly"]) == f"{MIDNIGHT:%Y-%m-%d} 00:00"
