"""The offline tracker as pure functions: link sightings, then fill every frame."""

from __future__ import annotations

import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.tracker import TrackerSettings, fill, link

SETTINGS = dict.fromkeys(TargetClass, TrackerSettings(max_gap=10, lead=4, tail=4))


def box_at(frame: int, x0: float = 100, speed: float = 3, size: float = 24) -> list[float]:
    x = x0 + speed * frame
    return [x, 50, x + size, 50 + size]


def sightings_of(frames: list[int], target=TargetClass.FACE, **motion) -> dict[int, Detections]:  # type: ignore[no-untyped-def]
    return {f: Detections.create([box_at(f, **motion)], [0.9], target) for f in frames}


def covers(outer: np.ndarray, inner: list[float]) -> bool:
    return bool(
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def test_every_frame_between_sightings_and_a_miss_is_covered() -> None:
    frames = [0, 2, 4, 8, 10]  # frame 6 was a detector miss
    tracks = link(sightings_of(frames), SETTINGS)
    assert len(tracks) == 1
    masks = fill(tracks, SETTINGS)
    for frame in range(0, 11):
        assert covers(masks[frame].xyxy[0], box_at(frame)), frame


def test_masks_reach_back_and_forward_past_the_sightings() -> None:
    tracks = link(sightings_of([40, 42, 44, 46]), SETTINGS)
    masks = fill(tracks, SETTINGS)
    assert min(masks) == 36 and max(masks) == 50
    # extrapolated with the motion, so the target's true earlier place is still covered
    for frame in range(36, 40):
        assert covers(masks[frame].xyxy[0], box_at(frame)), frame
    for frame in range(47, 51):
        assert covers(masks[frame].xyxy[0], box_at(frame)), frame


def test_a_long_gap_starts_a_new_track() -> None:
    tracks = link(sightings_of([0, 2, 4, 30, 32]), SETTINGS)
    assert [t.frames for t in tracks] == [[0, 2, 4], [30, 32]]
    assert len({t.track_id for t in tracks}) == 2


def test_small_fast_target_is_linked_without_overlap() -> None:
    # 12 px face moving 10 px a frame: boxes two frames apart do not overlap at all
    tracks = link(sightings_of(list(range(0, 20, 2)), speed=10, size=12), SETTINGS)
    assert len(tracks) == 1


def test_two_targets_keep_their_own_tracks_and_classes_get_distinct_ids() -> None:
    left = sightings_of(list(range(0, 20, 2)), x0=0, speed=2)
    right = sightings_of(list(range(0, 20, 2)), x0=400, speed=-2)
    person = sightings_of(list(range(0, 20, 2)), target=TargetClass.PERSON, x0=200, size=80)
    merged = {f: Detections.merge([left[f], right[f], person[f]]) for f in left}
    tracks = link(merged, SETTINGS)
    assert len(tracks) == 3
    assert len({t.track_id for t in tracks}) == 3
    for track in tracks:
        xs = [b[0] for b in track.boxes]
        assert np.all(np.diff(xs) == np.diff(xs)[0])  # each followed one straight path
    masks = fill(tracks, SETTINGS)
    assert sorted(masks[5].class_id.tolist()) == [0, 0, 1]
    assert sorted(masks[5].track_id.tolist()) == sorted(t.track_id for t in tracks)


def test_no_sightings_no_tracks() -> None:
    assert link({0: Detections.empty(), 2: Detections.empty()}, SETTINGS) == []
    assert fill([], SETTINGS) == {}


def test_a_target_far_away_is_not_linked_to_an_old_sighting() -> None:
    # a stray box at frame 0 must not swallow a target entering elsewhere 12 frames later
    stray = {0: Detections.create([[900, 300, 1050, 480]], [0.5], TargetClass.PERSON)}
    entering = sightings_of([12, 14, 16], target=TargetClass.PERSON, x0=-36, speed=3, size=80)
    tracks = link({**stray, **entering}, SETTINGS)
    assert [t.frames for t in tracks] == [[0], [12, 14, 16]]
