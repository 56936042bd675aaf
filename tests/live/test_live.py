"""Live masking against real RTSP peers on loopback: gst-rtsp-server as the camera, FFmpeg's
RTSP listen mode as the server the masked stream is published to. See peers.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from peers import CameraServer, Viewer, free_port, stamped_scene, wait_for, write_camera_clip
from structlog.testing import capture_logs

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.urls import redact as redact_url
from privmask.adapters.video import VideoError
from privmask.daemon.live.camera import (
    CameraState,
    CameraStatus,
    LiveCamera,
    LiveOutputs,
    LiveSettings,
)
from privmask.daemon.pipeline.online import CausalMasker, OnlineTracker
from privmask.daemon.pipeline.setup import load_detectors
from privmask.daemon.pipeline.tracker import TrackerSettings
from privmask.daemon.testing import FaceSpec, Scene, is_masked
from privmask.rules.plan import RedactionPlan, Region, TargetPlan

pytestmark = pytest.mark.slow

SIZE = (640, 360)
SECONDS = 4.0
FACES = (
    FaceSpec("entering_left", 70, (-0.05, 0.4), (4.0, 0.0)),
    FaceSpec("appearing", 90, (0.7, 0.45), (-1.0, 0.0), first=0.3),
)
PLAN = RedactionPlan(targets=(TargetPlan("face"),))
FAST = LiveSettings(backoff_initial_s=0.2, backoff_max_s=1.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scene]:
    path = tmp_path_factory.mktemp("camera") / "camera.mp4"
    return path, write_camera_clip(path, *SIZE, SECONDS, FACES)


@dataclass
class LiveRun:
    scene: Scene
    viewer: Viewer
    segments: list[Path]
    hooked: list[Path]
    status: CameraStatus
    delay: int


@pytest.fixture(scope="module")
def live_run(
    clip: tuple[Path, Scene], models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> LiveRun:
    """One camera streamed once from start to end, published and cut into 1 s segments."""
    path, scene = clip
    folder = tmp_path_factory.mktemp("segments")
    hooked: list[Path] = []
    viewer = Viewer().start()
    with CameraServer(path) as server:
        url = server.url.replace("rtsp://", "rtsp://admin:hunter2@")
        outputs = LiveOutputs(viewer.url, folder, segment_seconds=1.0, on_segment=hooked.append)
        camera = LiveCamera(url, PLAN, outputs, FAST, models_dir=models_dir, name="cam1")
        camera.start()
        # the clip's end drops the stream: the camera goes to backoff after publishing it all
        ended = wait_for(lambda: camera.status.failures >= 1, timeout_s=20)
        status = camera.status
        camera.stop()
    viewer.join(5)
    assert ended, status
    return LiveRun(scene, viewer, sorted(folder.glob("*.mp4")), hooked, status, 20)


def test_published_stream_has_every_face_masked(live_run: LiveRun) -> None:
    _, frames = stamped_scene(*SIZE, SECONDS, FACES)
    source = list(frames)
    received = live_run.viewer.frames
    assert not live_run.viewer.error
    # every frame arrives, in order (the stamp says which source frame each one is)
    assert [r.index for r in received] == list(range(len(source)))
    leaks, checked = [], 0
    for r in received:
        assert r.image is not None
        for target in live_run.scene.targets:
            box = target.boxes[r.index]
            if box is None or box[3] - box[1] < 20:
                continue
            checked += 1
            if not is_masked(source[r.index], r.image, box):
                leaks.append((r.index, target.id, box))
    assert checked > 150
    assert leaks == []


def test_status_counts_and_bounded_buffer(live_run: LiveRun) -> None:
    status = live_run.status
    assert status.frames_in == status.frames_out == round(SECONDS * 25)
    assert status.connects == 1 and status.detections == round(SECONDS * 25 / 3 + 0.5)
    assert 0 < status.max_buffered <= live_run.delay  # 0.8 s at 25 fps
    assert "hunter2" not in repr(status) and "admin" not in status.url


def test_segments_are_complete_playable_files(live_run: LiveRun) -> None:
    assert len(live_run.segments) == 4
    assert live_run.hooked == sorted(live_run.hooked, key=lambda p: p.stat().st_mtime)
    assert sorted(live_run.hooked) == live_run.segments
    assert not list(live_run.segments[0].parent.glob(".*"))  # no partial file left behind
    for segment in live_run.segments:
        with av.open(str(segment)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            duration = float((stream.duration or 0) * (stream.time_base or 0))
        assert frames == 25
        assert duration == pytest.approx(1.0, abs=0.05)


def test_dropped_source_is_reopened_with_backoff(
    clip: tuple[Path, Scene], models_dir: Path, tmp_path: Path
) -> None:
    path, _ = clip
    server = CameraServer(path).start()
    camera = LiveCamera(server.url, PLAN, LiveOutputs(segment_dir=tmp_path), FAST, models_dir)
    try:
        camera.start()
        assert wait_for(lambda: camera.status.frames_in >= 10, 10), camera.status
        server.stop()  # the camera goes away mid-stream
        assert wait_for(lambda: camera.status.state is CameraState.BACKOFF, 10), camera.status
        time.sleep(1.5)  # several failed tries while it is gone
        down = camera.status
        assert down.failures >= 2 and down.state in (CameraState.BACKOFF, CameraState.CONNECTING)
        before = down.frames_in
        server = CameraServer(path, port=server.port).start()  # and comes back
        assert wait_for(lambda: camera.status.frames_in >= before + 10, 15), camera.status
        up = camera.status
        assert up.state is CameraState.STREAMING and up.connects == 2 and up.failures == 0
    finally:
        camera.stop()
        server.stop()
    assert camera.status.state is CameraState.OFFLINE
    assert list(tmp_path.glob("*.mp4"))  # what streamed before the drop was kept


def test_bad_url_backs_off_then_reports_offline_without_raising(
    models_dir: Path, tmp_path: Path
) -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/nothing"
    settings = LiveSettings(backoff_initial_s=0.05, backoff_max_s=0.2, offline_after=3)
    camera = LiveCamera(url, PLAN, LiveOutputs(segment_dir=tmp_path), settings, models_dir)
    with capture_logs() as logs:
        camera.start()
        assert wait_for(lambda: camera.status.failures >= 1, 10)
        assert camera.status.state in (CameraState.BACKOFF, CameraState.CONNECTING)
        assert wait_for(lambda: camera.status.state is CameraState.OFFLINE, 10)
        assert camera._thread is not None and camera._thread.is_alive()  # still retrying
        camera.stop()
    status = camera.status
    assert "cannot open rtsp://127.0.0.1:" in status.last_error
    assert "refused" in status.last_error.lower()
    assert logs and all("hunter2" not in repr(event) for event in logs)
    assert "hunter2" not in repr(status)


def test_delay_buffer_stays_bounded_over_a_long_run(models_dir: Path) -> None:
    detectors = load_detectors(PLAN, models_dir)
    masker = CausalMasker(PLAN, detectors, 320, 240, Fraction(25), delay_s=0.6)
    assert masker.delay == 15
    image = np.full((240, 320, 3), 128, np.uint8)
    out = 0
    for index in range(3000):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        for ready in masker.push(frame):
            assert ready.pts == out  # in order, exactly `delay` frames late
            out += 1
        assert masker.buffered <= masker.delay
        # sightings: the tracker's history behind the leaving frame, the buffer ahead of it
        assert len(masker.tracker.sightings) <= (masker.tracker.history + masker.delay) // 3 + 2
    assert masker.max_buffered == masker.delay and out == 3000 - masker.delay
    assert sum(1 for _ in masker.flush()) == masker.delay and masker.buffered == 0


def test_masker_refuses_a_frame_of_another_size(models_dir: Path) -> None:
    # a camera that switches to a larger picture: boxes found at 320x240 must never be
    # drawn into a 640x480 frame (they would cover the wrong place, or a quarter of it)
    plan = RedactionPlan(targets=(TargetPlan("face"),), regions=(Region.parse("0,0,0.5,1"),))
    masker = CausalMasker(plan, load_detectors(plan, models_dir), 320, 240, Fraction(25), 0.2)
    small = np.full((240, 320, 3), 128, np.uint8)
    held = []
    for index in range(3):
        frame = av.VideoFrame.from_ndarray(small, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        held += list(masker.push(frame))
    large = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 128, np.uint8), format="bgr24")
    with pytest.raises(VideoError) as caught:
        list(masker.push(large.reformat(format="yuv420p")))
    assert caught.value.code == "resolution_change"
    assert "640x480" in str(caught.value) and "320x240" in str(caught.value)
    # nothing of the other size was taken in: what leaves is the old size, masked
    out = held + list(masker.flush())
    assert [(f.width, f.height) for f in out] == [(320, 240)] * 3
    assert all(f.to_ndarray(format="bgr24")[:, :150].max() <= 24 for f in out)


def _sightings(frames: Iterator[int], x: float) -> Iterator[tuple[int, Detections]]:
    for f in frames:
        box = [x + 2 * f, 100, x + 2 * f + 40, 150]
        yield f, Detections.create([box], [0.9], TargetClass.FACE)


def test_online_tracker_reaches_back_and_holds() -> None:
    settings = {TargetClass.FACE: TrackerSettings(max_gap=12, lead=5, tail=5)}
    tracker = OnlineTracker(settings)
    for f in range(0, 40, 3):
        tracker.add(f, Detections.empty() if f < 30 else next(_sightings(iter([f]), 200))[1])
    # first seen at frame 30: frames 25..29, still in a buffer, are masked too
    assert tracker.boxes(24) is None
    assert all(tracker.boxes(f) is not None for f in range(25, 40))
    # not seen after 39: held for max_gap frames (a miss is not an exit), then let go
    assert tracker.boxes(39 + 12) is not None and tracker.boxes(39 + 13) is None


def test_credentials_are_stripped_from_urls() -> None:
    assert redact_url("rtsp://u:p%40ss@10.0.0.5:554/Streaming/101?x=1") == (
        "rtsp://10.0.0.5:554/Streaming/101?x=1"
    )
    assert redact_url("rtsp://user@cam/live") == "rtsp://cam/live"
    assert redact_url("rtsp://cam:554/live") == "rtsp://cam:554/live"
    assert redact_url("rtsp://cam/live?user=admin&password=hunter2&ch=1") == "rtsp://cam/live?ch=1"
