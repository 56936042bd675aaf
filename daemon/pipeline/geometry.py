"""Frame geometry: the picture as stored (what the decoder gives) and as the viewer sees it.

Phones and some cameras store frames sideways and ask players to turn them. Detectors must
see people upright, while masks are drawn into the stored frame, so boxes found in the
shown picture are mapped back here. Live streams and detection on downscaled frames use the
same type: it holds nothing about a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections
from privmask.adapters.video import VideoInfo


@dataclass(frozen=True)
class FrameGeometry:
    width: int  # stored frame, pixels
    height: int
    turns: int = 0  # quarter turns counter-clockwise from stored frame to shown picture

    @classmethod
    def of(cls, info: VideoInfo) -> FrameGeometry:
        return cls(info.width, info.height, info.turns)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the picture as the viewer sees it."""
        return (self.height, self.width) if self.turns % 2 else (self.width, self.height)

    def resized(self, width: int, height: int) -> FrameGeometry:
        """The same picture stored at another size (a part of a clip whose size changes)."""
        return FrameGeometry(width, height, self.turns)

    def scale_to(self, other: FrameGeometry) -> tuple[float, float]:
        """Factors (x, y) that take stored-frame points of this geometry into `other`'s."""
        return other.width / self.width, other.height / self.height

    def scaled_to_width(self, width: int) -> FrameGeometry:
        """The same picture at most `width` pixels wide (never enlarged), even-sized."""
        scale = min(1.0, width / self.width)
        return FrameGeometry(
            max(2, round(self.width * scale / 2) * 2),
            max(2, round(self.height * scale / 2) * 2),
            self.turns,
        )

    def to_stored(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Points of the shown picture, in the stored frame. One turn (np.rot90) shows
        stored (x, y) at (y, W - x)."""
        points = np.asarray(points, dtype=np.float64)
        for step in range(self.turns):
            # undo the last turn first; before it, the image had the other orientation
            stored_width = self.width if (self.turns - 1 - step) % 2 == 0 else self.height
            points = np.stack([stored_width - points[:, 1], points[:, 0]], axis=1)
        return points

    def boxes_to_stored(self, dets: Detections) -> Detections:
        """Boxes found in the shown picture, in stored-frame coordinates."""
        if not self.turns:
            return dets
        corners = self.to_stored(dets.xyxy.reshape(-1, 2)).reshape(-1, 4)
        low, high = corners[:, :2], corners[:, 2:]
        boxes = np.concatenate([np.minimum(low, high), np.maximum(low, high)], axis=1)
        return Detections(boxes.astype(np.float32), dets.score, dets.class_id, dets.track_id)
