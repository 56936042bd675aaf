"""Clips whose picture size changes part way (a camera switched streams, NVR exports joined
together): every part is detected and masked in its own size, then fitted into the output's
size (the first part's) without being stretched; a part that cannot be masked fails the job.

The clips are made as cameras and recorders make them: MPEG-TS parts written one by one and
joined byte for byte, and Motion JPEG in Matroska, where every frame is a picture of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from privmask.adapters.video import VideoError
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.testing import (
    Box,
    FaceSpec,
    Image,
    Scene,
    is_masked,
    read_frames,
    render_scene,
)
from privmask.rules.plan import RedactionPlan, Region, TargetPlan

pytestmark = pytest.mark.slow

FPS = 25
PART_FRAMES = 25
SIZES = ((320, 240), (640, 480), (320, 240))


def part_scene(width: int, height: int) -> tuple[Scene, list[Image]]:
    """One second of a face a quarter of the picture high, drifting right (plain grey where
    the picture is too thin for a scene)."""
    if min(width, height) < 64:
        grey = np.full((height, width, 3), 128, np.uint8)
        return Scene(width, height, FPS, PART_FRAMES, ()), [grey] * PART_FRAMES
    faces = (FaceSpec("face", height // 4, (0.45, 0.5), (width / 320, 0.0)),)
    scene, frames = render_scene(
        width=width, height=height, fps=FPS, seconds=PART_FRAMES / FPS, faces=faces, pillar=None
    )
    return scene, list(frames)


def _frame(image: Image, pts: int, pix_fmt: str) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format=pix_fmt)
    frame.pts, frame.time_base = pts, Fraction(1, FPS)
    return frame


def write_ts(path: Path, sizes: Sequence[tuple[int, int]]) -> list[Scene]:
    """H.264 MPEG-TS parts, timestamps running on from part to part, joined byte for byte."""
    scenes, data = [], b""
    for number, (width, height) in enumerate(sizes):
        scene, images = part_scene(width, height)
        part = path.with_name(f"{path.stem}.part{number}.ts")
        with av.open(str(part), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index, image in enumerate(images):
                container.mux(stream.encode(_frame(image, number * PART_FRAMES + index, "yuv420p")))
            container.mux(stream.encode(None))
        data += part.read_bytes()
        part.unlink()
        scenes.append(scene)
    path.write_bytes(data)
    return scenes


def write_mjpeg_mkv(path: Path, sizes: Sequence[tuple[int, int]]) -> list[Scene]:
    """Motion JPEG in Matroska: one stream, each part's pictures from an encoder of its size."""
    scenes = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=FPS)
        stream.width, stream.height = sizes[0]
        stream.pix_fmt, stream.time_base = "yuvj420p", Fraction(1, FPS)
        for number, (width, height) in enumerate(sizes):
            scene, images = part_scene(width, height)
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.time_base = Fraction(1, FPS)
            for index, image in enumerate(images):
                for packet in encoder.encode(
                    _frame(image, number * PART_FRAMES + index, "yuvj420p")
                ):
                    packet.stream, packet.time_base = stream, Fraction(1, FPS)
                    container.mux(packet)
            scenes.append(scene)
    return scenes


WRITERS = {"mpegts": (write_ts, ".ts"), "mjpeg-mkv": (write_mjpeg_mkv, ".mkv")}


def fitted(image: Image, box: Box, size: tuple[int, int]) -> tuple[Image, Box]:
    """A source frame and a box in it, as they look fitted into the output's `size` (scaled
    to fit, centred on black). The test's sizes scale by exact factors."""
    width, height = size
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    fw, fh = round(w * scale), round(h * scale)
    x0, y0 = (width - fw) // 2, (height - fh) // 2
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[y0 : y0 + fh, x0 : x0 + fw] = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA)
    x1, y1, x2, y2 = box
    moved = (x0 + round(x1 * scale), y0 + round(y1 * scale))
    return canvas, (*moved, x0 + round(x2 * scale), y0 + round(y2 * scale))


