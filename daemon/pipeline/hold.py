"""A plan's hold, applied to tracks linked with the analysis's own, fixed settings.

Tracks are linked once, with `LINK_HOLD_SECONDS`, so that subject ids never depend on a
mask setting. A plan that holds masks longer (`face: {hold: 2.0}`) still bridges the
longer detector gaps it asks for: when masks are filled, a masked track that ends and a
masked track of the same class that starts near where the first was heading, within the
plan's gap, are filled as one, so the mask is interpolated across the gap as the linker
would have done with that hold. Tracks kept visible are never bridged to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from privmask.adapters.detections import TargetClass
from privmask.daemon.pipeline.tracks import Track, TrackerSettings

# the hold tracks are linked with, whatever a plan says (the command's default)
LINK_HOLD_SECONDS = 1.0
REACH = 2.5  # box sizes a re-found target's centre may lie from where the lost one was heading
SIZE_RATIO = 0.5  # the smaller box at least this share of the larger one (as the linker)


def bridge(
    tracks: Sequence[Track],
    linked: Mapping[TargetClass, TrackerSettings],
    planned: Mapping[TargetClass, TrackerSettings],
) -> list[Track]:
    """`tracks` (all masked) with those a longer planned hold would have linked joined,
    each join a new Track; the input tracks are not changed."""
    result: list[Track] = []
    for target in TargetClass:
        mine = sorted((t for t in tracks if t.target is target), key=lambda t: t.frames[0])
        if not mine:
            continue
        gap = planned[target].max_gap if target in planned else 0
        if target not in linked or gap <= linked[target].max_gap:
            result.extend(mine)
            continue
        result.extend(_joined(mine, gap))
    return result


def _joined(tracks: list[Track], max_gap: int) -> list[Track]:
    open_: list[Track] = []  # joined so far, each may still be continued
    for track in tracks:
        start, box = track.frames[0], track.boxes[0]
        best: tuple[float, int] | None = None
        for index, earlier in enumerate(open_):
            gap = start - earlier.frames[-1]
            if not 0 < gap <= max_gap:
                continue
            distance = _near(earlier.predict(start), box)
            if distance is not None and (best is None or distance < best[0]):
                best = (distance, index)
        if best is None:
            open_.append(track)
        else:
            open_[best[1]] = _join(open_[best[1]], track)
    return open_


def _near(predicted: np.ndarray, box: np.ndarray) -> float | None:
    """The centre distance in box sizes where `box` may be the target heading to
    `predicted`, else None."""
    size_p = float(max(predicted[2] - predicted[0], predicted[3] - predicted[1]))
    size_b = float(max(box[2] - box[0], box[3] - box[1]))
    scale = max(size_p, size_b, 1e-6)
    if min(size_p, size_b) / scale <= SIZE_RATIO:
        return None
    centre_p = (predicted[:2] + predicted[2:]) / 2
    centre_b = (box[:2] + box[2:]) / 2
    distance = float(np.linalg.norm(centre_p - centre_b)) / scale
    return distance if distance < REACH else None


def _join(first: Track, then: Track) -> Track:
    """One track of `first`'s sightings and places, then `then`'s."""
    trail = {**first.trail, **then.trail}
    for frame in then.frames:
        trail.pop(frame, None)
    return Track(
        first.track_id,
        first.target,
        frames=[*first.frames, *then.frames],
        boxes=[*first.boxes, *then.boxes],
        scores=[*first.scores, *then.scores],
        trail=dict(sorted(trail.items())),
        kept={**first.kept, **then.kept},
    )
