"""How far each track's mask reaches: every frame a target was in, and its box there.

Between two known places (sightings, or places picture motion followed it to) the box is
interpolated, spans a little of the step before and after (a car coming closer speeds up
between sightings), and widens with the distance to the nearer place. Before the first and
after the last place, the box moves on with the track's velocity, fitted over several
places and also taken from the latest step alone, from 0.7 to 1.3 times as far, and widens
with each frame (the target may have turned or sped up), for `lead` and `tail` frames, or,
at a frame edge, until the target is wholly outside the picture.

A target counts as at an edge when its box touches it, or when its velocity takes the box
to it within the time a track may go unseen: a detector loses a person some way before
the last of them has left (the legs at the right edge of the shared one-by-one clip), and
finds one entering only once enough of them is in (head and back at its bottom edge).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.tracks import Box, Track, TrackerSettings

MIN_SPEED = 0.05  # pixels per frame: slower than this is not going anywhere
SPEED_DOUBT = 0.3  # an extrapolated box spans its place at 0.7 to 1.3 times the velocity
STEP_DOUBT = 0.15  # an interpolated box spans its place 15 % of the step early to late


def lead(track: Track, settings: TrackerSettings) -> int:
    """Frames masked before the first known place: until it came in, at an edge."""
    first = track.positions()[0][1]
    return _reach(first, -track.velocity(at_start=True), settings, settings.lead)


def tail(track: Track, settings: TrackerSettings) -> int:
    """Frames masked after the last known place: until it has left, at an edge."""
    last = track.positions()[-1][1]
    return _reach(last, track.velocity(at_start=False), settings, settings.tail)


def span(track: Track, settings: TrackerSettings) -> tuple[int, int]:
    """The first and last frame the track is masked in (the last may lie past the clip)."""
    places = track.positions()
    return max(0, places[0][0] - lead(track, settings)), places[-1][0] + tail(track, settings)


def _reach(box: Box, velocity: Box, settings: TrackerSettings, default: int) -> int:
    """How far to extend a track from `box`, moving by `velocity` per frame."""
    width, height = settings.frame_size
    if not width:
        return default
    margin = max(4.0, 0.01 * max(width, height))
    x1, y1, x2, y2 = (float(v) for v in box)
    vx1, vy1, vx2, vy2 = (float(v) for v in velocity)
    # per edge: how far the box's near side is from it, how fast that side goes there,
    # how much of the box is still inside, and how fast its far side follows
    edges = [
        (x1, -vx1, x2, -vx2),  # left
        (y1, -vy1, y2, -vy2),  # top
        (width - x2, vx2, width - x1, vx1),  # right
        (height - y2, vy2, height - y1, vy1),  # bottom
    ]
    frames: list[float] = []
    for gap, closing, inside, following in edges:
        heading = closing > MIN_SPEED and gap / closing <= settings.max_gap
        if gap > margin and not heading:
            continue
        # unknown speed out: hold it as long as a track may go unseen
        frames.append(inside / following + 2 if following > MIN_SPEED else settings.max_gap)
    if not frames:
        return default
    return max(default, min(settings.max_edge_frames, math.ceil(min(frames))))


def fill(
    tracks: list[Track], settings: Mapping[TargetClass, TrackerSettings]
) -> dict[int, Detections]:
    """Per-frame boxes of every track: interpolated between places, extended at both ends."""
    per_frame: dict[int, list[tuple[Box, float, int, int]]] = {}
    for track in tracks:
        score = max(track.scores)
        for frame, box in track_boxes(track, settings[track.target]):
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


def track_boxes(track: Track, settings: TrackerSettings) -> Iterator[tuple[int, Box]]:
    """(frame, box) for every frame the track is masked in, in frame order."""
    places = track.positions()
    sighted = set(track.frames)
    (first, first_box), (last, last_box) = places[0], places[-1]
    start = (track.velocity(at_start=True), track.recent_velocity(at_start=True))
    start_box = track.anchor(at_start=True)
    for frame in range(max(0, first - lead(track, settings)), first):
        yield frame, _extrapolate(first_box, start_box, start, frame - first, settings)
    for (f0, b0), (f1, b1) in zip(places, places[1:]):
        for frame in range(f0, f1):
            # where in the step it is: the target may be a little ahead or behind the linear
            # place (a car coming closer speeds up between sightings)
            t = (frame - f0) / (f1 - f0)
            early, late = max(0.0, t - STEP_DOUBT), min(1.0, t + STEP_DOUBT)
            between = _hull([b0 + (b1 - b0) * early, b0 + (b1 - b0) * late])
            # widen with the distance to the nearer sighting: a followed place is a guess
            away = min(_from_sighting(frame, f0, sighted), _from_sighting(f1, frame, sighted))
            yield frame, _widen(between, away, settings)
    yield last, _widen(last_box, _from_sighting(last, last, sighted), settings)
    end = (track.velocity(at_start=False), track.recent_velocity(at_start=False))
    end_box = track.anchor(at_start=False)
    for frame in range(last + 1, last + tail(track, settings) + 1):  # past the end: unused
        yield frame, _extrapolate(last_box, end_box, end, frame - last, settings)


def _from_sighting(frame: int, place: int, sighted: set[int]) -> int:
    """Frames from `frame` to the place `place`, two more where it was followed rather than
    sighted: picture motion found the target there, but its box was not measured."""
    distance = abs(frame - place)
    return distance if place in sighted else distance + 2


def _extrapolate(
    box: Box, anchor: Box, velocities: tuple[Box, Box], dt: int, settings: TrackerSettings
) -> Box:
    """Where the target is likely `dt` frames from the end `box` (fitted there: `anchor`):
    from 0.7 to 1.3 times the way of the velocity fitted over several places from the fitted
    end, and of the latest step from the end box itself (where a target speeds up, a car
    coming towards the camera, the fit lags), united with the end box for the first frames
    (it may have stopped), widened."""
    fitted, latest = velocities
    places = [
        start + velocity * dt * factor
        for start, velocity in ((anchor, fitted), (box, latest))
        for factor in (1 - SPEED_DOUBT, 1 + SPEED_DOUBT)
    ]
    if abs(dt) <= max(settings.lead, settings.tail):
        places.append(box)
    return _widen(_hull(places), abs(dt), settings)


def _hull(boxes: list[Box]) -> Box:
    """The smallest box holding every box."""
    stack = np.stack(boxes)
    return np.concatenate([stack[:, :2].min(axis=0), stack[:, 2:].max(axis=0)]).astype(np.float32)


def _widen(box: Box, frames_away: int, settings: TrackerSettings) -> Box:
    grow = min(0.5, settings.growth_per_frame * frames_away) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    return (box + np.array([-w, -h, w, h], dtype=np.float32) * grow).astype(np.float32)
