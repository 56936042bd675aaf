"""Grouping tracks into subjects, and a plan's hold over fixed-linked tracks: the steps
called directly with plain tracks (sightings as a tracker records them)."""

from __future__ import annotations

import numpy as np

from privmask.adapters.detections import TargetClass
from privmask.daemon.pipeline.hold import bridge
from privmask.daemon.pipeline.subjects import group, likely_part_of, subject_of
from privmask.daemon.pipeline.tracks import Track, TrackerSettings

FACE, PERSON = TargetClass.FACE, TargetClass.PERSON


def walking(track_id: int, target: TargetClass, frames: range, x: float, y: float,
            size: tuple[float, float], speed: float = 3.0) -> Track:  # fmt: skip
    """A track moving right at `speed` px a frame, its box's top left at (x, y) at frame 0."""
    track = Track(track_id, target)
    w, h = size
    for frame in frames:
        left = x + speed * frame
        track.add(frame, np.array([left, y, left + w, y + h], np.float32), 0.9)
    return track


def body(track_id: int, frames: range, x: float, speed: float = 3.0) -> Track:
    return walking(track_id, PERSON, frames, x, 300, (120, 360), speed)


def head(track_id: int, frames: range, x: float, speed: float = 3.0) -> Track:
    return walking(track_id, FACE, frames, x + 45, 310, (30, 40), speed)


def test_a_face_on_a_body_is_one_subject_and_ids_follow_first_appearance() -> None:
    tracks = [
        body(1, range(30, 90, 3), 600),  # later
        body(2, range(0, 90, 3), 100),
        head(3, range(0, 90, 3), 100),
        head(4, range(30, 90, 3), 600),
        walking(5, FACE, range(0, 30, 3), 900, 50, (30, 40)),  # a face alone, right of 2
    ]
    subjects = group(tracks)
    assert [(s.subject_id, [t.track_id for t in s.tracks]) for s in subjects] == [
        (1, [2, 3]),
        (2, [5]),
        (3, [1, 4]),
    ]
    assert subjects[0].classes == ["face", "person"]
    assert subject_of(subjects) == {2: 1, 3: 1, 5: 2, 1: 3, 4: 3}


def test_a_face_passing_in_front_of_another_body_is_not_joined_to_it() -> None:
    passer = walking(1, FACE, range(0, 60, 3), 0, 310, (30, 40), speed=8)  # crosses the body
    standing = body(2, range(0, 60, 3), 200, speed=0)
    assert len(group([passer, standing])) == 2


def test_a_face_inside_two_bodies_at_once_joins_neither() -> None:
    """One person right behind another: the face cannot be told apart, so kept apart."""
    front, behind = body(1, range(0, 30, 3), 100), body(2, range(0, 30, 3), 104)
    face = head(3, range(0, 30, 3), 102)
    assert len(group([front, behind, face])) == 3


def test_a_body_tracked_in_two_pieces_is_one_subject_through_its_face() -> None:
    first, second = body(1, range(0, 30, 3), 100), body(2, range(45, 90, 3), 100)
    face = head(3, range(0, 90, 3), 100)
    [subject] = group([first, second, face])
    assert sorted(t.track_id for t in subject.tracks) == [1, 2, 3]


def settings(max_gap: int) -> dict[TargetClass, TrackerSettings]:
    return {FACE: TrackerSettings(max_gap=max_gap, lead=5, tail=5)}


def test_a_longer_hold_joins_tracks_the_fixed_linking_left_apart() -> None:
    before, after = head(1, range(0, 30, 3), 100), head(2, range(66, 90, 3), 100)
    far = walking(3, FACE, range(66, 90, 3), 900, 50, (30, 40))  # elsewhere: not the same
    joined = bridge([before, after, far], settings(25), settings(50))
    assert sorted(len(t.frames) for t in joined) == [8, 18]
    kept = bridge([before, after, far], settings(25), settings(25))
    assert len(kept) == 3
    assert len(before.frames) == 10  # the input is not changed


def glimpse(track_id: int, frames: list[int], x: float, speed: float = 3.0) -> Track:
    """A face seen in a few frames only, where `head` would be."""
    track = Track(track_id, FACE)
    for frame in frames:
        left = x + 45 + speed * frame
        track.add(frame, np.array([left, 310, left + 30, 350], np.float32), 0.7)
    return track


def test_a_face_glimpsed_on_a_body_is_its_own_subject_said_to_be_probably_part_of_it() -> None:
    tracks = [
        body(1, range(0, 30, 3), 100),  # one person: a body tracked in two pieces,
        body(2, range(45, 90, 3), 100),
        head(3, range(0, 90, 3), 100),  # joined through its face
        glimpse(4, [12], 100),  # once on its head: kept apart (one frame is no proof)
        glimpse(5, [27, 48], 100),  # twice, once on each piece
        body(6, range(0, 90, 3), 600),
        glimpse(7, [9], 800),  # beside body 6, on nobody
        body(8, range(0, 12, 3), 1000),  # another, in three pieces
        body(9, range(15, 27, 3), 1000),
        body(10, range(30, 42, 3), 1000),
        head(11, range(0, 42, 3), 1000),
        glimpse(12, [6, 18, 33], 1000),  # three times: a face tracked, not a glimpse
    ]
    subjects = group(tracks)
    ids = subject_of(subjects)
    assert len({ids[n] for n in (1, 2, 3, 4, 5)}) == 3  # the glimpses stay subjects of their own
    assert likely_part_of(subjects) == {ids[4]: ids[1], ids[5]: ids[1]}


def test_a_glimpse_inside_two_bodies_or_on_two_people_points_at_nobody() -> None:
    front, behind = body(1, range(0, 30, 3), 100), body(2, range(0, 30, 3), 104)
    both = glimpse(3, [9], 102)  # inside both at once
    one, other = body(4, range(0, 30, 3), 600), body(5, range(0, 30, 3), 1000)
    split = Track(6, FACE)  # once on body 4's head, once on body 5's
    split.add(12, np.array([681, 310, 711, 350], np.float32), 0.7)
    split.add(15, np.array([1090, 310, 1120, 350], np.float32), 0.7)
    subjects = group([front, behind, both, one, other, split])
    assert len(subjects) == 6
    assert likely_part_of(subjects) == {}
