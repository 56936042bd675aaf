"""Coverage: did a redaction mask every box a referee found, frame by frame?

`covered_fraction` judges one box of a redacted frame against the original frame, for any
mask style. `masked_fraction` (see `judge`) counts pixels whose colour a mask clearly
changed; that misses blurred pixels where the original is flat (a plain wall or shirt keeps
its colour under a blur; 0.75 of a blurred person box on average, measured on the shared
clip), so here a pixel also counts as masked when the original's fine detail there is gone.
Pixels that are flat in the original and unchanged say nothing either way: a box is judged
on its informative pixels (changed, or with detail), and at least a tenth of its area.

`check_coverage` runs the judge over a whole clip and its redacted copy and groups the
uncovered boxes into runs, track-like groups over consecutive frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from privmask.daemon.testing.judge import CHANGE_SIGMA, CHANGE_THRESHOLD, channel_change
from privmask.daemon.testing.scene import Scene
from privmask.daemon.testing.video import Box, Image, read_frames

# A box is covered when this share of its informative pixels is masked (the 80 %).
COVERED = 0.8
# Detail: grey minus its blur at DETAIL_SIGMA px; its local energy and the output's share of
# it are averaged over ENERGY_SIGMA px. A pixel with detail energy under TEXTURE_FLOOR
# (RMS 1.4 grey levels) is flat. Measured on the shared one-by-one clip (privmask's own
# sightings, blurred, against the same boxes in a plain transcode at privmask's preset):
# every masked box scored 1.0, every unmasked one <= 0.05. On a CCTV-like scene's faces of
# 16-64 px (tests/pipeline/test_referee.py), masks drawn exactly on the box: 97 % scored
# >= 0.93 (blur), 0.91 (pixelate), 1.0 (solid); the same masks moved by half the box's
# width <= 0.66; re-encoding alone <= 0.05. Pixelation of the smallest faces (4 px cells)
# keeps the most: it is judged least surely.
DETAIL_SIGMA = 1.5
ENERGY_SIGMA = 3.0
TEXTURE_FLOOR = 2.0
KEPT_SHARE = 0.5  # the output keeps less than half the original's detail: gone
MIN_INFORMATIVE = 0.1  # judge at least this share of the box, so a flat box is not waved on
_MARGIN = 8  # pixels of context around a box, so the blurs see real neighbours at its edges


def masked_pixels(
    original: Image, output: Image, inside: npt.NDArray[np.bool_] | None = None
) -> tuple[npt.NDArray[np.bool_], ...]:
    """Per pixel: (masked, informative) for two same-sized BGR images.

    With `inside` (the box being judged), a pixel's detail is weighed over its neighbours
    inside the box only: a mask that ends exactly at the box edge must not look half open
    there because the detail just outside it was kept.
    """
    a, b = original.astype(np.float32), output.astype(np.float32)
    sa = cv2.GaussianBlur(a, (0, 0), CHANGE_SIGMA)
    sb = cv2.GaussianBlur(b, (0, 0), CHANGE_SIGMA)
    changed = channel_change(sa, sb) > CHANGE_THRESHOLD
    da, db = _detail(original), _detail(output)
    weight = np.ones(da.shape, np.float32) if inside is None else inside.astype(np.float32)
    share = np.maximum(cv2.GaussianBlur(weight, (0, 0), ENERGY_SIGMA), 1e-6)
    energy = cv2.GaussianBlur(da * da * weight, (0, 0), ENERGY_SIGMA) / share
    kept = cv2.GaussianBlur(da * db * weight, (0, 0), ENERGY_SIGMA) / share
    textured = energy >= TEXTURE_FLOOR
    gone = textured & (kept < KEPT_SHARE * energy)
    return changed | gone, changed | textured


def _detail(image: Image) -> npt.NDArray[Any]:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return grey - cv2.GaussianBlur(grey, (0, 0), DETAIL_SIGMA)


def covered_fraction(original: Image, output: Image, box: Box) -> float:
    """Share of the box's informative pixels that the output masks (0 = none, 1 = all)."""
    height, width = original.shape[:2]
    x1, y1, x2, y2 = max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])
    if x2 <= x1 or y2 <= y1:
        return 1.0  # nothing of it is in the picture
    cx1, cy1 = max(0, x1 - _MARGIN), max(0, y1 - _MARGIN)
    cx2, cy2 = min(width, x2 + _MARGIN), min(height, y2 + _MARGIN)
    inside = (slice(y1 - cy1, y2 - cy1), slice(x1 - cx1, x2 - cx1))
    in_box = np.zeros((cy2 - cy1, cx2 - cx1), dtype=bool)
    in_box[inside] = True
    masked, informative = masked_pixels(
        original[cy1:cy2, cx1:cx2], output[cy1:cy2, cx1:cx2], in_box
    )
    area = (x2 - x1) * (y2 - y1)
    judged = max(int(informative[inside].sum()), MIN_INFORMATIVE * area)
    return min(1.0, float(masked[inside].sum()) / judged)


