"""A track after its last sighting: its mask follows the target out and then ends.

A person's box widens as they start to walk (the stride), so its sides move at different
speeds; extrapolated on, that box grew without end, and its trailing side never left the
picture: the one-by-one clip's person (track 25, last seen at frame 189) was masked for
4.8 s more, over the whole picture. These tests hold its real sightings.
"""

from __future__ import annotations

import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.tracker import TrackerSettings, fill, link

WIDTH, HEIGHT = 768, 432
# what setup.tracker_settings gives the default plan on the 10 fps clip
CLIP = dict.fromkeys(
    TargetClass,
    TrackerSettings(max_gap=10, lead=5, tail=5, frame_size=(WIDTH, HEIGHT), max_edge_frames=100),
)

# intel_one-by-one-person-detection.mp4: the person standing, then walking out to the right
STANDING = [383.3, 15.0, 518.8, 405.3]
WALKING_OUT = {
    174: [384.1, 16.0, 518.3, 402.7],
    177: [383.0, 14.7, 521.3, 404.0],
    180: [384.5, 9.4, 523.4, 399.0],
    183: [400.4, 19.5, 557.3, 415.2],
    186: [449.9, 23.6, 624.7, 422.4],
    189: [456.6, 46.3, 699.5, 394.0],
}


def walking_out() -> dict[int, Detections]:
    found = {f: [STANDING] for f in range(150, 174, 3)}
    found.update({f: [box] for f, box in WALKING_OUT.items()})
    return {f: Detections.create(b, [0.9], TargetClass.PERSON) for f, b in found.items()}


def in_picture(box: np.ndarray) -> np.ndarray:
    return np.clip(box, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])


def shows(box: np.ndarray) -> bool:
    """Whether any of a mask is inside the picture."""
    x1, y1, x2, y2 = in_picture(box)
    return bool(x2 > x1 and y2 > y1)


def test_a_person_walking_out_is_masked_at_a_sane_size() -> None:
    masks = fill(link(walking_out(), CLIP), CLIP)
    widest = max(b[2] - b[0] for b in WALKING_OUT.values())
    for frame in range(189, max(masks) + 1):
        box = in_picture(masks[frame].xyxy[0])
        # twice the person's widest box: a doubtful place, never the whole picture
        assert box[2] - box[0] <= 2 * widest, (frame, box)


def test_a_person_walking_out_is_unmasked_soon_after_leaving() -> None:
    masks = fill(link(walking_out(), CLIP), CLIP)
    # the person moves on at the speed of their box's centre over the last sightings,
    # at their widest size: gone when its left side has passed the right edge
    centre = {f: (b[0] + b[2]) / 2 for f, b in WALKING_OUT.items()}
    speed = (centre[189] - centre[180]) / 9
    widest = max(b[2] - b[0] for b in WALKING_OUT.values())
    gone = 189 + int(np.ceil((WIDTH - (centre[189] - widest / 2)) / speed))
    settings = CLIP[TargetClass.PERSON]
    last = max(f for f, d in masks.items() if shows(d.xyxy[0]))
    assert last <= gone + settings.max_gap + settings.tail, (last, gone)


def test_a_person_walking_out_stays_masked_until_wholly_outside() -> None:
    # fail closed: the person, at their last size, moving on at the speed the fit predicts
    # (the velocity of their box's centre), is masked until wholly outside the picture; and
    # moving on as slow or as fast as their centre went over the last steps, covered while
    # the mask lasts
    masks = fill(link(walking_out(), CLIP), CLIP)
    last = np.array(WALKING_OUT[189], dtype=np.float32)
    for speed, to_the_end in ((8.0, False), (11.3, True), (14.0, False)):
        for dt in range(1, 100):
            truth = last + np.array([speed, 0, speed, 0], dtype=np.float32) * dt
            frame = 189 + dt
            if truth[0] >= WIDTH or (frame not in masks and not to_the_end):
                break
            assert frame in masks, (speed, frame)
            mask = masks[frame].xyxy[0]
            covered = (mask[:2] <= truth[:2]).all() and (mask[2:] >= in_picture(truth)[2:]).all()
            assert covered, (speed, frame, mask, truth)


def test_an_approaching_face_at_an_edge_keeps_growing_under_its_mask() -> None:
    # a face coming closer at the right edge grows 2 px a frame; the detector loses it
    # while it is still partly in: the mask grows with it until it has left
    def box(frame: int) -> np.ndarray:
        size = 40 + 2 * frame
        x = 600 + 3 * frame
        return np.array([x, 100, x + size, 100 + size], dtype=np.float32)

    found = {f: Detections.create([box(f)], [0.9], TargetClass.FACE) for f in range(0, 31, 3)}
    masks = fill(link(found, CLIP), CLIP)
    for frame in range(30, 60):
        truth = box(frame)
        if truth[0] >= WIDTH:
            break
        assert frame in masks, frame
        mask = masks[frame].xyxy[0]
        covered = (mask[:2] <= truth[:2]).all() and (mask[2:] >= in_picture(truth)[2:]).all()
        assert covered, (frame, mask, truth)
