"""What the clip page says beside a face glimpsed on someone's head (kept a subject of its
own on purpose) and beside that someone: tracks built here, as a tracker records them."""

from __future__ import annotations

import numpy as np

from privmask.adapters.detections import TargetClass
from privmask.daemon.pipeline.subjects import group, subject_of
from privmask.daemon.pipeline.tracks import Track
from privmask.daemon.review.clip_pages import subject_notes


def track(track_id: int, target: TargetClass, frames: list[int], box: list[float]) -> Track:
    made = Track(track_id, target)
    for frame in frames:
        made.add(frame, np.array(box, np.float32), 0.8)
    return made


def test_glimpses_say_whom_they_are_probably_part_of_and_that_one_says_see_also() -> None:
    every = list(range(0, 60, 3))
    tracks = [
        track(1, TargetClass.PERSON, every, [100, 100, 200, 400]),  # standing still
        track(2, TargetClass.FACE, [9], [130, 110, 170, 160]),  # glimpsed on its head
        track(3, TargetClass.FACE, [30], [135, 112, 172, 158]),  # and again, later
        track(4, TargetClass.FACE, [12], [500, 110, 540, 160]),  # on nobody
    ]
    subjects = group(tracks)
    ids = subject_of(subjects)
    assert subject_notes(subjects) == {
        ids[2]: f"probably part of #{ids[1]}",
        ids[3]: f"probably part of #{ids[1]}",
        ids[1]: f"see also #{min(ids[2], ids[3])}, #{max(ids[2], ids[3])}",
    }