@dataclass(frozen=True)
class FrameBox:
    """One referee box: the frame, its class label, the box and the referee's score."""

    frame: int
    target: str
    box: Box
    score: float


@dataclass(frozen=True)
class Judged:
    """A referee box with the share of it that the redaction masked."""

    box: FrameBox
    covered: float


@dataclass
class Run:
    """Uncovered boxes of one class over (nearly) consecutive frames, overlapping in place."""

    target: str
    boxes: list[Judged] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.boxes[0].box.frame

    @property
    def last(self) -> int:
        return self.boxes[-1].box.frame

    @property
    def heights(self) -> tuple[int, int]:
        sizes = [j.box.box[3] - j.box.box[1] for j in self.boxes]
        return min(sizes), max(sizes)

    @property
    def worst(self) -> Judged:
        """The box that shows most: the largest of those least covered."""
        return min(self.boxes, key=lambda j: (round(j.covered, 1), -_area(j.box.box)))

    def describe(self) -> str:
        low, high = self.heights
        size = f"{low} px" if low == high else f"{low}-{high} px"
        frames = (
            f"frame {self.first}"
            if self.first == self.last
            else (f"frames {self.first}-{self.last}")
        )
        return (
            f"{self.target}: {frames}, {len(self.boxes)} boxes, {size} high, "
            f"least covered {self.worst.covered:.2f} at frame {self.worst.box.frame}"
        )


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _touches(a: Box, b: Box) -> bool:
    """Boxes overlap, or lie within one box length of each other: a fast target's next box
    (a plate 10 px high moves 20 px a frame on the shared car clip)."""
    reach = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    return (
        a[0] - reach < b[2] and b[0] - reach < a[2] and a[1] - reach < b[3] and b[1] - reach < a[3]
    )


def group_runs(uncovered: Iterable[Judged], max_gap: int = 2) -> list[Run]:
    """Uncovered boxes grouped into runs: a box joins the run of its class whose last box is
    at most `max_gap` frames earlier and near it; runs come back by first frame."""
    runs: list[Run] = []
    for judged in sorted(uncovered, key=lambda j: (j.box.frame, j.box.target, j.box.box)):
        home = next(
            (
                run
                for run in reversed(runs)
                if run.target == judged.box.target
                and 0 <= judged.box.frame - run.last <= max_gap
                and _touches(run.boxes[-1].box.box, judged.box.box)
            ),
            None,
        )
        if home is None:
            home = Run(judged.box.target)
            runs.append(home)
        home.boxes.append(judged)
    return sorted(runs, key=lambda r: (r.first, r.target))


