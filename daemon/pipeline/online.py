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

Track ids are the connection's, kept from one relink to the next, and each segment's
`SegmentTracks` lists the tracks masked in it as a file's manifest does.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

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
from privmask.daemon.pipeline.tracker import Track, TrackerSettings, fill, link
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
    The window is linked again after each change, which numbers its tracks afresh; a
    track keeps the id it had as long as one of its sightings is still in the window.
    """

    def __init__(self, settings: Mapping[TargetClass, TrackerSettings]) -> None:
        self.settings = online_settings(settings)
        longest = max((s.max_gap + s.tail for s in self.settings.values()), default=0)
        self.history = longest + 1
        self.sightings: dict[int, Detections] = {}
        self._filled: dict[int, Detections] | None = None
        self._ids: dict[tuple[int, int, bytes], int] = {}  # sighting -> its track's id
        self._last_id = 0

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
            self._ids = {key: ident for key, ident in self._ids.items() if key[0] >= cutoff}
        if self._filled is None:
            tracks = link(self.sightings, self.settings)
            self._keep_ids(tracks)
            self._filled = fill(tracks, self.settings) if tracks else {}
        return self._filled.get(index)

    def _keep_ids(self, tracks: list[Track]) -> None:
        """Give each freshly linked track the id its sightings had; new tracks a new id."""
        taken: set[int] = set()
        for track in tracks:
            keys = [
                (f, int(track.target), box.tobytes()) for f, box in zip(track.frames, track.boxes)
            ]
            known = sorted({self._ids[k] for k in keys if k in self._ids} - taken)
            if known:
                track.track_id = known[0]
            else:
                self._last_id += 1
                track.track_id = self._last_id
            taken.add(track.track_id)
            self._ids.update(dict.fromkeys(keys, track.track_id))


class SegmentTracks:
    """The tracks masked in one segment, as a file's manifest lists them: id, class, and
    the first and last frame masked, counted within the segment. One entry per track,
    so it stays small however long the segment is."""

    def __init__(self) -> None:
        self.frames = 0
        self._spans: dict[int, tuple[int, int, int]] = {}  # id -> class, first, last

    def add(self, boxes: Detections | None) -> None:
        """The boxes masked in the segment's next frame (None: nothing masked)."""
        for track, target in zip(
            (boxes.track_id.tolist() if boxes is not None else []),
            (boxes.class_id.tolist() if boxes is not None else []),
        ):
            first = self._spans[track][1] if track in self._spans else self.frames
            self._spans[track] = (target, first, self.frames)
        self.frames += 1

    def summary(self) -> list[dict[str, Any]]:
        # live masking masks every track: the rule's track selection is for files
        return [
            {
                "id": track,
                "class": TargetClass(target).label,
                "masked_from": first,
                "masked_to": last,
                "masked": True,
            }
            for track, (target, first, last) in sorted(self._spans.items())
        ]


class MaskedFrame(NamedTuple):
    """A frame leaving the delay buffer, masked, and the boxes that were masked in it."""

    frame: av.VideoFrame
    boxes: Detections | None


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

    def push(self, frame: av.VideoFrame) -> Iterator[MaskedFrame]:
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

    def flush(self) -> Iterator[MaskedFrame]:
        """Mask and yield what the buffer holds (the stream ended: no later sightings)."""
        while self._buffer:
            yield self._emit()

    def _emit(self) -> MaskedFrame:
        index, frame = self._buffer.popleft()
        boxes: Detections | None = self.tracker.boxes(index)
        self.renderer.render(planes(frame), boxes)
        return MaskedFrame(frame, boxes)
