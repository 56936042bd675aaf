"""The hard cases of the shared real clips, as excerpts with a truth that is not privmask's
own detector: people entering or leaving at a frame edge, and a car's plate seen once.

- `excerpt` cuts frames first..last into a clip of their own (H.264, crf 10, B-frames, a
  keyframe first, as a camera sends them), at the same rate: the detector's frame phase is
  kept when `first` is a multiple of its cadence.
- People (intel_one-by-one-person-detection.mp4): the truth is every pixel that differs
  from the empty room, which the fixed camera films before and after them (`foreground`).
- The silver car's plate (intel_car-detection.mp4, frames 183-209): the truth is the plate
  detector run on every frame at twice the size, as a referee would (`unmasked_plates`).

Offline (`privmask redact`) and live (`LiveCamera`) are judged on the same cases.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from privmask.adapters.detectors.plates import PlateDetector
from privmask.daemon.testing.judge import channel_change, is_masked
from privmask.daemon.testing.video import Box, Image

PEOPLE_CLIP = "intel_one-by-one-person-detection.mp4"
PLATE_CLIP = "intel_car-detection.mp4"
PLATE_MODEL = "hyperlpr3_plate_y5fu_320x_sim.onnx"
# (first, last, empty, judged) of each excerpt; `empty` is a frame with nobody in the room
PEOPLE_AT_EDGES = {
    # leaving at the right edge (frames 150-239): legs showed in frames 195-199
    "leaving_right": (150, 239, 205, range(180, 205)),
    # entering at the bottom edge (frames 879-968): head and back showed in 921-927
    "entering_bottom": (879, 968, 910, range(912, 945)),
}
PLATE_EXCERPT = (168, 230)  # the plate is judged in frames 183-209
PLATE_JUDGED = range(183, 210)


def excerpt(source: Path, target: Path, first: int, last: int) -> Path:
    """Frames first..last of `source` as an H.264 clip of their own (crf 10)."""
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


def foreground(frame: Image, empty: Image) -> Box | None:
    """The box of what differs from the empty room (parts of 1000 px or more), or None."""
    a = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 2)
    b = cv2.GaussianBlur(empty.astype(np.float32), (0, 0), 2)
    moved = (channel_change(a, b) > 30).astype(np.uint8)
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


def unmasked_people(case: str, before: list[Image], after: list[Image]) -> list[int]:
    """The frames (numbered as in the whole clip) of the excerpt `case` of
    `PEOPLE_AT_EDGES` where someone in `before` is not masked in `after`."""
    first, _, empty, judged = PEOPLE_AT_EDGES[case]
    shown = []
    for index in judged:
        box = foreground(before[index - first], before[empty - first])
        if box is not None and not is_masked(before[index - first], after[index - first], box):
            shown.append(index)
    return shown


def unmasked_plates(
    before: list[Image], after: list[Image], models_dir: Path
) -> tuple[list[int], int]:
    """The frames of the plate excerpt where a plate the referee finds is not masked, and
    how many plate boxes the referee judged."""
    first = PLATE_EXCERPT[0]
    referee = PlateDetector(models_dir / PLATE_MODEL, min_score=0.3)
    shown, judged = [], 0
    for index in PLATE_JUDGED:
        # the car drives on the left: that part, doubled, is where the referee looks
        left = cv2.resize(before[index - first][:, :384], None, fx=2, fy=2)
        for x1, y1, x2, y2 in referee.detect(left).xyxy / 2:
            box = (int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2)))
            judged += 1
            if not is_masked(before[index - first], after[index - first], box):
                shown.append(index)
    return shown, judged
