"""Online masking for live streams: the offline linker fed as sightings come, and a causal
masker that holds each frame in a delay buffer before masking it.

Offline, `tracker.Linker` and `tracker.fill` see the whole clip. Live, a frame must be masked
once it leaves the delay buffer. Each detection frame's sightings, and its picture, are
linked once, as they come, and the boxes of the frames about to leave are worked out from
the tracks as they stand (as `fill` would). Frames in the buffer are thus masked with
knowledge of the next `delay` frames: a target first found at frame 40 is masked back to
frame 40 - lead, as long as that frame is still in the buffer. With the pictures, a target
the detector saw once is followed by picture motion, and one entering at an edge is
followed back to where it came in, as offline; one at an edge stays masked until it is
wholly outside.

One difference from offline: the linker cannot know whether a track has ended, so a track
is kept masked past its last sighting for the whole hold time (offline: `tail` frames), or
a target missed by the detector for a while would show until it is found again.

Detection runs elsewhere (a worker shared by every camera, see `daemon.live.detecting`): the
masker hands it each detection frame and takes the result when it is in. A frame leaves only
once every detection frame up to `delay` frames after it is known; while the detector is
behind, the buffer grows, up to a limit at which the masker waits for it.

Track ids are the connection's, kept from one linker to the next, and each segment's
`SegmentTracks` lists the tracks masked in it as a file's manifest does.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from fractions import Fraction
from typing import Any, NamedTuple

import av
import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.video import VideoError, planes
from privmask.daemon.pipeline.detection import FrameDetector
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.motion import Picture
from privmask.daemon.pipeline.reach import span, track_boxes
from privmask.daemon.pipeline.setup import build_renderer, tracker_settings
from privmask.daemon.pipeline.tracker import Linker, Track, TrackerSettings
from privmask.daemon.pipeline.tracks import VELOCITY_POSITIONS, Box
from privmask.rules.plan import RedactionPlan

ROTATE_FRAMES = 250  # a fresh linker, fed the recent window, every so many frames
AHEAD = 8  # frames whose boxes are worked out at once (until the next sighting comes)


class Sighting(NamedTuple):
    """What the detector found in one detection frame, and the frame's picture (motion)."""

    found: Detections
    picture: Picture | None


# hands a detection frame to the detector; the future holds its sighting (boxes in the
# frame's own pixels)
Detect = Callable[[av.VideoFrame], "Future[Sighting]"]


def sight(
    detector: FrameDetector, frame: av.VideoFrame, geometry: FrameGeometry, width: int = 0
) -> Sighting:
    """Detect in one frame and take its picture, before the frame is masked. With `width`
    below the frame's, the detector looks at the frame scaled to it by FFmpeg's scaler (a
    live stream's cost: the close looks for small faces shrink with the square of it);
    boxes come back in the frame's own pixels."""
    picture = Picture.of(frame, geometry)
    if not width or width >= geometry.width:
        return Sighting(detector(frame, geometry), picture)
    small = geometry.scaled_to_width(width)
    scaled = frame.reformat(width=small.width, height=small.height, format="yuv420p")
    found = detector(scaled, small).scaled(
        geometry.width / small.width, geometry.height / small.height
    )
    return Sighting(found.clipped(geometry.width, geometry.height), picture)


