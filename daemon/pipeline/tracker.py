"""Offline tracking: link detections into tracks, then fill every frame a target was in.

Detectors run on a strided schedule and miss now and then. Because the whole clip is at
hand, a track is known from its first to its last sighting before any frame is masked, so
its mask can be interpolated across misses, reach back before the first sighting (a face
first found at frame 40 was also there at frame 37) and forward past the last one. That is
what removes the one-frame leaks of frame-by-frame tools.

Given the detection frames' pictures (`motion.Picture`), the linker also follows each
track through the frames the detector missed it in, and back from where a track starts,
by picture motion: a target seen once is still masked where it goes next. And it drops one
kind of false detection, counted in the report: a track that never scored high, whose box
never moved and whose picture never changed for `still_frames` (a face-like pattern on a
wall); a doubtful box that moves, or scores high once, stays masked.

`link` and `fill` are the whole interface for callers without pictures (live masking).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass, box_iou
from privmask.daemon.pipeline.motion import Picture, follow, look
from privmask.daemon.pipeline.reach import fill, span
from privmask.daemon.pipeline.tracks import Box, Track, TrackerSettings

__all__ = ["Dropped", "Linker", "Track", "TrackerSettings", "fill", "link", "span"]

MAX_PICTURES = 32  # detection-frame pictures kept for following back (memory stays flat)
STILL_MOVE = 0.25  # centres within this share of a box size of each other: still
STILL_TRAIL = 0.1  # followed places this close to the sighted box: it stayed put
STILL_LOOK = 3.0  # grey levels (mean, on a thumbnail): a look that changes less is still
SAME_PLACE = 0.3  # IoU with a sighting at which a followed place is that sighting's
MAX_SPEED = 0.05  # of the picture's width per frame: the fastest a target is looked for
MIN_STILL_SIGHTINGS = 5
# A sighting of less than this share of the track's predicted box (at the track's size),
# mostly inside it, is of a target partly hidden: the face going behind the default scene's
# pillar was boxed at 0.59, 0.51 and 0.23 of it in its last three sightings, and at 0.86-1.0
# while wholly in view (a detector's box jitters).
HIDDEN_AREA = 0.65
HIDDEN_INSIDE = 0.5  # the share of such a sighting inside the predicted box


@dataclass(frozen=True)
class Dropped:
    """A track not masked, and why: what the report says of it."""

    target: TargetClass
    reason: str  # "still_low_score": never scored high, never moved, picture never changed
    first_frame: int
    last_frame: int
    sightings: int
    max_score: float
    box: Box  # its median box


def link(
    sightings: Mapping[int, Detections], settings: Mapping[TargetClass, TrackerSettings]
) -> list[Track]:
    """Tracks of every class that has settings, with ids unique across the clip."""
    linker = Linker(settings)
    for frame in sorted(sightings):
        linker.add(frame, sightings[frame])
    return linker.tracks()


class Linker:
    """Sightings in, frame by frame in order; tracks out at the end.

    Association is greedy in frame order: predicted box overlap, or a near centre. With
    pictures, a track the detector missed is followed into the frame by picture motion,
    and a new track is followed back through the pictures of the frames before it.
    """

    def __init__(self, settings: Mapping[TargetClass, TrackerSettings]) -> None:
        self.settings = dict(settings)
        self._all: list[Track] = []  # in creation order; numbered at the end
        self._active: dict[TargetClass, list[Track]] = {t: [] for t in self.settings}
        # pictures are kept as far back as a new track may be followed
        self._reach_back = max((s.max_gap for s in self.settings.values()), default=0)
        # (frame, its picture, what was found in it) of the latest detection frames
        self._pictures: deque[tuple[int, Picture, Detections]] = deque(maxlen=MAX_PICTURES)
        self._first_look: dict[int, npt.NDArray[np.float32]] = {}  # by id() of the track

    def add(self, frame: int, found: Detections, picture: Picture | None = None) -> None:
        """What the detector found in detection frame `frame` (empty counts too), and the
        frame's picture where picture motion may be followed."""
        for target, settings in self.settings.items():
            self._link(frame, found.of_class(target), target, settings, picture)
        if picture is not None:
            self._pictures.append((frame, picture, found))
            while self._pictures and self._pictures[0][0] < frame - self._reach_back:
                self._pictures.popleft()

    def tracks(self) -> list[Track]:
        """The tracks to mask, numbered by class, then by first sighting."""
        kept = [t for t in self._all if self._doubt(t) is None]
        order = {target: i for i, target in enumerate(TargetClass)}
        kept.sort(key=lambda t: order[t.target])  # stable: creation order within a class
        for number, track in enumerate(kept, start=1):
            track.track_id = number
            _drop_still_trails(track)
        return kept

    def dropped(self) -> list[Dropped]:
        """The tracks judged false detections, and why."""
        found = []
        for track in self._all:
            reason = self._doubt(track)
            if reason is not None:
                box = np.median(np.stack(track.boxes), axis=0).astype(np.float32)
                found.append(
                    Dropped(
                        track.target,
                        reason,
                        track.frames[0],
                        track.frames[-1],
                        len(track.frames),
                        max(track.scores),
                        box,
                    )
                )
        return found

    def _link(
        self,
        frame: int,
        dets: Detections,
        target: TargetClass,
        settings: TrackerSettings,
        picture: Picture | None,
    ) -> None:
        active = [t for t in self._active[target] if frame - t.frames[-1] <= settings.max_gap]
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if active and len(dets):
            affinity = _affinity_of(active, frame, dets, settings)
            for ti, di in zip(*np.unravel_index(np.argsort(-affinity, axis=None), affinity.shape)):
                if affinity[ti, di] <= 0:
                    break
                if ti in matched_tracks or di in matched_dets:
                    continue
                track, score, box = active[ti], float(dets.score[di]), dets.xyxy[di]
                kept = _partly_hidden(track, frame, box, settings)
                self._sighted(track, frame, box, score, settings, picture, kept)
                matched_tracks.add(int(ti))
                matched_dets.add(int(di))
        if picture is not None:
            for ti, track in enumerate(active):
                if ti not in matched_tracks:
                    self._follow_on(track, frame, picture, dets)
        for di in range(len(dets)):
            if di not in matched_dets:
                track = Track(len(self._all) + 1, target)
                self._sighted(track, frame, dets.xyxy[di], float(dets.score[di]), settings, picture)
                self._all.append(track)
                active.append(track)
                if picture is not None:
                    self._follow_back(track, frame, picture, settings)
        self._active[target] = active

    def _sighted(
        self,
        track: Track,
        frame: int,
        box: Box,
        score: float,
        settings: TrackerSettings,
        picture: Picture | None,
        kept: Box | None = None,
    ) -> None:
        track.add(frame, box, score, kept)
        if picture is None or not _may_be_dropped(track, settings):
            return  # its looks no longer matter
        # always the first sighting's place: whether the picture there changes, not the box
        seen = look(picture, track.boxes[0])
        if seen is None:
            return
        first = self._first_look.setdefault(id(track), seen)
        track.looks += 1
        track.look_change = max(track.look_change, float(np.abs(seen - first).mean()))

    def _follow_on(self, track: Track, frame: int, picture: Picture, dets: Detections) -> None:
        """Follow a track the detector missed in `frame` from where it was in the detection
        frame before; a track lost once is not looked for again until it is sighted (an old
        template, searched far, finds wrong places)."""
        if not self._pictures:
            return
        previous, source, _ = self._pictures[-1]
        last, box = track.latest()
        if last != previous or last in track.kept:
            return  # a partly hidden target's picture is half the cover, which stays put
        guess = track.predict(frame)
        moved = follow(source, picture, box, guess, _search(track, frame - last, picture))
        if (
            moved is not None
            and _plausible(track, moved, guess, frame - last, at_start=False)
            and not _on_a_sighting(moved, dets)
        ):
            track.follow_to(frame, moved)

    def _follow_back(
        self, track: Track, frame: int, picture: Picture, settings: TrackerSettings
    ) -> None:
        """Follow a new track back through the pictures before it, while it is found."""
        source, box, newest = picture, track.boxes[0], frame
        for earlier, older, found in reversed(self._pictures):  # all before `frame`
            if frame - earlier > settings.max_gap:
                break
            guess = box - track.velocity(at_start=True) * (newest - earlier)
            reach = _search(track, newest - earlier, older)
            moved = follow(source, older, box, guess, reach)
            if (
                moved is None
                or not _plausible(track, moved, guess, newest - earlier, at_start=True)
                or _on_a_sighting(moved, found.of_class(track.target))
            ):
                break
            track.follow_to(earlier, moved)
            source, box, newest = older, moved, earlier

    def _doubt(self, track: Track) -> str | None:
        """Why a track is a false detection, or None (most tracks: mask it)."""
        settings = self.settings[track.target]
        if not settings.drop_still_below or max(track.scores) >= settings.drop_still_below:
            return None
        if track.frames[-1] - track.frames[0] < settings.still_frames:
            return None  # too short to judge: fail closed
        if len(track.frames) < MIN_STILL_SIGHTINGS or track.looks < len(track.frames):
            return None  # some sightings were not looked at
        if track.look_change > STILL_LOOK or not _never_moved(track.boxes):
            return None
        return "still_low_score"


