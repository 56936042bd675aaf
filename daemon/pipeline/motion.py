"""Picture motion: where a target went while the detector did not see it.

A detector that runs on every third frame, and misses now and then, may see a fast target
once: the silver car's plate on the shared car clip is found in one frame while it is in
view for 27, and a velocity cannot be known from one box. The pictures can: the box's
content in the frame it was seen in is looked for in the neighbouring detection frames
(normalised cross-correlation of a small grey template, searched near where the target
can have got to), and where it is found clearly, that is where the target went.

Pictures are grey and small (the luma plane, halved until it is at most `MAX_WIDTH` wide),
kept only for the few detection frames a track can still reach back to. A template is
matched at a size where the box is at most `TEMPLATE_SIDE` pixels long, so a person costs
no more than a plate. A flat template (a plain wall) matches anywhere and is not followed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.video import planes
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.tracks import Box

Grey = npt.NDArray[np.uint8]

MAX_WIDTH = 960  # pictures are halved until they are at most this wide
TEMPLATE_SIDE = 48  # templates are matched at a scale where a box is at most this long
MIN_MATCH = 0.8  # normalised correlation a found place needs (0.6 was a wrong place)
# the best place must beat any other a template's size away or more by this much (nearer
# places belong to the same peak: a plate's is wide). On the car clip the silver car's plate
# scored 0.94-0.98 against 0.63 elsewhere, the white car's 0.985 against 0.936 (its bumper);
# three frames further on 0.931 against 0.927 is a guess.
MIN_LEAD = 0.03
MIN_TEXTURE = 4.0  # grey-level spread a template needs to say where it is
NEAR_EDGE = 0.25  # box sides from an edge, within which half a box is followed
LOOK_SIZE = 16  # side of the thumbnail a sighting's look is compared on


@dataclass(frozen=True)
class Picture:
    """A grey picture of one frame; `sx`, `sy`: its pixels per pixel of the clip's stored
    geometry (the boxes' coordinates)."""

    grey: Grey
    sx: float
    sy: float

    @classmethod
    def of(cls, frame: av.VideoFrame, geometry: FrameGeometry) -> Picture:
        """The frame's picture, for boxes in `geometry` (the frame may be of another size)."""
        if frame.format.name in ("yuv420p", "yuvj420p", "nv12", "gray"):
            grey = np.array(planes(frame)[0])  # luma as it is: no colour conversion
        else:
            grey = frame.reformat(format="gray").to_ndarray()
        while grey.shape[1] > MAX_WIDTH:
            grey = cv2.pyrDown(grey)
        height, width = grey.shape
        return cls(grey, width / geometry.width, height / geometry.height)

    def touches_edge(self, box: Box, pixels: float = 1.0) -> bool:
        """Whether the box reaches within `pixels` of the picture's border."""
        height, width = self.grey.shape
        return bool(
            box[0] * self.sx < pixels
            or box[1] * self.sy < pixels
            or box[2] * self.sx > width - pixels
            or box[3] * self.sy > height - pixels
        )

    def crop(self, box: Box, factor: float) -> tuple[Grey, tuple[int, int]] | None:
        """The box's pixels, shrunk by `factor`, and their top-left corner in this picture;
        None where the box is not wholly inside."""
        x1, y1 = math.floor(box[0] * self.sx), math.floor(box[1] * self.sy)
        x2, y2 = math.ceil(box[2] * self.sx), math.ceil(box[3] * self.sy)
        height, width = self.grey.shape
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height or x2 - x1 < 2 or y2 - y1 < 2:
            return None
        pixels = self.grey[y1:y2, x1:x2]
        if factor > 1:
            size = (max(1, round((x2 - x1) / factor)), max(1, round((y2 - y1) / factor)))
            pixels = np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), np.uint8)
        return pixels, (x1, y1)


