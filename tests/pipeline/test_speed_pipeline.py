"""What makes offline redaction fast, checked for what it must not cost: masks, files, threads.

Speed itself is measured by bench/bench_redact.py (timed tests would fail on a busy
machine). Here: the close looks for small faces go only where the picture changes (a still
scene costs little), decoding and encoding in threads of their own leave no thread and no
file behind and still fail cleanly, and the output has a keyframe every few seconds, so
that checking its end decodes a few seconds, not the whole clip.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from privmask.adapters.video import ReadAhead, VideoError, crop_bgr, decode_frames, to_bgr
from privmask.daemon.pipeline.attention import NEAR_SCALE, AttentionSettings
from privmask.daemon.pipeline.detection import FrameDetector, load_detectors
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.testing import FaceSpec, write_frames, write_scene
from privmask.rules.plan import RedactionPlan, Region, TargetPlan

from clips import write_clip

FACES = RedactionPlan(targets=(TargetPlan("face"),))
SHARED = Path(__file__).resolve().parents[3] / "shared"


def still_clip(path: Path, media_dir: Path, seconds: float = 4.0) -> Path:
    """A real, face-free picture (the empty parking lot) that never changes."""
    with av.open(str(media_dir / "intel_car-detection.mp4")) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="bgr24")
    picture = cv2.resize(picture, (1280, 720))
    write_frames(path, [picture] * round(seconds * 25), fps=25, size=(1280, 720))
    return path


def close_looks(path: Path, models_dir: Path) -> tuple[list[int], FrameDetector]:
    """Pixels looked at closely in each detection frame of the clip (every third)."""
    geometry = FrameGeometry(1280, 720)
    looked = []
    with FrameDetector(load_detectors(FACES, models_dir)) as detector:
        for index, frame in enumerate(decode_frames(path, writable=False)):
            if index % 3 == 0:
                before = detector.close_pixels
                detector(frame, geometry)
                looked.append(detector.close_pixels - before)
    return looked, detector


@pytest.mark.slow
def test_a_still_scene_is_looked_at_closely_only_on_the_sweep(
    media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    looked, _ = close_looks(still_clip(tmp_path / "still.mp4", media_dir), models_dir)
    settings = AttentionSettings()
    whole = 1280 * 720 * NEAR_SCALE**2
    # the first detection frames are looked at all over; after that, one sweep tile (grown
    # to the detector's padding) every few frames and nothing else
    assert all(n >= whole for n in looked[: settings.whole_first])
    later = looked[settings.whole_first :]
    tile = (settings.tile + 64) ** 2 * NEAR_SCALE**2
    assert sum(later) <= len(later) / settings.sweep_every * tile
    assert max(later) <= tile


@pytest.mark.slow
def test_small_moving_faces_are_looked_at_closely_where_they_are(
    models_dir: Path, tmp_path: Path
) -> None:
    faces = (FaceSpec("small", 16, (0.3, 0.4), (1.0, 0.2)),)
    source = tmp_path / "in.mp4"
    write_scene(source, faces=faces, seconds=3.0, pillar=None)
    looked, _ = close_looks(source, models_dir)
    later = looked[AttentionSettings().whole_first :]
    # a 16 px face (and the swaying foliage of the scene's background): a small part of
    # the picture, never all of it
    whole = 1280 * 720 * NEAR_SCALE**2
    assert max(later) < 0.5 * whole
    assert sum(later) / len(later) < 0.25 * whole


def test_a_crop_has_the_colours_of_the_whole_picture(clip: Path) -> None:
    frame = next(iter(decode_frames(clip)))
    whole = to_bgr(frame, frame.width, frame.height).astype(int)
    part = crop_bgr(frame, (40, 20, 200, 140)).astype(int)
    assert part.shape == (120, 160, 3)
    assert np.abs(whole[20:140, 40:200] - part).max() <= 4
    with pytest.raises(ValueError, match="even corners"):
        crop_bgr(frame, (41, 20, 200, 140))


def test_reading_ahead_stops_and_closes_the_clip_when_given_up(clip: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    frames = ReadAhead(decode_frames(clip), depth=2)
    taken = [next(iter(frames)) for _ in range(2)]
    assert len(taken) == 2
    frames.close()
    assert not frames._thread.is_alive()
    assert set(os.listdir("/proc/self/fd")) <= before


def test_a_failure_ahead_reaches_the_reader_where_its_item_would_have(clip: Path) -> None:
    def frames_then_failure():  # type: ignore[no-untyped-def]
        for index, frame in enumerate(decode_frames(clip)):
            if index == 5:
                raise VideoError(f"{clip}: decoding failed (damaged)", "undecodable")
            yield frame

    got = []
    frames = ReadAhead(frames_then_failure(), depth=2)
    with pytest.raises(VideoError, match="damaged") as failure:
        for frame in frames:
            got.append(frame)
    frames.close()
    assert len(got) == 5
    assert failure.value.code == "undecodable"


def test_no_thread_outlives_a_redaction(clip: Path, models_dir: Path, tmp_path: Path) -> None:
    before = set(threading.enumerate())
    plan = RedactionPlan(
        targets=(TargetPlan("face"), TargetPlan("person")), regions=(Region.parse("0,0,0.2,0.2"),)
    )
    os.environ.setdefault("PRIVMASK_MODELS", str(models_dir))
    redact(clip, tmp_path / "out.mp4", plan, models_dir=models_dir)
    with pytest.raises(FileExistsError):
        redact(clip, tmp_path / "out.mp4", plan, models_dir=models_dir)
    assert set(threading.enumerate()) <= before


def test_the_output_has_a_keyframe_every_4_seconds(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "in.mp4", frames=250, fps=25)
    output = tmp_path / "out.mp4"
    redact(source, output, RedactionPlan(regions=(Region.parse("0,0,0.5,0.5"),)))
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        keys = [
            float(p.pts * stream.time_base)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        ]
    assert keys[0] == 0.0
    assert max(np.diff([*keys, 10.0])) <= 4.0


def test_an_output_disk_that_fills_up_midway_fails_cleanly(clip: Path, tmp_path: Path) -> None:
    """The encoder runs in a thread of its own: its write failure must still reach the
    user as one line and an exit code, leaving nothing behind."""
    source = write_clip(tmp_path / "in.mp4", frames=120, size=(640, 360))
    out = tmp_path / "out"
    out.mkdir()
    limit = source.stat().st_size // 3

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "privmask.daemon.cli",
            "redact",
            str(source),
            str(out / "o.mp4"),
            "--detect",
            "none",
            "--region",
            "0,0,0.5,0.5",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        preexec_fn=limited,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot write" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(out.iterdir()) == []
