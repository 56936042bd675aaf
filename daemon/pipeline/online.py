"""Online masking for live streams: the offline tracker over a sliding window, and a
causal masker that holds each frame in a short delay buffer before masking it.

Offline, `tracker.link` and `tracker.fill` see the whole clip. Live, a frame must be masked
once it leaves the delay buffer, so this keeps the sightings of a recent window, relinks
them whenever a new sighting arrives and asks `fill` for the boxes of the frame that is
leaving. Frames in the buffer are thus masked with knowledge of the next `delay` frames:
a target first found at frame 40 is masked back to frame 40 - lead, as long as that frame
is still in the buffer.

One difference from offline: the window cannot know whether a track has ended, so a track
is kept masked past its last sighting for the whole hold time (offline: `tail` frames), or
a target missed by the detector for a while would show until it is found again.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator, Mapping
from fractions import Fraction

import av

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.video import VideoError, planes
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.setup import (
    NamedDetector,
    build_renderer,
    detect_frame,
    tracker_settings,
)
from privmask.daemon.pipeline.tracker import TrackerSettings, fill, link
from privmask.rules.plan import RedactionPlan


def online_settings(
    settings: Mapping[TargetClass, TrackerSettings],
) -> dict[TargetClass, TrackerSettings]:
    """The offline settings with the tail held as long as a track may go unseen."""
    return {
        target: dataclasses.replace(s, tail=max(s.tail, s.max_gap))
        for target, s in settings.items()
    }


class OnlineTracker:
    """Sightings by frame index in, per-frame boxes out, for frames in index order.

    Memory is bounded: sightings older than what can still affect a frame to be masked
    (the longest gap a track may bridge, plus its tail) are dropped as frames are taken.
    """

    def __init__(self, settings: Mapping[TargetClass, TrackerSettings]) -> None:
        self.settings = online_settings(settings)
        longest = max((s.max_gap + s.tail for s in self.settings.values()), default=0)
        self.history = longest + 1
        self.sightings: dict[int, Detections] = {}
        self._filled: dict[int, Detections] | None = None

    def add(self, index: int, found: Detections) -> None:
        """Record what the detector found in frame `index` (empty detections count too)."""
        self.sightings[index] = found
        self._filled = None

    def boxes(self, index: int) -> Detections | None:
        """The boxes to mask in frame `index`, given every sighting recorded so far."""
        cutoff = index - self.history
        stale = [i for i in self.sightings if i < cutoff]
        for i in stale:
            del self.sightings[i]
        if stale:
            self._filled = None
        if self._filled is None:
            tracks = link(self.sightings, self.settings)
            self._filled = fill(tracks, self.settings) if tracks else {}
        return self._filled.get(index)


class CausalMasker:
    """Frames in, masked frames out `delay` frames later, in order; at most `delay` held.

    Frame i is detected on when it arrives (every `detect_every`-th frame), and masked when
    frame i + delay arrives, with every sighting up to then.
    """

    def __init__(
        self,
        plan: RedactionPlan,
        detectors: list[NamedDetector],
        width: int,
        height: int,
        rate: Fraction,
        delay_s: float,
        detect_width: int = 640,
    ) -> None:
        self.plan, self.detectors = plan, detectors
        self.width, self.height = width, height
        fps = float(rate) or 25.0
        self.delay = max(plan.detect_every, round(delay_s * fps))
        geometry = FrameGeometry(width, height)
        self._detect_geometry = geometry.scaled_to_width(detect_width)
        self._scale = (width / self._detect_geometry.width, height / self._detect_geometry.height)
        self.tracker = OnlineTracker(tracker_settings(plan, geometry, rate))
        self.renderer = build_renderer(plan, geometry)
        self._buffer: deque[tuple[int, av.VideoFrame]] = deque()
        self._next = 0
        self.detections = 0
        self.max_buffered = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def push(self, frame: av.VideoFrame) -> Iterator[av.VideoFrame]:
        """Take a yuv420p frame; yield the frame that leaves the buffer, masked, if any.

        A frame of another size than the masker's is refused (VideoError), before it is
        detected on or held: its masks would be drawn where the boxes of another picture
        were. The stream must be opened again with a masker of the new size.
        """
        if (frame.width, frame.height) != (self.width, self.height):
            raise VideoError(
                f"a {frame.width}x{frame.height} frame in a stream masked at "
                f"{self.width}x{self.height}",
                "resolution_change",
            )
        index = self._next
        self._next += 1
        if self.detectors and index % self.plan.detect_every == 0:
            found = detect_frame(frame, self._detect_geometry, self.detectors)
            self.tracker.add(index, found.scaled(*self._scale).clipped(self.width, self.height))
            self.detections += 1
        # the oldest frame leaves before the new one is held: never more than `delay` frames
        while len(self._buffer) >= self.delay:
            yield self._emit()
        self._buffer.append((index, frame))
        self.max_buffered = max(self.max_buffered, len(self._buffer))

    def flush(self) -> Iterator[av.VideoFrame]:
        """Mask and yield what the buffer holds (the stream ended: no later sightings)."""
        while self._buffer:
            yield self._emit()

    def _emit(self) -> av.VideoFrame:
        index, frame = self._buffer.popleft()
        boxes: Detections | None = self.tracker.boxes(index)
        self.renderer.render(planes(frame), boxes)
        return frame