def _may_be_dropped(track: Track, settings: TrackerSettings) -> bool:
    """Whether a track can still turn out a still, doubtful one (so its looks count)."""
    return (
        settings.drop_still_below > 0
        and max(track.scores) < settings.drop_still_below
        and track.look_change <= STILL_LOOK
        and track.looks == len(track.frames) - 1
    )


def _never_moved(boxes: list[Box], share: float = STILL_MOVE) -> bool:
    """Whether the boxes' centres stay within `share` of a box size of each other (the
    10th to the 90th percentile: a detector's box of a doubtful face varies in shape)."""
    stack = np.stack(boxes)
    median = np.median(stack, axis=0)
    size = max(float(median[2] - median[0]), float(median[3] - median[1]), 1.0)
    centres = (stack[:, :2] + stack[:, 2:]) / 2
    low, high = np.percentile(centres, [10, 90], axis=0)
    return bool((high - low).max() <= share * size)


def _drop_still_trails(track: Track) -> None:
    """Forget followed places before the first and after the last sighting that never left
    the sighted box: the plain lead and tail cover a target that stays put, and following
    a still false detection on a still background would only hold its mask longer."""
    first, last = track.frames[0], track.frames[-1]
    for end, box in ((first, track.boxes[0]), (last, track.boxes[-1])):
        outside = [f for f in track.trail if (f < first if end == first else f > last)]
        places = [track.trail[f] for f in outside]
        if places and _never_moved([box, *places], STILL_TRAIL):
            track.forget(outside)


