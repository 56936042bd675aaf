"""How far each track's mask reaches: every frame a target was in, and its box there.

Between two known places (sightings, or places picture motion followed it to) the box is
interpolated, spans a little of the step before and after (a car coming closer speeds up
between sightings), and widens with the distance to the nearer place. Before the first and
after the last place, the box moves on with the track's velocity, fitted over several
places and also taken from the latest step alone, from 0.7 to 1.3 times as far, and widens
with each frame by a share of the target's size (it may have turned or sped up), for `lead`
and `tail` frames, or, at a frame edge, until the target, moved on so, is wholly outside
the picture. Its centre moves with the velocity and its size changes with its sides', but
grows to at most `MAX_GROWTH` times the track's largest place: a box that widened with a
stride, grown on, would cover the whole picture and never be wholly outside.

A target counts as at an edge when its box touches it, or when its velocity takes the box
to it within the time a track may go unseen: a detector loses a person some way before
the last of them has left (the legs at the right edge of the shared one-by-one clip), and
finds one entering only once enough of them is in (head and back at its bottom edge).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.tracks import Box, Track, TrackerSettings

MIN_SPEED = 0.05  # pixels per frame: slower than this is not going anywhere
SPEED_DOUBT = 0.3  # an extrapolated box spans its place at 0.7 to 1.3 times the velocity
STEP_DOUBT = 0.15  # an interpolated box spans its place 15 % of the step early to late
# An extrapolated box grows with its sides' velocities up to this many times the track's
# largest place: a person starting to walk is boxed wider with each stride (the one-by-one
# clip's, 135 to 243 px in three sightings), and grown on unbounded, that box covered the
# whole picture seconds after they had left it.
MAX_GROWTH = 1.5


def lead(track: Track, settings: TrackerSettings) -> int:
    """Frames masked before the first known place: until it came in, at an edge."""
    first = track.positions()[0][1]
    velocity = -track.velocity(at_start=True)
    return _reach(first, velocity, settings, settings.lead, largest(track))


def tail(track: Track, settings: TrackerSettings) -> int:
    """Frames masked after the last known place: until it has left, at an edge."""
    last = track.positions()[-1][1]
    velocity = track.velocity(at_start=False)
    return _reach(last, velocity, settings, settings.tail, largest(track))


def span(track: Track, settings: TrackerSettings) -> tuple[int, int]:
    """The first and last frame the track is masked in (the last may lie past the clip)."""
    places = track.positions()
    return max(0, places[0][0] - lead(track, settings)), places[-1][0] + tail(track, settings)


def largest(track: Track) -> npt.NDArray[np.float32]:
    """The most an extrapolated box may measure (width, height): `MAX_GROWTH` times the
    largest place of the track on each axis."""
    boxes = np.stack([*track.boxes, *track.kept.values(), *track.trail.values()])
    return (MAX_GROWTH * (boxes[:, 2:] - boxes[:, :2]).max(axis=0)).astype(np.float32)


def _reach(
    box: Box, velocity: Box, settings: TrackerSettings, default: int, limit: npt.NDArray[np.float32]
) -> int:
    """How far to extend a track from `box`, moving by `velocity` per frame (its size
    bounded by `limit`, as `_moved` moves it)."""
    width, height = settings.frame_size
    if not width:
        return default
    margin = max(4.0, 0.01 * max(width, height))
    x1, y1, x2, y2 = (float(v) for v in box)
    vx1, vy1, vx2, vy2 = (float(v) for v in velocity)
    # where the box is on each of the next frames; per edge: how far its near side is from
    # it and how fast that side goes there, how fast its centre follows, and when the box
    # is wholly past it
    steps = np.arange(1, settings.max_edge_frames + 1, dtype=np.float32)
    moved = _moved(box, velocity, steps, limit)
    edges = [
        (x1, -vx1, -(vx1 + vx2) / 2, moved[:, 2] <= 0),  # left
        (y1, -vy1, -(vy1 + vy2) / 2, moved[:, 3] <= 0),  # top
        (width - x2, vx2, (vx1 + vx2) / 2, moved[:, 0] >= width),  # right
        (height - y2, vy2, (vy1 + vy2) / 2, moved[:, 1] >= height),  # bottom
    ]
    frames: list[int] = []
    for gap, closing, following, out in edges:
        heading = closing > MIN_SPEED and gap / closing <= settings.max_gap
        if gap > margin and not heading:
            continue
        if following <= MIN_SPEED:  # unknown speed out: hold it as long as a track may go unseen
            frames.append(settings.max_gap)
        elif out.any():
            frames.append(int(np.argmax(out)) + 1 + 2)
        else:
            frames.append(settings.max_edge_frames)
    if not frames:
        return default
    return max(default, min(settings.max_edge_frames, min(frames)))


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
    limit = largest(track)
    start = (track.velocity(at_start=True), track.recent_velocity(at_start=True))
    start_box = track.anchor(at_start=True)
    for frame in range(max(0, first - lead(track, settings)), first):
        yield frame, _extrapolate(first_box, start_box, start, frame - first, settings, limit)
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
        yield frame, _extrapolate(last_box, end_box, end, frame - last, settings, limit)


def _from_sighting(frame: int, place: int, sighted: set[int]) -> int:
    """Frames from `frame` to the place `place`, two more where it was followed rather than
    sighted: picture motion found the target there, but its box was not measured."""
    distance = abs(frame - place)
    return distance if place in sighted else distance + 2


def _extrapolate(
    box: Box,
    anchor: Box,
    velocities: tuple[Box, Box],
    dt: int,
    settings: TrackerSettings,
    limit: npt.NDArray[np.float32],
) -> Box:
    """Where the target is likely `dt` frames from the end `box` (fitted there: `anchor`):
    from 0.7 to 1.3 times the way of the velocity fitted over several places from the fitted
    end, and of the latest step from the end box itself (where a target speeds up, a car
    coming towards the camera, the fit lags), united with the end box for the first frames
    (it may have stopped), widened. Each place's size is bounded by `limit` (`_moved`)."""
    fitted, latest = velocities
    steps = np.array([dt * (1 - SPEED_DOUBT), dt, dt * (1 + SPEED_DOUBT)], dtype=np.float32)
    places = [
        place
        for start, velocity in ((anchor, fitted), (box, latest))
        for place in _moved(start, velocity, steps, limit)
    ]
    if abs(dt) <= max(settings.lead, settings.tail):
        places.append(box)
    # widened by the target's size, not the hull's: the hull spans the doubt about its
    # speed already, and widened with it, its trailing side fell behind the target's
    sizes = np.stack(places)
    return _widen(_hull(places), abs(dt), settings, (sizes[:, 2:] - sizes[:, :2]).max(axis=0))


