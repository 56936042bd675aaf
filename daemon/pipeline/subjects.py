"""Subjects, not tracks: a person's face track and body track are one subject with one id.

An investigator picks who stays visible by a picture of a person, not by a track: the face
and the body of one person must be kept or masked together. A face track belongs to a
person track when, in most frames where both were seen, the face box lies inside the upper
part of the person box. Faces and bodies linked that way, directly or through one another (a
body tracked in two pieces, one face over both), form one subject; every other track is a
subject of its own.

Ids are numbered from the tracks alone, in order of first sighting, then left to right,
then top to bottom: mask settings (style, padding, hold) never change them.

Linking errs towards keeping people apart: two people wrongly joined would let keeping one
visible show the other, while a face left apart from its body is only masked when it need
not be (and shows as its own subject on the contact sheet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from privmask.adapters.detections import TargetClass
from privmask.daemon.pipeline.tracks import Box, Track

INSIDE_AREA = 0.8  # the share of a face box inside a person box for it to be that person's
HEAD_SHARE = 0.45  # a face's centre lies in this top share of its person's box
MOST = 2 / 3  # the share of the common frames the face must be inside in
MIN_COMMON = 2  # frames both were seen in, at least: one frame together is a coincidence
GLIMPSE = 2  # sightings, at most, of a face said to be probably part of another subject


@dataclass(frozen=True)
class Subject:
    """One person (face and body) or one other target, and its tracks."""

    subject_id: int
    tracks: tuple[Track, ...]

    @property
    def classes(self) -> list[str]:
        found = {t.target for t in self.tracks}
        return [c.label for c in TargetClass if c in found]

    @property
    def first_frame(self) -> int:
        return min(t.frames[0] for t in self.tracks)

    @property
    def last_frame(self) -> int:
        return max(t.frames[-1] for t in self.tracks)

    @property
    def best_score(self) -> float:
        return max(max(t.scores) for t in self.tracks)

    def boxes(self) -> list[list[float]]:
        """`[frame, x1, y1, x2, y2]` of every sighting of every track, in frame order (the
        boxes the detectors found, in stored-frame pixels, as the JSON report lists them)."""
        rows = [
            [frame, *(round(float(v), 1) for v in box)]
            for track in self.tracks
            for frame, box in zip(track.frames, track.boxes)
        ]
        return sorted(rows, key=lambda row: row[0])

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.subject_id,
            "classes": self.classes,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "best_score": round(self.best_score, 3),
            "tracks": [t.track_id for t in self.tracks],
            "boxes": self.boxes(),
        }


def group(tracks: Sequence[Track]) -> list[Subject]:
    """The tracks' subjects, numbered from 1 by first sighting, then position."""
    parent = {t.track_id: t.track_id for t in tracks}

    def root(track_id: int) -> int:
        while parent[track_id] != track_id:
            parent[track_id] = parent[parent[track_id]]
            track_id = parent[track_id]
        return track_id

    faces = [t for t in tracks if t.target is TargetClass.FACE]
    people = [t for t in tracks if t.target is TargetClass.PERSON]
    for face in faces:
        for person in bodies_of(face, people):
            parent[root(face.track_id)] = root(person.track_id)
    members: dict[int, list[Track]] = {}
    for track in tracks:
        members.setdefault(root(track.track_id), []).append(track)
    ordered = sorted(members.values(), key=_appearance)
    return [Subject(number, tuple(group)) for number, group in enumerate(ordered, start=1)]


def subject_of(subjects: Iterable[Subject]) -> dict[int, int]:
    """Subject id by track id."""
    return {t.track_id: s.subject_id for s in subjects for t in s.tracks}


def likely_part_of(subjects: Sequence[Subject]) -> dict[int, int]:
    """Face-only subjects that are probably part of another subject: seen at most
    GLIMPSE times, each time inside the head of exactly one other subject's person box in
    that frame. `group` keeps them apart on purpose (one frame together could be a passer-by:
    joining would show them when the other is kept visible); this only says so, by id."""
    found: dict[int, int] = {}
    for subject in subjects:
        if subject.classes != [TargetClass.FACE.label]:
            continue
        sightings = [(f, b) for t in subject.tracks for f, b in zip(t.frames, t.boxes)]
        if len(sightings) > GLIMPSE:
            continue
        holders = {_holder(frame, box, subject, subjects) for frame, box in sightings}
        holder = holders.pop() if len(holders) == 1 else None
        if holder is not None:
            found[subject.subject_id] = holder
    return found


def _holder(frame: int, head: Box, face: Subject, subjects: Sequence[Subject]) -> int | None:
    """The one other subject whose person box holds `head` in `frame`, else None."""
    holding = {
        other.subject_id
        for other in subjects
        if other is not face
        for track in other.tracks
        if track.target is TargetClass.PERSON
        for f, body in zip(track.frames, track.boxes)
        if f == frame and _holds(body, head)
    }
    return holding.pop() if len(holding) == 1 else None


def bodies_of(face: Track, people: Sequence[Track]) -> list[Track]:
    """The person tracks `face` belongs to. Of person tracks seen at the same time that
    would all hold it (one person standing behind another), only the one holding it in the
    clearly larger share of frames counts; a tie joins none (they stay apart)."""
    scored = [(share, person) for person in people if (share := _inside_share(face, person))]
    chosen: list[Track] = []
    for share, person in sorted(scored, key=lambda s: -s[0]):
        rivals = [s for s, p in scored if p is not person and _overlap(p, person)]
        if any(s >= share for s in rivals):
            continue
        chosen.append(person)
    return chosen


def _inside_share(face: Track, person: Track) -> float:
    """The share of the frames both were sighted in where the face is inside the person's
    head, or 0 where that is not most of them (or they share too few frames)."""
    people = dict(zip(person.frames, person.boxes))
    common = [(box, people[f]) for f, box in zip(face.frames, face.boxes) if f in people]
    if len(common) < MIN_COMMON:
        return 0.0
    share = sum(_holds(body, head) for head, body in common) / len(common)
    return share if share >= MOST else 0.0


def _holds(body: Box, head: Box) -> bool:
    """Whether a face box lies inside a person box, in its upper part."""
    x1, y1 = np.maximum(head[:2], body[:2])
    x2, y2 = np.minimum(head[2:], body[2:])
    inside = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    area = float((head[2] - head[0]) * (head[3] - head[1]))
    centre_y = float(head[1] + head[3]) / 2
    top = float(body[1]) + HEAD_SHARE * float(body[3] - body[1])
    return area > 0 and inside >= INSIDE_AREA * area and centre_y <= top


def _overlap(a: Track, b: Track) -> bool:
    return a.frames[0] <= b.frames[-1] and b.frames[0] <= a.frames[-1]


def _appearance(tracks: list[Track]) -> tuple[int, float, float, int]:
    """First sighting, then left to right, then top to bottom (then class)."""
    first = min(tracks, key=lambda t: (t.frames[0], int(t.target)))
    box = first.boxes[0]
    return first.frames[0], round(float(box[0]), 1), round(float(box[1]), 1), int(first.target)
