"""On the shared real clips: a mask follows a target the detector saw once, and stays on
targets entering or leaving at a frame edge until they are wholly outside.

Each case is an excerpt of the real footage (re-encoded near losslessly, the detector's
frame phase kept), redacted as a user runs it: the `privmask` command with its defaults.
The truth is not privmask's own detector at its own settings:
- the silver car's plate (intel_car-detection.mp4, frames 183-209): the plate detector run
  on every frame at twice the size, as a referee would;
- the people (intel_one-by-one-person-detection.mp4): every pixel that differs from the
  empty room, which the fixed camera films before and after them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from privmask.adapters.detectors.plates import PlateDetector
from privmask.daemon.testing import is_masked, read_frames

pytestmark = pytest.mark.slow

Box = tuple[int, int, int, int]


def excerpt(source: Path, target: Path, first: int, last: int) -> Path:
    """Frames first..last of `source` as a clip of their own, at the same rate (crf 10)."""
    with av.open(str(source)) as clip, av.open(str(target), "w") as out:
        stream = clip.streams.video[0]
        rate = int(stream.average_rate or 25)
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
        video.options = {"crf": "10"}
        for index, frame in enumerate(clip.decode(stream)):
            if index > last:
                break
            if index >= first:
                copy = frame.reformat(format="yuv420p")
                copy.pts, copy.time_base = index - first, Fraction(1, rate)
                for packet in video.encode(copy):
                    out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return target


def redact(source: Path, output: Path, detect: str, models_dir: Path) -> list[np.ndarray]:
    done = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "redact", str(source), str(output)]
        + ["--detect", detect, "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "PRIVMASK_MODELS": str(models_dir)},
    )
    assert done.returncode == 0, done.stderr
    return list(read_frames(output))


def foreground(frame: np.ndarray, empty: np.ndarray) -> Box | None:
    """The box of what differs from the empty room (parts of 1000 px or more), or None."""
    a = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 2)
    b = cv2.GaussianBlur(empty.astype(np.float32), (0, 0), 2)
    moved = (np.abs(a - b).max(axis=2) > 30).astype(np.uint8)
    moved = cv2.morphologyEx(moved, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(moved)
    parts = [stats[k] for k in range(1, count) if stats[k, 4] >= 1000]
    if not parts:
        return None
    x1 = min(int(p[0]) for p in parts)
    y1 = min(int(p[1]) for p in parts)
    x2 = max(int(p[0] + p[2]) for p in parts)
    y2 = max(int(p[1] + p[3]) for p in parts)
    return x1, y1, x2, y2


def unmasked_people(
    before: list[np.ndarray], after: list[np.ndarray], empty: int, frames: range
) -> list[int]:
    shown = []
    for index in frames:
        box = foreground(before[index], before[empty])
        if box is not None and not is_masked(before[index], after[index], box):
            shown.append(index)
    return shown


@pytest.mark.parametrize(
    ("first", "last", "empty", "judged"),
    [
        # leaving at the right edge (frames 150-239): legs showed in frames 195-199
        (150, 239, 205, range(180, 205)),
        # entering at the bottom edge (frames 879-968): head and back showed in 921-927
        (879, 968, 910, range(912, 945)),
    ],
    ids=["leaving_right", "entering_bottom"],
)
def test_people_at_an_edge_stay_masked_until_wholly_outside(  # type: ignore[no-untyped-def]
    first, last, empty, judged, media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    clip = excerpt(
        media_dir / "intel_one-by-one-person-detection.mp4", tmp_path / "in.mp4", first, last
    )
    after = redact(clip, tmp_path / "out.mp4", "face,person", models_dir)
    before = list(read_frames(clip))
    shown = unmasked_people(
        before, after, empty - first, range(judged.start - first, judged.stop - first)
    )
    assert [first + i for i in shown] == []


def test_a_plate_seen_once_stays_masked_while_the_car_drives_on(
    media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    first = 168  # the excerpt keeps the detector's phase (every third frame from 0)
    clip = excerpt(media_dir / "intel_car-detection.mp4", tmp_path / "in.mp4", first, 230)
    after = redact(clip, tmp_path / "out.mp4", "plate", models_dir)
    before = list(read_frames(clip))
    referee = PlateDetector(models_dir / "hyperlpr3_plate_y5fu_320x_sim.onnx", min_score=0.3)
    shown, judged = [], 0
    for index in range(183 - first, 210 - first):
        left = cv2.resize(before[index][:, :384], None, fx=2, fy=2)  # the car drives on the left
        for x1, y1, x2, y2 in referee.detect(left).xyxy / 2:
            box = (int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2)))
            judged += 1
            if not is_masked(before[index], after[index], box):
                shown.append(first + index)
    assert judged >= 20  # the referee sees the plate on nearly every frame
    assert shown == []