def unmasked(scenes: list[Scene], source: Path, output: Path) -> tuple[list[tuple[int, int]], int]:
    """(part, frame) of every face appearance left visible, and how many were judged."""
    before, after = list(read_frames(source)), list(read_frames(output))
    assert len(before) == len(after) == PART_FRAMES * len(scenes)
    size = (after[0].shape[1], after[0].shape[0])
    leaks, judged = [], 0
    for number, scene in enumerate(scenes):
        for index, _, box in scene.visible("face", min_size=20):
            at = number * PART_FRAMES + index
            original, moved = fitted(before[at], box, size)
            judged += 1
            if not is_masked(original, after[at], moved):
                leaks.append((number, index))
    return leaks, judged


def privmask(*args: str | Path, models_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PRIVMASK_MODELS": str(models_dir)},
        timeout=300,
    )


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_part_of_a_clip_that_changes_size_is_masked(
    kind: str, models_dir: Path, tmp_path: Path
) -> None:
    writer, suffix = WRITERS[kind]
    source, output = tmp_path / f"joined{suffix}", tmp_path / "out.mp4"
    scenes = writer(source, SIZES)
    done = privmask("redact", source, output, "--style", "solid", models_dir=models_dir)
    assert done.returncode == 0, done.stderr
    leaks, judged = unmasked(scenes, source, output)
    assert judged >= 70
    assert leaks == []
    with av.open(str(output)) as container:
        sizes = {(f.width, f.height) for f in container.decode(video=0)}
    assert sizes == {SIZES[0]}


def test_a_part_of_another_shape_is_fitted_unstretched_and_masked(
    models_dir: Path, tmp_path: Path
) -> None:
    source, output = tmp_path / "wide.ts", tmp_path / "out.mp4"
    scenes = write_ts(source, ((320, 240), (640, 360), (320, 240)))
    plan = RedactionPlan(targets=(TargetPlan("face"),))
    redact(source, output, plan, models_dir=models_dir)
    leaks, judged = unmasked(scenes, source, output)
    assert judged >= 70 and leaks == []
    wide = list(read_frames(output))[PART_FRAMES + 10]
    # 640x360 fits 320x240 as 320x180: black bars of 30 rows above and below, none beside
    assert wide[:28].max() <= 24 and wide[-28:].max() <= 24
    assert wide[40:200, :8].mean() > 40 and wide[40:200, -8:].mean() > 40


def test_fixed_regions_cover_the_same_part_of_every_size(tmp_path: Path) -> None:
    source, output = tmp_path / "joined.mkv", tmp_path / "out.mp4"
    write_mjpeg_mkv(source, SIZES)
    plan = RedactionPlan(regions=(Region.parse("0,0,0.5,1"),))
    redact(source, output, plan)
    for index, image in enumerate(read_frames(output)):
        assert image[:, :156].max() <= 24, f"frame {index}: left half not covered"


def test_a_part_too_large_to_mask_fails_closed_and_leaves_no_output(
    models_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "joined.mkv"
    write_mjpeg_mkv(source, ((320, 240), (8208, 16)))
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    done = privmask("redact", source, outbox / "out.mp4", models_dir=models_dir)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("privmask: error: "), done.stderr
    assert "8208x16" in lines[0] and "frame 25" in lines[0]
    assert list(outbox.iterdir()) == []


def test_a_frame_of_another_size_than_detection_saw_is_refused() -> None:
    # pass two meets each frame again: one of another size than pass one saw is refused
    from privmask.daemon.pipeline.parts import PartSizes

    sizes = PartSizes(Path("clip.ts"))
    assert [sizes.record(index, 320, 240) for index in range(10)] == [False] * 10
    assert sizes.record(10, 640, 480)
    sizes.check(10, 640, 480)
    sizes.check(99, 640, 480)  # past the end: the last part's size
    with pytest.raises(VideoError) as caught:
        sizes.check(5, 640, 480)
    assert caught.value.code == "resolution_change"
    assert "frame 5 is 640x480" in str(caught.value) and "320x240" in str(caught.value)
