"""A track (one target across a clip) and the tracker's settings for its class.

A track holds the detector's sightings and, between and around them, the places where
picture motion followed the target while the detector missed it (its trail). Its velocity
at either end is a robust fit over several positions, so one jittery box does not turn an
extrapolated mask around.

A target going behind something (a pillar, a parked car) is boxed by the detector ever
smaller, only the part still in view. Such a sighting is recorded as it was found, and the
place the target is taken to fill there (`kept`: at the track's size, where its motion puts
it) stands for it in every position: its velocity and its mask do not shrink with what the
cover hides, and reach the part about to come out on the other side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import TargetClass

Box = npt.NDArray[np.float32]  # (4,) x1, y1, x2, y2

# positions at an end of a track that its velocity there is fitted to
VELOCITY_POSITIONS = 5
# the index pairs (i < j) of n positions, for the pairwise slopes
_PAIRS = {n: np.triu_indices(n, k=1) for n in range(2, VELOCITY_POSITIONS + 1)}


@dataclass(frozen=True)
class TrackerSettings:
    max_gap: int  # frames a target may go unseen and still be the same track
    lead: int  # frames masked before the first sighting
    tail: int  # frames masked after the last sighting
    frame_size: tuple[int, int] = (0, 0)  # width, height; (0, 0): edges unknown
    max_edge_frames: int = 250  # the most a track at an edge is extended, whatever its speed
    min_iou: float = 0.1
    growth_per_frame: float = 0.04  # extrapolated boxes widen: the target may have turned
    # A track whose every score is below this, whose box never moves and whose picture
    # never changes for `still_frames` or more is dropped as a false detection (0: never).
    drop_still_below: float = 0.0
    still_frames: int = 25


@dataclass
class Track:
    """One target across the clip: its sightings, by frame index, and its trail."""

    track_id: int
    target: TargetClass
    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    trail: dict[int, Box] = field(default_factory=dict)  # followed by picture motion
    # partly hidden sightings, by frame: the box the whole target is taken to fill there
    kept: dict[int, Box] = field(default_factory=dict)
    looks: int = 0  # sightings whose picture was compared with the first one's
    look_change: float = 0.0  # the most the picture of a sighting differed from the first
    # velocity at the end, kept between changes: the linker asks for it at every frame
    _end_velocity: Box | None = field(default=None, repr=False, compare=False)
    # the first frame whose places say how large the whole target is (`predict_whole`)
    _sized_from: int = field(default=0, repr=False, compare=False)

    def add(self, frame: int, box: Box, score: float, kept: Box | None = None) -> None:
        """A sighting; `kept` where it was of a partly hidden target: the whole one's box."""
        self.frames.append(frame)
        self.boxes.append(box)
        self.scores.append(score)
        self.trail.pop(frame, None)
        if kept is not None:
            self.kept[frame] = kept
        elif len(self.frames) > 1 and self.frames[-2] in self.kept:
            # whole again after partly hidden sightings: out in full, or smaller for longer
            # than a cover explains; either way its size is measured afresh from here
            self._sized_from = frame
        self._end_velocity = None

    def measured_at(self) -> int:
        """The last frame the target was sighted whole (not partly hidden) in."""
        return next((f for f in reversed(self.frames) if f not in self.kept), self.frames[0])

    def follow_to(self, frame: int, box: Box) -> None:
        """Record where picture motion found the target in a frame it was not sighted in."""
        self.trail[frame] = box
        self._end_velocity = None

    def forget(self, frames: list[int]) -> None:
        """Drop followed places."""
        for frame in frames:
            del self.trail[frame]
        self._end_velocity = None

    def positions(self) -> list[tuple[int, Box]]:
        """Every known place of the target, sighted or followed, in frame order."""
        return sorted([*self._sighted(), *self.trail.items()], key=lambda p: p[0])

    def latest(self) -> tuple[int, Box]:
        """The newest known place: the last sighting, or where the trail got to after it.
        (Places are followed forward in frame order, so the trail's newest is its last.)"""
        newest = next(reversed(self.trail), -1)
        if newest > self.frames[-1]:
            return newest, self.trail[newest]
        return self.frames[-1], self.kept.get(self.frames[-1], self.boxes[-1])

    def velocity(self, at_start: bool) -> Box:
        """Per-frame change of the box at the track's start or end (zero when seen once).

        The median of the slopes between every pair of the positions nearest that end
        (Theil-Sen): boxes jitter from one detection to the next, and a fit over several
        of them keeps the motion's direction where the last two disagree."""
        if not at_start and self._end_velocity is not None:
            return self._end_velocity
        near = self._near(at_start)
        if len(near) < 2:
            velocity = np.zeros(4, dtype=np.float32)
        else:
            frames = np.array([f for f, _ in near], dtype=np.float32)
            boxes = np.stack([b for _, b in near])
            first, second = _PAIRS[len(near)]
            slopes = (boxes[second] - boxes[first]) / (frames[second] - frames[first])[:, None]
            ranked = np.sort(slopes, axis=0)  # a median of at most ten rows, without overhead
            middle = len(ranked)
            velocity = ((ranked[(middle - 1) // 2] + ranked[middle // 2]) / 2).astype(np.float32)
        if not at_start:
            self._end_velocity = velocity
        return velocity

    def recent_velocity(self, at_start: bool) -> Box:
        """Per-frame change between the two positions nearest the start or end: later than
        the fit where a target speeds up (a car coming towards the camera)."""
        near = self._near(at_start)
        if len(near) < 2:
            return np.zeros(4, dtype=np.float32)
        (f0, b0), (f1, b1) = near[:2] if at_start else near[-2:]
        return ((b1 - b0) / max(1, f1 - f0)).astype(np.float32)

    def anchor(self, at_start: bool) -> Box:
        """The box at the track's start or end as the fitted motion puts it: the median of
        where each nearby position, moved on by the velocity, says it is. One jittery last
        box does not decide where the extrapolated mask starts."""
        near = self._near(at_start)
        end, velocity = near[0 if at_start else -1][0], self.velocity(at_start)
        moved = [box + velocity * (end - frame) for frame, box in near]
        return np.median(np.stack(moved), axis=0).astype(np.float32)

    def _near(self, at_start: bool) -> list[tuple[int, Box]]:
        """The positions nearest one end; at the end without sorting the whole track,
        which the linker asks for at every frame."""
        if at_start:
            return self.positions()[:VELOCITY_POSITIONS]
        n = VELOCITY_POSITIONS
        newest = [(f, self.trail[f]) for f, _ in zip(reversed(self.trail), range(n))]
        places = sorted([*self._sighted(n), *newest], key=lambda p: p[0])
        return places[-n:]

    def _sighted(self, last: int = 0) -> list[tuple[int, Box]]:
        """The sightings' places (the `last` ones; 0: all): a partly hidden one's kept box."""
        frames, boxes = self.frames[-last:], self.boxes[-last:]
        return [(f, self.kept.get(f, b)) for f, b in zip(frames, boxes)]

    def predict(self, frame: int) -> Box:
        last, box = self.latest()
        return (box + self.velocity(at_start=False) * (frame - last)).astype(np.float32)

    def predict_whole(self, frame: int) -> Box:
        """Where the whole target is likely in `frame`: the predicted box's centre, at the
        median size of the places nearest the end, not at the size the velocity of its
        sides gives: a target going behind a cover is boxed ever smaller, and its sides'
        velocity shrinks the prediction with it."""
        predicted = self.predict(frame)
        near = self._near(at_start=False)
        boxes = np.stack([box for f, box in near if f >= self._sized_from] or [near[-1][1]])
        half = np.median(boxes[:, 2:] - boxes[:, :2], axis=0) / 2
        centre = (predicted[:2] + predicted[2:]) / 2
        return np.concatenate([centre - half, centre + half]).astype(np.float32)
