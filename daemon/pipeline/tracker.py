"""Offline tracking: link detections into tracks, then fill every frame a target was in.

Detectors run on a strided schedule and miss now and then. Because the whole clip is at
hand, a track is known from its first to its last sighting before any frame is masked, so
its mask can be interpolated across misses, reach back before the first sighting (a face
first found at frame 40 was also there at frame 37) and forward past the last one. That is
what removes the one-frame leaks of frame-by-frame tools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass, box_iou

Box = npt.NDArray[np.float32]  # (4,) x1, y1, x2, y2


@dataclass
class Track:
    """One target across the clip: its sightings, by frame index."""

    track_id: int
    target: TargetClass
    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def add(self, frame: int, box: Box, score: float) -> None:
        self.frames.append(frame)
        self.boxes.append(box)
        self.scores.append(score)

    def velocity(self, at_start: bool) -> Box:
        """Per-frame change of the box at the track's start or end (zero with one sighting)."""
        if len(self.frames) < 2:
            return np.zeros(4, dtype=np.float32)
        (f0, b0), (f1, b1) = (
            ((self.frames[0], self.boxes[0]), (self.frames[1], self.boxes[1]))
            if at_start
            else ((self.frames[-2], self.boxes[-2]), (self.frames[-1], self.boxes[-1]))
        )
        return ((b1 - b0) / max(1, f1 - f0)).astype(np.float32)

    def predict(self, frame: int) -> Box:
        return self.boxes[-1] + self.velocity(at_start=False) * (frame - self.frames[-1])

    def lead(self, settings: TrackerSettings) -> int:
        """Frames masked before the first sighting: until it came in, if it came in at an edge."""
        return _reach(self.boxes[0], -self.velocity(at_start=True), settings, settings.lead)

    def tail(self, settings: TrackerSettings) -> int:
        """Frames masked after the last sighting: until it has left, if it left at an edge."""
        return _reach(self.boxes[-1], self.velocity(at_start=False), settings, settings.tail)


@dataclass(frozen=True)
class TrackerSettings:
    max_gap: int  # frames a target may go unseen and still be the same track
    lead: int  # frames masked before the first sighting
    tail: int  # frames masked after the last sighting
    frame_size: tuple[int, int] = (0, 0)  # width, height; (0, 0): edges unknown
    max_edge_frames: int = 250  # the most a track at an edge is extended, whatever its speed
    min_iou: float = 0.1
    growth_per_frame: float = 0.04  # extrapolated boxes widen: the target may have turned


def link(
    sightings: Mapping[int, Detections], settings: Mapping[TargetClass, TrackerSettings]
) -> list[Track]:
    """Tracks of every class that has settings, with ids unique across the clip."""
    tracks: list[Track] = []
    for target in TargetClass:
        if target in settings:
            tracks += _link_class(sightings, target, settings[target], first_id=len(tracks) + 1)
    return tracks


def _link_class(
    sightings: Mapping[int, Detections],
    target: TargetClass,
    settings: TrackerSettings,
    first_id: int,
) -> list[Track]:
    """Greedy association in frame order: predicted box overlap, or a near centre."""
    tracks: list[Track] = []
    active: list[Track] = []
    for frame in sorted(sightings):
        dets = sightings[frame].of_class(target)
        active = [t for t in active if frame - t.frames[-1] <= settings.max_gap]
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if active and len(dets):
            predicted = np.stack([t.predict(frame) for t in active])
            # how far a centre may stray, in box sizes: more for young tracks (speed unknown)
            reach = np.array(
                [
                    min(2.5, 0.75 + (0.8 if len(t.frames) < 2 else 0.25) * (frame - t.frames[-1]))
                    for t in active
                ]
            )
            affinity = _affinity(predicted, dets.xyxy, settings.min_iou, reach)
            for ti, di in zip(*np.unravel_index(np.argsort(-affinity, axis=None), affinity.shape)):
                if affinity[ti, di] <= 0:
                    break
                if ti in matched_tracks or di in matched_dets:
                    continue
                active[ti].add(frame, dets.xyxy[di], float(dets.score[di]))
                matched_tracks.add(int(ti))
                matched_dets.add(int(di))
        for di in range(len(dets)):
            if di not in matched_dets:
                track = Track(first_id + len(tracks), target)
                track.add(frame, dets.xyxy[di], float(dets.score[di]))
                tracks.append(track)
                active.append(track)
    return tracks


