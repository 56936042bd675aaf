"""Where small faces can be in a picture, detection frame by detection frame.

A face too small for the look at the whole halved picture (`BASE_SCALE`: 48 px and more)
can only be
- where the picture changed since the previous detection frame: it moved, or came in,
  or turned to the camera;
- near where a small face was found in the last few detection frames (`memory`): it
  stayed, or moved too little to change the picture much;
- on the head of a person the person detector found (when people are detected too);
- anywhere on the first detection frames (`whole_first`), and, as a last resort for a face
  that never moved and was missed there, on one tile of a slow sweep over the whole picture
  every few detection frames.
Each place is looked at at the scale its smallest possible face needs (`scale_for`): a
changed place as tall as a body may hold a face a sixteenth of its height, a person's face
is a tenth of their height or more, and a face seen lately is as small as it was. Places
that overlap are looked at once where that costs less; when all places together would
cost nearly as much as the whole picture doubled, the whole picture is doubled: more
places cost time, never a face.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in stored-frame pixels
Area = tuple[float, float, float, float]  # a rectangle not yet fitted to the picture
Place = tuple[Rect, float]  # a rectangle and the scale to look at it at

BASE_SCALE = 0.5  # the whole picture, every detection frame: faces from 48 px
NEAR_SCALE = 2.0  # the closest look: faces from 14 px
SMALLEST_FACE = 14.0
# a face looked at at scale s is found when it is about this many pixels high there
# (measured: 28 px faces at 1x, 20 px at 1.5x, 14 px at 2x; 48 px faces at 0.5x)
FOUND_FROM = 28.0
BASE_FINDS = 48.0
SCALE_STEP = 0.25
MULTIPLE = 32  # detector inputs are padded to this: a place uses the padding for pixels
CALL_PIXELS = 10_000  # what one more look costs beyond its pixels (per-call overhead)


def scale_for(face: float) -> float | None:
    """The coarsest scale that finds a face `face` pixels high, or None where the look at
    the whole picture finds it."""
    if face >= BASE_FINDS:
        return None
    needed = FOUND_FROM / max(face, SMALLEST_FACE)
    return min(NEAR_SCALE, max(SCALE_STEP * 3, math.ceil(needed / SCALE_STEP) * SCALE_STEP))


@dataclass(frozen=True)
class AttentionSettings:
    memory: int = 8  # detection frames a small face is looked for again where it was
    margin: float = 1.0  # around a remembered face: its own size on every side
    min_margin: int = 24  # pixels; a small face moves as far as a large one
    motion_width: int = 640  # change is measured on the luma plane shrunk to this width
    motion_level: int = 10  # grey levels of change (after taking out a global shift)
    motion_pad: int = 24  # pixels added around each changed place
    per_body: float = 16.0  # a changed place may hold a face this share of its height
    per_person: float = 10.0  # a person's face is at least this share of their height
    head_below: int = 480  # people shorter than this have their head looked at closely
    whole_first: int = 2  # the first detection frames are looked at closely all over
    tile: int = 320  # sweep tiles, pixels a side
    overlap: int = 64  # tiles overlap by more than a small face
    sweep_every: int = 4  # one sweep tile every n-th detection frame
    whole_share: float = 0.9  # places costing this share of the whole: the whole


class Attention:
    """The places to look at closely in the detection frames of one picture size."""

    def __init__(
        self, width: int, height: int, settings: AttentionSettings, turns: int = 0
    ) -> None:
        """`turns`: quarter turns from the stored frame to the picture shown (people stand
        upright in the shown picture: their heads are on top there)."""
        self.width, self.height, self.settings, self.turns = width, height, settings, turns
        self._tiles = _tiles(width, height, settings.tile, settings.overlap)
        self._recent: deque[list[tuple[Rect, float]]] = deque(maxlen=settings.memory)
        self._grey: npt.NDArray[np.int16] | None = None
        self._calls = 0

    def places(
        self, luma: npt.NDArray[np.uint8], people: list[Rect], faces: list[Rect]
    ) -> list[Place] | None:
        """Where to look closely in this detection frame, or None for all of the picture.

        `people` and `faces`: what this frame's other looks found. A change where they are,
        or where a small face was just seen, is them moving and needs no look of its own:
        their heads and the small faces get theirs."""
        s = self.settings
        remembered = [seen for frame in self._recent for seen in frame]
        known = [*people, *faces, *(face for face, _ in remembered)]
        changed = self._changed(luma, known)
        self._calls += 1
        if self._calls <= s.whole_first:
            return None
        wanted: list[tuple[Area, float | None]] = [
            (rect, scale_for(self._tall(rect) / s.per_body)) for rect in changed
        ]
        for p in people:
            if self._tall(p) < s.head_below:
                wanted.append((_head(p, self.turns), scale_for(self._tall(p) / s.per_person)))
        wanted += [self._around(face, scale) for face, scale in remembered]
        if self._calls % s.sweep_every == 0:
            tile = self._tiles[(self._calls // s.sweep_every) % len(self._tiles)]
            wanted.append((tile, NEAR_SCALE))
        places = _merge([(self._fit(r, scale), scale) for r, scale in wanted if scale])
        whole = self.width * self.height * NEAR_SCALE**2
        return None if sum(cost(p) for p in places) >= s.whole_share * whole else places

    def _tall(self, rect: Rect) -> int:
        """How tall a rectangle of the stored frame is in the picture shown."""
        return rect[2] - rect[0] if self.turns % 2 else rect[3] - rect[1]

    def seen(self, faces: Detections) -> None:
        """Remember the small faces of this detection frame, to look for them again."""
        small = []
        for x1, y1, x2, y2 in faces.xyxy.tolist():
            scale = scale_for(x2 - x1 if self.turns % 2 else y2 - y1)
            if scale is not None:
                small.append(((int(x1), int(y1), math.ceil(x2), math.ceil(y2)), scale))
        self._recent.append(small)

    def _around(self, face: Rect, scale: float) -> tuple[Area, float]:
        """Where to look for a face seen lately: around it, as far as it may have gone."""
        x1, y1, x2, y2 = face
        pad = max(self.settings.min_margin, self.settings.margin * max(x2 - x1, y2 - y1))
        return (x1 - pad, y1 - pad, x2 + pad, y2 + pad), scale

    def _changed(self, luma: npt.NDArray[np.uint8], known: list[Rect]) -> list[Rect]:
        """Where the picture changed since the previous detection frame, away from the
        `known` boxes (found people and faces, which reach where they were then)."""
        s = self.settings
        factor = min(1.0, s.motion_width / luma.shape[1])
        size = (max(1, round(luma.shape[1] * factor)), max(1, round(luma.shape[0] * factor)))
        small = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(small, (5, 5), 0).astype(np.int16)
        previous, self._grey = self._grey, grey
        if previous is None or previous.shape != grey.shape:
            return []
        diff = grey - previous
        # the camera's gain or the light changed everywhere (a sample tells by how much)
        diff -= np.int16(np.median(diff[::4, ::4]))
        moved = (np.abs(diff) > s.motion_level).astype(np.uint8)
        moved = cv2.morphologyEx(moved, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        for x1, y1, x2, y2 in known:
            reach = s.motion_pad + 0.1 * max(x2 - x1, y2 - y1)
            moved[
                max(0, int((y1 - reach) * factor)) : max(0, math.ceil((y2 + reach) * factor)),
                max(0, int((x1 - reach) * factor)) : max(0, math.ceil((x2 + reach) * factor)),
            ] = 0
        moved = cv2.dilate(moved, np.ones((7, 7), np.uint8))  # the pieces of one body: one place
        count, _, stats, _ = cv2.connectedComponentsWithStats(moved, connectivity=8)
        pad = s.motion_pad
        return [
            (
                int(x / factor) - pad,
                int(y / factor) - pad,
                int((x + w) / factor) + pad,
                int((y + h) / factor) + pad,
            )
            for x, y, w, h, _ in stats[1:count].tolist()
        ]

    def _fit(self, rect: Area, scale: float) -> Rect:
        """The rectangle inside the picture, with even corners (chroma is half size), grown
        to use the pixels the detector would pad with."""
        x1, y1, x2, y2 = (max(0.0, rect[0]), max(0.0, rect[1]), rect[2], rect[3])
        x2, y2 = min(float(self.width), x2), min(float(self.height), y2)
        left, right = _span(x1, x2, scale, self.width)
        top, bottom = _span(y1, y2, scale, self.height)
        return left, top, right, bottom


def _span(low: float, high: float, scale: float, limit: int) -> tuple[int, int]:
    """[low, high) grown to a length the detector takes whole at `scale`, inside 0..limit,
    on even pixels."""
    start, end = int(low) // 2 * 2, min(limit, -(-math.ceil(high) // 2) * 2)
    if end <= start:
        return start, start
    step = MULTIPLE / scale
    wanted = min(limit, math.ceil((end - start) / step) * step)
    grow = wanted - (end - start)
    start = max(0, min(start - int(grow / 2), limit - int(wanted))) // 2 * 2
    return start, min(limit, start + int(wanted) // 2 * 2)


def cost(place: Place) -> float:
    """Pixels the detector looks at for a place, plus the cost of one more call."""
    (x1, y1, x2, y2), scale = place
    return (x2 - x1) * (y2 - y1) * scale * scale + CALL_PIXELS


def area(rect: Rect) -> int:
    return (rect[2] - rect[0]) * (rect[3] - rect[1])


def _merge(places: list[Place]) -> list[Place]:
    """Overlapping places become one (at the closer scale) where that costs no more than
    looking at both, until no two can."""
    places = [p for p in places if area(p[0]) > 0]
    merged = True
    while merged:
        merged = False
        for i in range(len(places)):
            for j in range(i + 1, len(places)):
                (a, sa), (b, sb) = places[i], places[j]
                if not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]):
                    continue
                union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                joined = (union, max(sa, sb))
                if cost(joined) <= cost(places[i]) + cost(places[j]):
                    places[i] = joined
                    del places[j]
                    merged = True
                    break
            if merged:
                break
    return places


def _head(person: Rect, turns: int) -> Area:
    """Where a person's head is: the top of their box as shown, a little around. One turn
    shows the stored frame's right side on top, two its bottom, three its left side."""
    x1, y1, x2, y2 = person
    w, h = x2 - x1, y2 - y1
    if turns % 4 == 1:
        return (x2 - 0.35 * w, y1 - 0.1 * h, x2 + 0.05 * w, y2 + 0.1 * h)
    if turns % 4 == 2:
        return (x1 - 0.1 * w, y2 - 0.35 * h, x2 + 0.1 * w, y2 + 0.05 * h)
    if turns % 4 == 3:
        return (x1 - 0.05 * w, y1 - 0.1 * h, x1 + 0.35 * w, y2 + 0.1 * h)
    return (x1 - 0.1 * w, y1 - 0.05 * h, x2 + 0.1 * w, y1 + 0.35 * h)


def _tiles(width: int, height: int, side: int, overlap: int) -> list[Rect]:
    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        count = -(-(length - overlap) // (side - overlap))
        step = (length - side) / (count - 1)
        return [round(i * step) // 2 * 2 for i in range(count)]

    return [
        (x, y, min(width, x + side), min(height, y + side))
        for y in starts(height)
        for x in starts(width)
    ]
