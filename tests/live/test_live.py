"""Live masking against real RTSP peers on loopback: gst-rtsp-server as the camera, FFmpeg's
RTSP listen mode as the server the masked stream is published to. See peers.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from peers import (
    CameraServer,
    Viewer,
    free_port,
    read_stamp,
    stamped_scene,
    wait_for,
    write_camera_clip,
)
from structlog.testing import capture_logs

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.streamcopy import Copied, StreamCopy
from privmask.adapters.urls import redact as redact_url
from privmask.adapters.video import VideoError
from privmask.daemon.live.camera import (
    CameraState,
    CameraStatus,
    LiveCamera,
    LiveOutputs,
    LiveSegment,
    LiveSettings,
)
from privmask.daemon.pipeline.detection import FrameDetector, load_detectors
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.online import (
    ROTATE_FRAMES,
    CausalMasker,
    OnlineTracker,
    detect_here,
)
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
# one stream, start to end: no second connection before the test has looked (a loaded
# machine can take longer than FAST's 0.2 s to read the status)
ONCE = LiveSettings(backoff_initial_s=10.0, backoff_max_s=10.0)
GOP = 20  # the camera's keyframe interval (0.8 s), not a divisor of the segments' 1 s
JOB_ID = re.compile(r"live-\d{8}T\d{6}-[0-9a-f]{6}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scene]:
    path = tmp_path_factory.mktemp("camera") / "camera.mp4"
    return path, write_camera_clip(path, *SIZE, SECONDS, FACES, gop=GOP)


@dataclass
class LiveRun:
    scene: Scene
    viewer: Viewer
    segments: list[Path]
    hooked: list[LiveSegment]
    original_sha256: dict[Path, str]  # each original's hash when it was handed over
    status: CameraStatus
    delay: int


@pytest.fixture(scope="module")
def live_run(
    clip: tuple[Path, Scene], models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> LiveRun:
    """One camera streamed once from start to end, published and cut into 1 s segments."""
    path, scene = clip
    folder = tmp_path_factory.mktemp("segments")
    hooked: list[LiveSegment] = []
    hashes: dict[Path, str] = {}

    def hook(segment: LiveSegment) -> None:
        hooked.append(segment)
        if segment.original is not None:
            hashes[segment.original] = hashlib.sha256(segment.original.read_bytes()).hexdigest()

    viewer = Viewer().start()
    with CameraServer(path) as server:
        url = server.url.replace("rtsp://", "rtsp://admin:hunter2@")
        outputs = LiveOutputs(
            viewer.url, folder, segment_seconds=1.0, originals=True, on_segment=hook
        )
        camera = LiveCamera(url, PLAN, outputs, ONCE, models_dir=models_dir, name="cam1")
        camera.start()
        # the clip's end drops the stream: the camera goes to backoff after publishing it all
        ended = wait_for(lambda: camera.status.failures >= 1, timeout_s=60)
        status = camera.status
        camera.stop()
    viewer.join(30)
    assert ended, status
    segments = sorted(folder.glob("*.mp4"))
    return LiveRun(scene, viewer, segments, hooked, hashes, status, 50)


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
    # 2 s at 25 fps, and up to 2 s more while detections are pending (the shared worker)
    assert live_run.delay <= status.max_buffered <= live_run.delay + 50
    assert "hunter2" not in repr(status) and "admin" not in status.url


def test_segments_are_complete_playable_files(live_run: LiveRun) -> None:
    assert len(live_run.segments) == 4
    masked = [segment.masked for segment in live_run.hooked]
    assert masked == sorted(masked, key=lambda p: p.stat().st_mtime)
    assert sorted(masked) == live_run.segments
    # a segment's name is its job id: no camera name, unique across cameras and restarts
    assert all(JOB_ID.fullmatch(p.stem) for p in masked), masked
    assert not list(live_run.segments[0].parent.glob(".*"))  # no partial file left behind
    for segment in live_run.segments:
        with av.open(str(segment)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            duration = float((stream.duration or 0) * (stream.time_base or 0))
        assert frames == 25
        assert duration == pytest.approx(1.0, abs=0.05)


def _stamped(path: Path) -> dict[int, np.ndarray]:
    """A video's frames by their stamped source index."""
    with av.open(str(path)) as container:
        images = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return {read_stamp(image): image for image in images}


def _packets(path: Path) -> list[tuple[bool, bytes]]:
    with av.open(str(path)) as container:
        return [(p.is_keyframe, bytes(p)) for p in container.demux(video=0) if p.size]


