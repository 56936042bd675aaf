"""Clips whose picture size changes part way: a camera switched between its streams, or
recorder exports joined together (MPEG-TS parts, Motion JPEG whose every frame is a picture
of its own).

Each part is detected on and masked at its own size. Boxes and fixed regions are kept in the
clip's geometry (the probed one, which is also the output's) and scaled to each part; the
output fits every part into that size, unstretched (`transcode.Transcoder`). Pass two must
meet every frame at the size pass one detected on it at: `PartSizes` remembers what pass one
saw and refuses a frame of another size, rather than draw boxes in the wrong place.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import av

from privmask.adapters.detections import Detections
from privmask.adapters.video import VideoError, check_size, planes
from privmask.daemon.pipeline.detection import FrameDetector
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.masking import MaskRenderer
from privmask.daemon.pipeline.setup import build_renderer
from privmask.rules.plan import RedactionPlan

# renderers kept for the latest sizes: a clip that changes size on every frame (Motion JPEG
# can) must not hold a renderer, and its rasterised regions, per size it ever showed
RENDERERS_KEPT = 4


class PartSizes:
    """The picture size of each run of frames pass one decoded, by first frame index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._starts: list[int] = []
        self._sizes: list[tuple[int, int]] = []

    def record(self, index: int, width: int, height: int) -> bool:
        """Note the size of frame `index` (frames in order); True where a new part begins
        after another one. A size no camera makes fails the job here."""
        if self._sizes and self._sizes[-1] == (width, height):
            return False
        check_size(self.path, width, height, f"frame {index}: ")
        self._starts.append(index)
        self._sizes.append((width, height))
        return len(self._sizes) > 1

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Each part's (width, height), in order."""
        return list(self._sizes)

    def check(self, index: int, width: int, height: int) -> None:
        """Refuse frame `index` if pass one saw it at another size: its boxes were found in
        a picture that is not the one about to be masked."""
        if not self._sizes:
            raise VideoError(
                f"{self.path}: frame {index} was never detected on", "resolution_change"
            )
        seen_w, seen_h = self._sizes[max(0, bisect_right(self._starts, index) - 1)]
        if (width, height) != (seen_w, seen_h):
            raise VideoError(
                f"{self.path}: frame {index} is {width}x{height}, but was {seen_w}x{seen_h} "
                "when it was detected on (the file changed while it was redacted?)",
                "resolution_change",
            )


def detect_part(
    frame: av.VideoFrame, geometry: FrameGeometry, detector: FrameDetector
) -> Detections:
    """Detect in `frame` at its own size; boxes come back in the clip's `geometry`."""
    own = geometry.resized(frame.width, frame.height)
    found = detector(frame, own)
    if own == geometry:
        return found
    return found.scaled(*own.scale_to(geometry)).clipped(geometry.width, geometry.height)


class PartMasker:
    """Masks frames of any size, given boxes in the clip's geometry, in place."""

    def __init__(self, plan: RedactionPlan, geometry: FrameGeometry, path: Path) -> None:
        self.plan, self.geometry, self.path = plan, geometry, path
        # built now, so that a plan that cannot run on this clip fails before any work
        self._renderers = {(geometry.width, geometry.height): build_renderer(plan, geometry)}

    def render(self, index: int, frame: av.VideoFrame, boxes: Detections | None) -> float:
        """Mask frame `index`; return the fraction of its area that was masked."""
        size = (frame.width, frame.height)
        renderer = self._renderer(index, size)
        if boxes is not None and size != (self.geometry.width, self.geometry.height):
            part = self.geometry.resized(*size)
            boxes = boxes.scaled(*self.geometry.scale_to(part)).clipped(*size)
        return renderer.render(planes(frame), boxes)

    def _renderer(self, index: int, size: tuple[int, int]) -> MaskRenderer:
        renderer = self._renderers.pop(size, None)
        if renderer is None:
            check_size(self.path, *size, f"frame {index}: ")
            part = self.geometry.resized(*size)
            renderer = build_renderer(self.plan, part, picture=self.geometry)
            if len(self._renderers) >= RENDERERS_KEPT:
                del self._renderers[next(iter(self._renderers))]  # the least recently used
        self._renderers[size] = renderer  # last in the dict: the most recently used
        return renderer