def follow(source: Picture, target: Picture, box: Box, guess: Box, reach: float) -> Box | None:
    """Where `box`'s content in `source` is in `target`: near `guess`, at most `reach`
    clip pixels from it; None where it is not found clearly (or cannot be looked for).

    Near a frame edge a target entering or leaving is partly outside in one of the two
    pictures, so where the whole box is not found (or is not wholly inside), the half of it
    away from the nearest edge is looked for, and the whole box moved with it. Pictures of
    different sizes (parts of a clip whose picture size changed) are not compared: a target
    is not carried across such a change on a guess."""
    if source.grey.shape != target.grey.shape:
        return None
    moved = None
    if not source.touches_edge(box):
        moved = _match(source, target, box, box, guess, reach)
    if moved is None:
        half = _half_away_from_edge(source, box)
        if half is not None and not source.touches_edge(half):
            moved = _match(source, target, half, box, guess, reach)
    return moved


def _half_away_from_edge(picture: Picture, box: Box) -> Box | None:
    """The half of the box away from the picture edge nearest to it, where that edge is
    within a quarter of the box; None where the box is clear of every edge."""
    height, width = picture.grey.shape
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    x1, y1, x2, y2 = (float(v) for v in box)
    gaps = [  # (distance to the edge in box sizes, the half away from it)
        (x1 / w, (x1 + w / 2, y1, x2, y2)),
        (y1 / h, (x1, y1 + h / 2, x2, y2)),
        ((width / picture.sx - x2) / w, (x1, y1, x2 - w / 2, y2)),
        ((height / picture.sy - y2) / h, (x1, y1, x2, y2 - h / 2)),
    ]
    distance, half = min(gaps, key=lambda g: g[0])
    return np.array(half, dtype=np.float32) if distance < NEAR_EDGE else None


def _match(
    source: Picture, target: Picture, part: Box, box: Box, guess: Box, reach: float
) -> Box | None:
    """Look for `part` of `box` (in `source`) in `target` near `guess` (of the whole box);
    the whole box moved as the part is, or None."""
    side = max((part[2] - part[0]) * source.sx, (part[3] - part[1]) * source.sy)
    factor = max(1.0, side / TEMPLATE_SIDE)
    template = source.crop(part, factor)
    if template is None or float(template[0].std()) < MIN_TEXTURE:
        return None
    height, width = target.grey.shape
    area = guess + (part - box) + np.array([-reach, -reach, reach, reach], dtype=np.float32)
    area = np.array(
        [
            max(0.0, area[0]),
            max(0.0, area[1]),
            min(width / target.sx, area[2]),
            min(height / target.sy, area[3]),
        ],
        dtype=np.float32,
    )
    window = target.crop(area, factor)
    if window is None:
        return None
    pixels, (wx, wy) = window
    pattern, (tx, ty) = template
    if pixels.shape[0] < pattern.shape[0] or pixels.shape[1] < pattern.shape[1]:
        return None
    scores = np.asarray(cv2.matchTemplate(pixels, pattern, cv2.TM_CCOEFF_NORMED), np.float32)
    _, best, _, (col, row) = cv2.minMaxLoc(scores)
    if not best >= MIN_MATCH or _runner_up(scores, col, row, pattern.shape) > best - MIN_LEAD:
        return None  # unclear, or as good somewhere else (NaN fails too)
    step = np.array(
        [
            (wx + col * factor) / target.sx - tx / source.sx,
            (wy + row * factor) / target.sy - ty / source.sy,
        ]
        * 2,
        dtype=np.float32,
    )
    # found against the border: the part may be cut there and matched shifted
    return None if target.touches_edge(part + step, 2.0) else (box + step).astype(np.float32)


def _runner_up(
    scores: npt.NDArray[np.float32], col: int, row: int, shape: tuple[int, ...]
) -> float:
    """The best score a template's size or more away from the best place."""
    height, width = shape[0], shape[1]
    others = scores.copy()
    others[max(0, row - height) : row + height + 1, max(0, col - width) : col + width + 1] = -1
    return float(others.max())


def look(picture: Picture, box: Box) -> npt.NDArray[np.float32] | None:
    """A small grey thumbnail of the box and what surrounds it (half a box each side),
    to tell whether a target and its background ever change; None near the edge."""
    w, h = box[2] - box[0], box[3] - box[1]
    around = box + np.array([-w / 2, -h / 2, w / 2, h / 2], dtype=np.float32)
    found = picture.crop(around, 1.0)
    if found is None:
        found = picture.crop(box, 1.0)
    if found is None:
        return None
    small = cv2.resize(found[0], (LOOK_SIZE, LOOK_SIZE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)