def test_each_segment_has_the_cameras_own_unmasked_segment(
    live_run: LiveRun, clip: tuple[Path, Scene]
) -> None:
    _, frames = stamped_scene(*SIZE, SECONDS, FACES)
    source = list(frames)
    camera_packets = {data for _, data in _packets(clip[0])}
    checked = 0
    assert len(live_run.hooked) == 4
    for number, segment in enumerate(live_run.hooked):
        original = segment.original
        assert original is not None and segment.original_missing == ""
        # beside its masked segment, under a name no `*.mp4` reader takes, readable by us only
        assert original.parent == segment.masked.parent
        assert original.name == f"{segment.masked.stem}.original"
        assert not original.match("*.mp4")
        assert original.stat().st_mode & 0o777 == 0o600
        assert (
            hashlib.sha256(original.read_bytes()).hexdigest() == live_run.original_sha256[original]
        )
        # the packets as the camera sent them (no re-encode): every frame's bytes are the
        # camera's; keyframes may carry the parameter sets the RTP payloader repeats
        packets = _packets(original)
        assert packets[0][0], "an unmasked segment starts at a keyframe"
        assert all(data in camera_packets for key, data in packets if not key)
        masked, unmasked = _stamped(segment.masked), _stamped(original)
        # it covers the masked segment's span, from the keyframe at or before its start
        assert set(masked) <= set(unmasked)
        assert min(unmasked) % GOP == 0
        # segments start at 1 s, 2 s, 3 s; keyframes come every 0.8 s: a little earlier
        assert min(unmasked) < min(masked) if number else min(unmasked) == min(masked) == 0
        assert segment.original_lead_s == pytest.approx((min(masked) - min(unmasked)) / 25)
        for index, image in masked.items():
            for target in live_run.scene.targets:
                box = target.boxes[index]
                if box is None or box[3] - box[1] < 20:
                    continue
                checked += 1
                # where the masked segment is masked, the unmasked one shows the picture
                assert is_masked(source[index], image, box)
                assert not is_masked(source[index], unmasked[index], box)
    assert checked > 150


def test_each_segment_lists_its_tracks_as_a_file_manifest_does(live_run: LiveRun) -> None:
    for segment in live_run.hooked:
        frames = list(_stamped(segment.masked))  # source indices, in the segment's order
        assert segment.tracks, segment.masked.name
        for track in segment.tracks:
            assert set(track) == {"id", "class", "masked_from", "masked_to", "masked"}
            assert track["class"] == "face" and track["masked"] is True
            assert 0 <= track["masked_from"] <= track["masked_to"] < len(frames)
        # every frame where a face shows (counted within the segment) is in a track's span
        for position, index in enumerate(frames):
            for target in live_run.scene.targets:
                box = target.boxes[index]
                if box is None or box[3] - box[1] < 20:
                    continue
                assert any(
                    t["masked_from"] <= position <= t["masked_to"] for t in segment.tracks
                ), (segment.masked.name, position, target.id)
    # a face that stays in view keeps its id from one segment to the next
    ids = [{t["id"] for t in segment.tracks} for segment in live_run.hooked]
    assert all(a & b for a, b in zip(ids, ids[1:])), ids