def detect_here(detector: FrameDetector, geometry: FrameGeometry, width: int = 0) -> Detect:
    """A `Detect` that runs in the caller's thread (tests, a single stream)."""

    def submit(frame: av.VideoFrame) -> Future[Sighting]:
        future: Future[Sighting] = Future()
        try:
            future.set_result(sight(detector, frame, geometry, width))
        except Exception as exc:  # raised again where the result is taken
            future.set_exception(exc)
        return future

    return submit


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

    Each sighting is linked once, as it comes, by one `Linker` (with the frame's picture,
    so targets are followed by picture motion as offline); boxes are worked out only for
    the frames about to be taken. Memory stays flat: every `ROTATE_FRAMES` the linker is
    replaced by one fed again with the recent window (the sightings that can still affect
    a frame to be taken: the longest gap a track may bridge, plus its tail). A track that
    can take no new sighting then is closed: its boxes from the frame being taken on are
    kept as they are (at a frame edge, until the target is wholly outside: at most
    `max_edge_frames`), and its sightings are not fed again. A track keeps its id as long
    as one of its sightings is still in the window.
    """

    def __init__(self, settings: Mapping[TargetClass, TrackerSettings]) -> None:
        self.settings = online_settings(settings)
        longest = max((s.max_gap + s.tail for s in self.settings.values()), default=0)
        self.history = longest + 1
        self.sightings: dict[int, Detections] = {}  # the window, to feed a new linker
        self._pictures: dict[int, Picture] = {}
        self._linker = Linker(self.settings)
        self._since = 0  # the first frame the linker was fed
        self._tracks: list[Track] | None = None  # None: sightings came since the last look
        self._boxes: dict[int, Detections | None] = {}  # worked out for the next frames
        self._closed: dict[int, list[Detections]] = {}  # boxes of closed tracks, by frame
        self._closed_tracks: dict[int, Track] = {}  # this linker's, by id()
        self._ids: dict[tuple[int, int, bytes], int] = {}  # sighting -> its track's id
        self._last_id = 0

    def add(self, index: int, found: Detections, picture: Picture | None = None) -> None:
        """Record what the detector found in frame `index` (empty detections count too),
        and the frame's picture, where a target may be followed by picture motion.
        Frames come in index order."""
        self.sightings[index] = found
        if picture is not None:
            self._pictures[index] = picture
        self._linker.add(index, found, picture)
        self._tracks = None

    def boxes(self, index: int) -> Detections | None:
        """The boxes to mask in frame `index`, given every sighting recorded so far."""
        cutoff = index - self.history
        for stale in [i for i in self.sightings if i < cutoff]:
            del self.sightings[stale]
            self._pictures.pop(stale, None)
        if self.sightings and max(self.sightings) - self._since >= ROTATE_FRAMES:
            self._rotate(index, cutoff)
        if self._tracks is None or index not in self._boxes:
            self._boxes = self._work_out(index, index + AHEAD - 1)
        for old in [f for f in self._closed if f < index]:
            del self._closed[old]
        found = [*self._closed.pop(index, []), self._boxes.pop(index, None)]
        shown = [f for f in found if f is not None]
        return Detections.merge(shown) if shown else None

    def _current(self) -> list[Track]:
        if self._tracks is None:
            self._tracks = self._linker.tracks()
            self._keep_ids(self._tracks)
        return self._tracks

    def _work_out(self, first: int, last: int) -> dict[int, Detections | None]:
        """Every open track's boxes in frames first..last; a track no later sighting can
        join is closed (its boxes worked out once, to the end)."""
        newest = max(self.sightings, default=first)
        rows: dict[int, list[tuple[Track, Box]]] = {f: [] for f in range(first, last + 1)}
        for track in self._current():
            if id(track) in self._closed_tracks:
                continue
            settings = self.settings[track.target]
            begin, end = span(track, settings)
            if newest - track.frames[-1] > settings.max_gap:
                self._close(track, first, end)
                continue
            if end < first or begin > last:
                continue
            for frame, box in _boxes_between(track, settings, first, last):
                rows[frame].append((track, box))
        return {frame: _detections(found) if found else None for frame, found in rows.items()}

    def _close(self, track: Track, first: int, end: int) -> None:
        """Keep a finished track's boxes from frame `first` to its end; feed its sightings
        to no later linker."""
        self._closed_tracks[id(track)] = track
        for frame, box in _boxes_between(track, self.settings[track.target], first, end):
            self._closed.setdefault(frame, []).append(_detections([(track, box)]))

    def _rotate(self, index: int, cutoff: int) -> None:
        """A fresh linker fed with the window, without the closed tracks' sightings."""
        newest = max(self.sightings)
        self._current()
        self._work_out(index, index)  # closes what is finished
        for track in self._closed_tracks.values():
            for frame, box in zip(track.frames, track.boxes):
                found = self.sightings.get(frame)
                if found is not None:
                    same = (found.class_id == int(track.target)) & (found.xyxy == box).all(axis=1)
                    self.sightings[frame] = found[~same]
        self._closed_tracks = {}
        self._ids = {key: ident for key, ident in self._ids.items() if key[0] >= cutoff}
        self._linker = Linker(self.settings)
        for frame in sorted(self.sightings):
            self._linker.add(frame, self.sightings[frame], self._pictures.get(frame))
        self._since = newest
        self._tracks = None

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


def _boxes_between(
    track: Track, settings: TrackerSettings, first: int, last: int
) -> Iterator[tuple[int, Box]]:
    """The track's boxes in frames first..last, as `fill` gives them. `fill` works out every
    frame from the track's start; here the track is cut to the places a box from `first` on
    depends on: the last one before it, and those its velocity at the end is fitted to."""
    places = track.positions()
    before = [i for i, (frame, _) in enumerate(places) if frame <= first]
    start = min(before[-1], len(places) - VELOCITY_POSITIONS) if before else 0
    if start > 0:
        cut = min(places[start][0], track.frames[-1])  # a track keeps a sighting
        kept = [i for i, frame in enumerate(track.frames) if frame >= cut]
        track = dataclasses.replace(
            track,
            frames=[track.frames[i] for i in kept],
            boxes=[track.boxes[i] for i in kept],
            scores=[track.scores[i] for i in kept],
            trail={f: b for f, b in track.trail.items() if f >= cut},
            _end_velocity=None,
        )
        settings = dataclasses.replace(settings, lead=0)  # before the cut: not wanted
    for frame, box in track_boxes(track, settings):
        if frame > last:
            return
        if frame >= first:
            yield frame, box