def _partly_hidden(track: Track, frame: int, box: Box, settings: TrackerSettings) -> Box | None:
    """The box of the whole target where `box` is a sighting of it partly hidden (much
    smaller than the track's predicted box, and mostly inside it): the two united, so that
    the track keeps its size and motion while a cover hides some of it; else None.
    Only for as long as a track may go unseen after it was last sighted whole: a target
    that stays smaller is smaller."""
    if frame - track.measured_at() > settings.max_gap:
        return None
    predicted = track.predict_whole(frame)
    area = _area(box)
    if area >= HIDDEN_AREA * _area(predicted):
        return None
    inside = np.concatenate(
        [np.maximum(box[:2], predicted[:2]), np.minimum(box[2:], predicted[2:])]
    )
    if _area(inside) < HIDDEN_INSIDE * area:
        return None
    whole = [np.minimum(box[:2], predicted[:2]), np.maximum(box[2:], predicted[2:])]
    return np.concatenate(whole).astype(np.float32)


def _area(box: Box) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _plausible(track: Track, moved: Box, guess: Box, frames: int, at_start: bool) -> bool:
    """Whether a followed place agrees with the track's motion: where three places or more
    give a velocity, no further from the predicted place, on either axis, than half the
    box's side there plus half the way predicted (a wrong match on the car clip was 0.74
    boxes aside; one on a tall person, three widths)."""
    if len(track.frames) + len(track.trail) < 3:
        return True
    velocity = track.velocity(at_start)
    sides = moved[2:] - moved[:2]
    off = np.abs((moved[:2] + moved[2:]) / 2 - (guess[:2] + guess[2:]) / 2)
    allowed = 0.5 * sides + 0.5 * np.abs((velocity[:2] + velocity[2:]) / 2) * frames
    return bool(np.all(off <= allowed))


def _on_a_sighting(moved: Box, dets: Detections) -> bool:
    """Whether a followed place is where the detector saw a target of the class in that
    frame: another target (the follower jumped to it), or this one, which association then
    did not take: either way, not a place to follow it to."""
    return bool(len(dets)) and bool((box_iou(moved[None], dets.xyxy) >= SAME_PLACE).any())


def _search(track: Track, frames: int, picture: Picture) -> float:
    """How far from its predicted place a followed target may be found, in clip pixels:
    a box size or so, twice that while its speed is unknown, and never further than a
    target crosses the picture in that time (MAX_SPEED)."""
    box = track.boxes[-1]
    size = float(max(box[2] - box[0], box[3] - box[1]))
    known = len(track.frames) + len(track.trail) >= 2
    fastest = MAX_SPEED * picture.grey.shape[1] / picture.sx * frames
    return min(fastest, size * (1.0 if known else 2.0) + 2.0 * frames)


def _affinity_of(
    active: list[Track], frame: int, dets: Detections, settings: TrackerSettings
) -> npt.NDArray[np.float32]:
    predicted = np.stack([t.predict(frame) for t in active])
    # how far a centre may stray, in box sizes: more for young tracks (speed unknown)
    reach = np.array(
        [
            min(2.5, 0.75 + (0.8 if len(t.frames) < 2 else 0.25) * (frame - t.latest()[0]))
            for t in active
        ]
    )
    return _affinity(predicted, dets.xyxy, settings.min_iou, reach)


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
