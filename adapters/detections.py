"""The one currency for what was found in a frame: `Detections`.

Every detector returns it, the tracker consumes and returns it, and the mask renderer draws
it. It is a frozen bundle of parallel numpy arrays; operations return new objects and never
change their input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt


class TargetClass(IntEnum):
    """What a box holds. The values are stable: they are written into reports."""

    FACE = 0
    PERSON = 1
    PLATE = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> TargetClass:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown target class {text!r} (expected one of: {names})") from None


NO_TRACK = -1


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame, in that frame's pixel coordinates.

    xyxy: (N, 4) float32 corners x1, y1, x2, y2
    score: (N,) float32 confidence in 0..1
    class_id: (N,) int16 `TargetClass` values
    track_id: (N,) int32, NO_TRACK until a tracker assigns one
    """

    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int16]
    track_id: npt.NDArray[np.int32]

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        for name in ("score", "class_id", "track_id"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")

    @classmethod
    def create(
        cls,
        xyxy: npt.ArrayLike,
        score: npt.ArrayLike,
        class_id: TargetClass | npt.ArrayLike,
        track_id: npt.ArrayLike | None = None,
    ) -> Detections:
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(boxes)
        classes = (
            np.full(n, int(class_id), dtype=np.int16)
            if isinstance(class_id, TargetClass)
            else np.asarray(class_id, dtype=np.int16).reshape(n)
        )
        tracks = (
            np.full(n, NO_TRACK, dtype=np.int32)
            if track_id is None
            else np.asarray(track_id, dtype=np.int32).reshape(n)
        )
        return cls(boxes, np.asarray(score, dtype=np.float32).reshape(n), classes, tracks)

    @classmethod
    def empty(cls) -> Detections:
        return cls.create(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.track_id for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select rows, e.g. `dets[dets.score > 0.5]`."""
        return Detections(
            self.xyxy[index].reshape(-1, 4),
            self.score[index].reshape(-1),
            self.class_id[index].reshape(-1),
            self.track_id[index].reshape(-1),
        )

    def of_class(self, target: TargetClass) -> Detections:
        return self[self.class_id == int(target)]

    def scaled(self, sx: float, sy: float) -> Detections:
        """The same boxes in a frame resized by (sx, sy)."""
        factors = np.array([sx, sy, sx, sy], dtype=np.float32)
        return Detections(self.xyxy * factors, self.score, self.class_id, self.track_id)

    def clipped(self, width: int, height: int) -> Detections:
        """Boxes clipped to the frame; boxes left with no area are dropped."""
        boxes = self.xyxy.copy()
        np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
        kept = Detections(boxes, self.score, self.class_id, self.track_id)
        return kept[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def box_iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes, as an (N, M) matrix."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(xyxy: npt.NDArray[np.float32], score: npt.NDArray[np.float32], iou: float) -> list[int]:
    """Greedy non-maximum suppression; returns the kept indices, best first."""
    order = np.argsort(-score)
    keep: list[int] = []
    while len(order):
        best = int(order[0])
        keep.append(best)
        if len(order) == 1:
            break
        overlaps = box_iou(xyxy[best : best + 1], xyxy[order[1:]])[0]
        order = order[1:][overlaps <= iou]
    return keep
