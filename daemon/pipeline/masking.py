"""Draw masks into a yuv420p frame, in place.

Working on the Y, U and V planes directly means no colour conversion per frame: a clip with
only static regions costs barely more than a plain transcode. Each style is applied to a
box's rectangle on every plane (chroma at half resolution), optionally limited to an
ellipse or polygon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass
from privmask.rules.plan import MaskShape, MaskStyle

Plane = npt.NDArray[np.uint8]
SOLID_YUV = (16, 128, 128)  # black in limited-range YUV
SHRINK_FROM = 4  # whole factors from which a box is shrunk in two steps (`_shrink`)


@dataclass(frozen=True)
class ClassStyle:
    style: MaskStyle
    shape: MaskShape
    padding: float  # fraction of the box size added on every side


@dataclass(frozen=True)
class _StaticMask:
    """A polygon rasterised once per plane: its bounding rectangle and a mask inside it."""

    rects: tuple[tuple[int, int, int, int], ...]  # per plane: x1, y1, x2, y2
    inside: tuple[npt.NDArray[np.bool_], ...]


class MaskRenderer:
    """Masks fixed polygons (each with its style) and tracked boxes into frames of one size."""

    def __init__(
        self,
        width: int,
        height: int,
        styles: Mapping[TargetClass, ClassStyle],
        regions: Sequence[tuple[Sequence[tuple[float, float]], MaskStyle]] = (),
        strength: float = 1.0,
    ) -> None:
        if width < 2 or height < 2:
            raise ValueError(f"frame size {width}x{height} is too small to mask")
        self.width, self.height = width, height
        self.styles = dict(styles)
        self.strength = strength
        self._static = []
        self.regions_outside: list[int] = []  # indices of regions with no pixel in the frame
        for index, (polygon, style) in enumerate(regions):
            mask = self._rasterise(polygon)
            if mask is None:
                self.regions_outside.append(index)
            else:
                self._static.append((mask, style))

    def _rasterise(self, polygon: Sequence[tuple[float, float]]) -> _StaticMask | None:
        points = np.asarray(polygon, dtype=np.float64)
        rects, inside = [], []
        for scale in (1, 2):  # luma, then chroma at half resolution
            pts = points / scale
            pw, ph = -(-self.width // scale), -(-self.height // scale)
            x1, y1 = (np.floor(pts.min(axis=0))).astype(int)
            x2, y2 = (np.ceil(pts.max(axis=0))).astype(int) + 1
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(pw, x2), min(ph, y2)
            if x2 <= x1 or y2 <= y1:
                return None
            mask = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
            # draw at 1/16 pixel precision; cv2.fillPoly includes the boundary pixels
            shifted = np.round((pts - [x1, y1]) * 16).astype(np.int32)
            cv2.fillPoly(mask, [shifted], 1, lineType=cv2.LINE_8, shift=4)
            rects.append((x1, y1, x2, y2))
            inside.append(mask.astype(bool))
        return _StaticMask((rects[0], rects[1], rects[1]), (inside[0], inside[1], inside[1]))

    def render(self, planes: Sequence[Plane], detections: Detections | None) -> float:
        """Mask into the planes; return the fraction of the frame's area that was masked."""
        masked = 0.0
        for static, style in self._static:
            for plane, rect, inside, fill in zip(planes, static.rects, static.inside, SOLID_YUV):
                self._apply(plane, rect, style, inside, fill)
            masked += float(static.inside[0].sum())
        if detections is not None and len(detections):
            masked += self._render_boxes(planes, detections)
        return min(1.0, masked / (self.width * self.height))

    def _render_boxes(self, planes: Sequence[Plane], detections: Detections) -> float:
        area = 0.0
        for box, class_id in zip(detections.xyxy, detections.class_id):
            look = self.styles.get(TargetClass(int(class_id)))
            if look is None:
                continue
            x1, y1, x2, y2 = self._padded(box, look.padding)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            area += (x2 - x1) * (y2 - y1) * (np.pi / 4 if look.shape is MaskShape.ELLIPSE else 1)
            for index, (plane, fill) in enumerate(zip(planes, SOLID_YUV)):
                s = 1 if index == 0 else 2
                rect = (x1 // s, y1 // s, -(-x2 // s), -(-y2 // s))
                inside = (
                    _ellipse(rect[2] - rect[0], rect[3] - rect[1])
                    if look.shape is MaskShape.ELLIPSE
                    else None
                )
                self._apply(plane, rect, look.style, inside, fill)
        return area

    def _padded(self, box: npt.NDArray[np.float32], padding: float) -> tuple[int, int, int, int]:
        w, h = box[2] - box[0], box[3] - box[1]
        x1 = int(np.floor(max(0.0, box[0] - w * padding)))
        y1 = int(np.floor(max(0.0, box[1] - h * padding)))
        x2 = int(np.ceil(min(float(self.width), box[2] + w * padding)))
        y2 = int(np.ceil(min(float(self.height), box[3] + h * padding)))
        return x1, y1, x2, y2

    def _apply(
        self,
        plane: Plane,
        rect: tuple[int, int, int, int],
        style: MaskStyle,
        inside: npt.NDArray[np.bool_] | None,
        fill: int,
    ) -> None:
        x1, y1, x2, y2 = rect
        view = plane[y1:y2, x1:x2]
        if view.size == 0:
            return
        if style is MaskStyle.SOLID:
            if inside is None:
                view[:] = fill
            else:
                view[inside[: view.shape[0], : view.shape[1]]] = fill
            return
        styled = (
            _pixelate(view, self.strength)
            if style is MaskStyle.PIXELATE
            else _blur(view, self.strength)
        )
        if inside is None:
            view[:] = styled
        else:
            keep = inside[: view.shape[0], : view.shape[1]]
            view[keep] = styled[keep]


def _cells(h: int, w: int, most: int, strength: float) -> tuple[int, int]:
    """How many cells the mask keeps across (width, height): at most `most` on the larger
    side and never cells under 4 pixels, so that no facial feature survives."""
    side = max(h, w)
    across = max(1, min(round(most / max(strength, 0.1)), side // 4))
    scale = across / side
    return max(1, round(w * scale)), max(1, round(h * scale))


def _pixelate(view: Plane, strength: float) -> Plane:
    h, w = view.shape
    small = _shrink(view, _cells(h, w, 6, strength))
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST), np.uint8)


def _blur(view: Plane, strength: float) -> Plane:
    """Shrink, smooth and enlarge: as strong as a huge Gaussian, at a fraction of its cost."""
    h, w = view.shape
    small = cv2.GaussianBlur(_shrink(view, _cells(h, w, 8, strength)), (3, 3), 0)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def _shrink(view: Plane, cells: tuple[int, int]) -> Plane:
    """The mean of the picture in each cell. OpenCV averages by a whole factor about ten
    times faster than by any other, so a large box is first shrunk by the largest whole
    factor that leaves at least two pixels a cell (the few rows and columns that do not
    fit the factor are left out of the means), then to the cells."""
    h, w = view.shape
    factor = min(w // (2 * cells[0]), h // (2 * cells[1]))
    if factor >= SHRINK_FROM:
        part = view[: h // factor * factor, : w // factor * factor]
        view = np.asarray(
            cv2.resize(part, (w // factor, h // factor), interpolation=cv2.INTER_AREA), np.uint8
        )
    return np.asarray(cv2.resize(view, cells, interpolation=cv2.INTER_AREA), np.uint8)


def _ellipse(width: int, height: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((max(1, height), max(1, width)), dtype=np.uint8)
    cv2.ellipse(
        mask, (width // 2, height // 2), (max(1, width // 2), max(1, height // 2)), 0, 0, 360, 1, -1
    )
    return mask.astype(bool)