def _moved(
    box: Box, velocity: Box, steps: npt.NDArray[np.float32], limit: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """`box` moved on by `velocity` for each of `steps` frames (one row each): its centre
    with the velocity, its size changing with its sides' velocities, never larger than
    `limit` (or `box`, where that is larger). A box that shrinks is one an edge cuts
    (the target goes out or came in there), whose far side moves as the target does."""
    dt = steps[:, None]
    centre = (box[:2] + box[2:]) / 2 + (velocity[:2] + velocity[2:]) / 2 * dt
    size = box[2:] - box[:2]
    grown = np.clip(size + (velocity[2:] - velocity[:2]) * dt, 0, np.maximum(size, limit))
    return np.concatenate([centre - grown / 2, centre + grown / 2], axis=1).astype(np.float32)


def _hull(boxes: list[Box]) -> Box:
    """The smallest box holding every box."""
    stack = np.stack(boxes)
    return np.concatenate([stack[:, :2].min(axis=0), stack[:, 2:].max(axis=0)]).astype(np.float32)


def _widen(box: Box, frames_away: int, settings: TrackerSettings, size: Box | None = None) -> Box:
    """`box` grown on every side by a share of `size` (width, height; the box's own where
    None) that rises with the frames from where the target was known to be."""
    grow = min(0.5, settings.growth_per_frame * frames_away) / 2
    w, h = (box[2] - box[0], box[3] - box[1]) if size is None else (size[0], size[1])
    return (box + np.array([-w, -h, w, h], dtype=np.float32) * grow).astype(np.float32)