def _copy_of(clip: Path, folder: Path, begin_at: int, max_bytes: int) -> Copied:
    """The camera clip's packets through a StreamCopy, as RtspSource hands them over (the
    first without timestamps, the next two without dts, as FFmpeg's RTSP demuxer gives
    them); an original begun at frame `begin_at` and ended after the last packet."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        step = round(1 / (25 * stream.time_base))
        copy = StreamCopy(stream, Fraction(25), lambda pts: pts, max_bytes)  # pts as the file's
        for number, packet in enumerate(container.demux(stream)):
            if number < 3:
                packet.dts = None
                packet.pts = None if number == 0 else packet.pts
            copy.add(packet)
            if number == begin_at + 10:  # what the live delay lets in before the frame leaves
                copy.begin(folder / "segment.original", begin_at * step)
        return copy.end()


def test_stream_copy_starts_at_the_keyframe_before_and_fills_missing_timestamps(
    clip: tuple[Path, Scene], tmp_path: Path
) -> None:
    for begin_at, keyframe in ((0, 0), (30, 20)):
        copied = _copy_of(clip[0], tmp_path, begin_at, max_bytes=64 << 20)
        assert copied.path is not None and copied.missing == "", copied
        assert copied.path.stat().st_mode & 0o777 == 0o600
        stamps = list(_stamped(copied.path))
        assert stamps == list(range(keyframe, round(SECONDS * 25)))  # every frame, in order
        assert copied.lead_s == pytest.approx((begin_at - keyframe) / 25)
        copied.path.unlink()


def test_stream_copy_that_lost_the_keyframe_says_so_and_leaves_nothing(
    clip: tuple[Path, Scene], tmp_path: Path
) -> None:
    # held packets are capped: a camera that sends keyframes too rarely loses its original
    copied = _copy_of(clip[0], tmp_path, begin_at=30, max_bytes=1000)
    assert copied.path is None and "no keyframe" in copied.missing
    assert list(tmp_path.iterdir()) == []


def test_dropped_source_is_reopened_with_backoff(
    clip: tuple[Path, Scene], models_dir: Path, tmp_path: Path
) -> None:
    path, _ = clip
    server = CameraServer(path).start()
    camera = LiveCamera(server.url, PLAN, LiveOutputs(segment_dir=tmp_path), FAST, models_dir)
    try:
        camera.start()
        assert wait_for(lambda: camera.status.frames_in >= 10, 30), camera.status
        server.stop()  # the camera goes away mid-stream
        assert wait_for(lambda: camera.status.state is CameraState.BACKOFF, 10), camera.status
        # several failed tries while it is gone (the backoff starts at 0.2 s)
        assert wait_for(lambda: camera.status.failures >= 2, 10), camera.status
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
    detector = FrameDetector(load_detectors(PLAN, models_dir))
    detect = detect_here(detector, FrameGeometry(320, 240))
    masker = CausalMasker(PLAN, detect, 320, 240, Fraction(25), delay_s=0.6)
    assert masker.delay == 15
    image = np.full((240, 320, 3), 128, np.uint8)
    frames = 4 * ROTATE_FRAMES  # long enough for the tracker's window to be renewed 4 times
    out = 0
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        for ready in masker.push(frame):
            assert ready.frame.pts == out  # in order, exactly `delay` frames late
            out += 1
        assert masker.buffered <= masker.delay
        # sightings: the tracker's history behind the leaving frame, the buffer ahead of it
        assert len(masker.tracker.sightings) <= (masker.tracker.history + masker.delay) // 3 + 2
    assert masker.max_buffered == masker.delay and out == frames - masker.delay
    assert sum(1 for _ in masker.flush()) == masker.delay and masker.buffered == 0
    detector.close()


def test_masker_refuses_a_frame_of_another_size(models_dir: Path) -> None:
    # a camera that switches to a larger picture: boxes found at 320x240 must never be
    # drawn into a 640x480 frame (they would cover the wrong place, or a quarter of it)
    plan = RedactionPlan(targets=(TargetPlan("face"),), regions=(Region.parse("0,0,0.5,1"),))
    detector = FrameDetector(load_detectors(plan, models_dir))
    masker = CausalMasker(
        plan, detect_here(detector, FrameGeometry(320, 240)), 320, 240, Fraction(25), 0.2
    )
    small = np.full((240, 320, 3), 128, np.uint8)
    held = []
    for index in range(3):
        frame = av.VideoFrame.from_ndarray(small, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        held += [ready.frame for ready in masker.push(frame)]
    large = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 128, np.uint8), format="bgr24")
    with pytest.raises(VideoError) as caught:
        list(masker.push(large.reformat(format="yuv420p")))
    assert caught.value.code == "resolution_change"
    assert "640x480" in str(caught.value) and "320x240" in str(caught.value)
    # nothing of the other size was taken in: what leaves is the old size, masked
    out = held + [ready.frame for ready in masker.flush()]
    assert [(f.width, f.height) for f in out] == [(320, 240)] * 3
    assert all(f.to_ndarray(format="bgr24")[:, :150].max() <= 24 for f in out)
    detector.close()


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


def test_online_tracker_keeps_a_tracks_id_while_others_come_and_go() -> None:
    # ids are what a segment's manifest lists: a face must not change its id because an
    # older track left the window and the window was linked again
    settings = {TargetClass.FACE: TrackerSettings(max_gap=6, lead=3, tail=3)}
    tracker = OnlineTracker(settings)
    early = dict(_sightings(iter(range(0, 30, 3)), 20))  # a face that leaves at frame 27
    late = dict(_sightings(iter(range(15, 120, 3)), 300))  # one that stays on
    ids: dict[int, set[int]] = {0: set(), 1: set()}
    for f in range(120):
        if f % 3 == 0:
            boxes = [d for d in (early.get(f), late.get(f)) if d is not None]
            found = Detections.merge(boxes)
            tracker.add(f, found)
        if f >= 6 and (masked := tracker.boxes(f - 6)) is not None:
            for x, track in zip(masked.xyxy[:, 0], masked.track_id):
                ids[int(x > 150)].add(int(track))
    assert len(ids[0]) == 1 and len(ids[1]) == 1 and ids[0] != ids[1], ids