@dataclass(frozen=True)
class Coverage:
    """Every referee box of a clip judged against its redacted copy."""

    judged: tuple[Judged, ...]
    frames: int

    @property
    def uncovered(self) -> list[Judged]:
        return [j for j in self.judged if j.covered < COVERED]

    def runs(self) -> list[Run]:
        return group_runs(self.uncovered)

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """By class: (referee boxes, uncovered boxes, uncovered runs)."""
        runs = self.runs()
        targets = sorted({j.box.target for j in self.judged})
        return {
            t: (
                sum(j.box.target == t for j in self.judged),
                sum(j.box.target == t for j in self.uncovered),
                sum(r.target == t for r in runs),
            )
            for t in targets
        }

    def summary(self) -> str:
        lines = [
            f"{t}: {boxes} referee boxes, {missed} uncovered in {runs} runs"
            for t, (boxes, missed, runs) in self.counts().items()
        ]
        lines += [f"  {run.describe()}" for run in self.runs()]
        return "\n".join(lines) if lines else "no referee boxes"


def by_frame(boxes: Iterable[FrameBox]) -> dict[int, list[FrameBox]]:
    grouped: dict[int, list[FrameBox]] = {}
    for box in boxes:
        grouped.setdefault(box.frame, []).append(box)
    return grouped


def check_coverage(source: str | Path, redacted: str | Path, boxes: Iterable[FrameBox]) -> Coverage:
    """Judge every referee box in `source` against the same frame of `redacted`.

    Both clips are decoded in step, one frame at a time, so memory stays flat. A redacted
    clip with fewer frames than a box needs leaves that box uncovered (fail closed).
    """
    wanted = by_frame(boxes)
    judged: list[Judged] = []
    frames = 0
    for index, (before, after) in enumerate(_pairs(read_frames(source), read_frames(redacted))):
        frames = index + 1
        for box in wanted.pop(index, []):
            judged.append(Judged(box, 0.0 if after is None else _judge(before, after, box)))
    judged += [Judged(box, 0.0) for rest in wanted.values() for box in rest]
    return Coverage(tuple(judged), frames)


def _judge(before: Image, after: Image, box: FrameBox) -> float:
    if before.shape != after.shape:
        return 0.0  # a redaction must keep the picture size; a changed one covers nothing
    return covered_fraction(before, after, box.box)


def _pairs(
    source: Iterator[Image], redacted: Iterator[Image]
) -> Iterator[tuple[Image, Image | None]]:
    for before in source:
        yield before, next(redacted, None)


def frame_boxes(rows: Mapping[str, Sequence[Sequence[float]]]) -> list[FrameBox]:
    """Boxes from the annotation layout: by class, rows of [frame, x1, y1, x2, y2, score]."""
    return [
        FrameBox(
            int(row[0]), target, (int(row[1]), int(row[2]), int(row[3]), int(row[4])), float(row[5])
        )
        for target, table in rows.items()
        for row in table
    ]


def split_by_truth(
    boxes: Sequence[FrameBox], scene: Scene
) -> tuple[list[FrameBox], list[FrameBox]]:
    """On a synthetic scene the ground truth says which referee boxes are targets: a box
    lying at least 30 % within where a target of its kind really is (hidden parts too) is
    one; the others are the referee's own false positives. Returns (targets, false)."""
    truth: dict[tuple[int, str], list[Box]] = {}
    for target in scene.targets:
        for index, full in enumerate(target.full_boxes):
            if full is not None:
                truth.setdefault((index, target.kind), []).append(full)
    real: list[FrameBox] = []
    false: list[FrameBox] = []
    for found in boxes:
        places = truth.get((found.frame, found.target), [])
        inside = max((_overlap(found.box, place) for place in places), default=0.0)
        (real if inside >= 0.3 else false).append(found)
    return real, false


def _overlap(box: Box, place: Box) -> float:
    """Share of `box` inside `place`."""
    w = min(box[2], place[2]) - max(box[0], place[0])
    h = min(box[3], place[3]) - max(box[1], place[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return max(0, w) * max(0, h) / area if area > 0 else 0.0