def _detections(found: list[tuple[Track, Box]]) -> Detections:
    return Detections.create(
        np.stack([box for _, box in found]),
        [max(track.scores) for track, _ in found],
        [int(track.target) for track, _ in found],
        [track.track_id for track, _ in found],
    )


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
    """Frames in, masked frames out at least `delay` frames later, in order.

    Frame i is handed to `detect` when it arrives (every `every`-th frame), and masked once
    frame i + delay has arrived and every detection up to it is in. While detections are
    pending, the buffer grows (`buffered` may exceed `delay`); at `limit` frames, `push`
    waits for the detector, so a stream whose detector cannot keep up slows down rather
    than hold frames without bound, or leave one unmasked. Detections are never put off
    to keep the frame rate: on the shared car clip, a plate was missed entirely when
    detected every 4th frame instead of every 3rd.
    """

    def __init__(
        self,
        plan: RedactionPlan,
        detect: Detect | None,
        width: int,
        height: int,
        rate: Fraction,
        delay_s: float,
        every: int | None = None,
        wait_s: float = 2.0,
    ) -> None:
        """`every`: detect on every n-th frame (None: the plan's `detect_every`); `wait_s`:
        how far the buffer may grow beyond `delay` while detections are pending."""
        self.plan, self.detect = plan, detect if plan.targets else None
        self.width, self.height = width, height
        fps = float(rate) or 25.0
        self.every = every or plan.detect_every
        self.delay = max(self.every, round(delay_s * fps))
        self.limit = self.delay + max(self.every, round(wait_s * fps))
        geometry = FrameGeometry(width, height)
        self.geometry = geometry
        # the tracker bridges the gaps between detections
        live_plan = dataclasses.replace(plan, detect_every=self.every)
        self.tracker = OnlineTracker(tracker_settings(live_plan, geometry, rate))
        self.renderer = build_renderer(plan, geometry)
        self._buffer: deque[tuple[int, av.VideoFrame]] = deque()
        self._pending: deque[tuple[int, Future[Sighting]]] = deque()
        self._next = 0
        self.detections = 0
        self.max_buffered = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def push(self, frame: av.VideoFrame) -> Iterator[MaskedFrame]:
        """Take a yuv420p frame; yield the frames that leave the buffer, masked, if any.

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
        if self.detect is not None and index % self.every == 0:
            self._pending.append((index, self.detect(frame)))
            self.detections += 1
        self._buffer.append((index, frame))
        yield from self._leave(index, flushing=False)
        self.max_buffered = max(self.max_buffered, len(self._buffer))

    def flush(self) -> Iterator[MaskedFrame]:
        """Mask and yield what the buffer holds (the stream ended: no later sightings)."""
        yield from self._leave(self._next - 1, flushing=True)

    def close(self) -> None:
        """Drop what is held; detections not yet started are cancelled."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._buffer.clear()

    def _leave(self, newest: int, flushing: bool) -> Iterator[MaskedFrame]:
        """The frames whose detections up to `delay` frames after them are all known."""
        while self._buffer:
            oldest = self._buffer[0][0]
            if not flushing and newest - oldest < self.delay:
                return
            wait = flushing or len(self._buffer) > self.limit
            if not self._take_sightings(oldest + self.delay, wait):
                return  # the detector is behind: hold the frame (the buffer grows)
            yield self._emit()

    def _take_sightings(self, upto: int, wait: bool) -> bool:
        """Hand the tracker, in order, every detection that is done (waiting for those up to
        frame `upto` with `wait`); whether all up to `upto` are in. A detection that
        failed raises here: nothing is masked without it."""
        while self._pending:
            index, future = self._pending[0]
            if not future.done() and not (wait and index <= upto):
                break
            found, picture = future.result()
            self.tracker.add(index, found, picture)
            self._pending.popleft()
        return not self._pending or self._pending[0][0] > upto

    def _emit(self) -> MaskedFrame:
        index, frame = self._buffer.popleft()
        boxes: Detections | None = self.tracker.boxes(index)
        self.renderer.render(planes(frame), boxes)
        return MaskedFrame(frame, boxes)