def _reach(box: Box, velocity: Box, settings: TrackerSettings, default: int) -> int:
    """How far to extend a track from `box`, moving by `velocity` per frame.

    Detectors find a target only once enough of it is in the picture, so a track that starts
    (or ends) at a frame edge is extended until the target is wholly outside the frame.
    """
    width, height = settings.frame_size
    if not width:
        return default
    margin = max(4.0, 0.01 * max(width, height))
    x1, y1, x2, y2 = (float(v) for v in box)
    vx1, vy1, vx2, vy2 = (float(v) for v in velocity)
    edges = [
        (x1 <= margin, x2, -vx2),  # at the left edge: frames until its right side passes 0
        (y1 <= margin, y2, -vy2),
        (x2 >= width - margin, width - x1, vx1),
        (y2 >= height - margin, height - y1, vy1),
    ]
    touching = [(extent, speed) for at_edge, extent, speed in edges if at_edge]
    if not touching:
        return default
    leaving = [extent / speed for extent, speed in touching if speed > 0.05]
    frames = min(leaving) + 2 if leaving else settings.max_gap  # unknown speed: the hold time
    return max(default, min(settings.max_edge_frames, math.ceil(frames)))


def _affinity(
    predicted: Box, boxes: Box, min_iou: float, reach: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """IoU where boxes overlap enough; otherwise a small score for a close centre.

    Small, fast targets seen on every other frame may not overlap their prediction at all,
    so a centre within `reach` box sizes of the prediction also counts.
    """
    iou = box_iou(predicted, boxes)
    centre_p = (predicted[:, :2] + predicted[:, 2:]) / 2
    centre_d = (boxes[:, :2] + boxes[:, 2:]) / 2
    size_p = np.maximum(predicted[:, 2] - predicted[:, 0], predicted[:, 3] - predicted[:, 1])
    size_d = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    distance = np.linalg.norm(centre_p[:, None] - centre_d[None], axis=2)
    scale = np.maximum(size_p[:, None], size_d[None])
    ratio = np.minimum(size_p[:, None], size_d[None]) / np.maximum(scale, 1e-6)
    limit = reach[:, None] * scale
    near = (distance < limit) & (ratio > 0.5)
    fallback = np.where(near, 0.05 * (1 - distance / np.maximum(limit, 1e-6)), 0.0)
    return np.where(iou >= min_iou, iou, fallback).astype(np.float32)


def fill(
    tracks: list[Track], settings: Mapping[TargetClass, TrackerSettings]
) -> dict[int, Detections]:
    """Per-frame boxes of every track: interpolated between sightings, extended at both ends."""
    per_frame: dict[int, list[tuple[Box, float, int, int]]] = {}
    for track in tracks:
        for frame, box in _track_boxes(track, settings[track.target]):
            score = max(track.scores)
            per_frame.setdefault(frame, []).append((box, score, int(track.target), track.track_id))
    return {
        frame: Detections.create(
            np.stack([b for b, *_ in rows]),
            [s for _, s, _, _ in rows],
            [c for *_, c, _ in rows],
            [t for *_, t in rows],
        )
        for frame, rows in per_frame.items()
    }


def _track_boxes(track: Track, settings: TrackerSettings):  # type: ignore[no-untyped-def]
    frames, boxes = track.frames, track.boxes
    first, last = frames[0], frames[-1]
    for frame in range(max(0, first - track.lead(settings)), first):
        yield frame, _extrapolate(boxes[0], track.velocity(True), frame - first, settings)
    for (f0, b0), (f1, b1) in zip(zip(frames, boxes), zip(frames[1:], boxes[1:])):
        for frame in range(f0, f1):
            between = b0 + (b1 - b0) * ((frame - f0) / (f1 - f0))
            # widen with the distance to the nearest sighting: motion is not quite linear
            yield frame, _widen(between, min(frame - f0, f1 - frame), settings)
    yield last, boxes[-1]
    for frame in range(last + 1, last + track.tail(settings) + 1):  # past the end: unused
        yield frame, _extrapolate(boxes[-1], track.velocity(False), frame - last, settings)


def _extrapolate(box: Box, velocity: Box, dt: int, settings: TrackerSettings) -> Box:
    """Where the box is likely `dt` frames away, united with where it was, widened."""
    return _widen(_union(box, box + velocity * dt), abs(dt), settings)


def _widen(box: Box, frames_away: int, settings: TrackerSettings) -> Box:
    grow = min(0.5, settings.growth_per_frame * frames_away) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    return box + np.array([-w, -h, w, h], dtype=np.float32) * grow


def _union(a: Box, b: Box) -> Box:
    return np.array(
        [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])], np.float32
    )
