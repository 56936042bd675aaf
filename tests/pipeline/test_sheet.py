"""The contact sheet's crop of each subject, cut from a real clip: a person is shown by the
body (clothes tell people apart where a face seen from above does not); a face alone by
the face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from privmask.adapters.detections import TargetClass
from privmask.adapters.video import probe
from privmask.daemon.pipeline.sheet import tiles
from privmask.daemon.pipeline.subjects import group
from privmask.daemon.pipeline.tracks import Track
from privmask.daemon.testing import write_frames

SIZE = (320, 240)
BODY = (100, 40, 160, 220)  # x1, y1, x2, y2: green, with a red head at its top
HEAD = (115, 45, 145, 80)
STRANGER = (240, 100, 280, 150)  # a face alone: blue


def paint(picture: np.ndarray, box: tuple[int, int, int, int], bgr: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    picture[y1:y2, x1:x2] = bgr


def write_clip(path: Path) -> None:
    picture = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    paint(picture, BODY, (0, 200, 0))
    paint(picture, HEAD, (0, 0, 220))
    paint(picture, STRANGER, (220, 0, 0))
    write_frames(path, [picture] * 10, fps=10, size=SIZE, crf=10)


def still(track_id: int, target: TargetClass, box: tuple[int, int, int, int],
          scores: list[float]) -> Track:  # fmt: skip
    track = Track(track_id, target)
    for frame, score in enumerate(scores):
        track.add(frame, np.array(box, np.float32), score)
    return track


def share(crop: np.ndarray, bgr: tuple[int, int, int]) -> float:
    near = np.abs(crop.astype(np.int16) - np.array(bgr, np.int16)).max(axis=2) < 40
    return float(near.mean())


def test_a_person_is_shown_head_to_feet_and_a_lone_face_by_the_face(tmp_path: Path) -> None:
    clip = tmp_path / "still.mp4"
    write_clip(clip)
    # the face scores higher than the body: the crop is still the body's
    tracks = [
        still(1, TargetClass.PERSON, BODY, [0.5, 0.6, 0.55]),
        still(2, TargetClass.FACE, HEAD, [0.9, 0.95, 0.9]),
        still(3, TargetClass.FACE, STRANGER, [0.8, 0.85, 0.8]),
    ]
    person, stranger = group(tracks)
    assert person.classes == ["face", "person"] and stranger.classes == ["face"]
    shown = {t.subject.subject_id: t.crop for t in tiles(clip, probe(clip), (person, stranger))}

    body = shown[person.subject_id]
    height, width = BODY[3] - BODY[1], BODY[2] - BODY[0]
    assert body.shape[0] >= height and body.shape[1] >= width  # the whole body, and a margin
    assert share(body, (0, 200, 0)) > 0.5  # mostly clothes
    assert share(body, (0, 0, 220)) > 0.05  # and the head on top

    face = shown[stranger.subject_id]
    assert face.shape[0] < height / 2
    assert share(face, (220, 0, 0)) > 0.3  # the face, with a margin round it
