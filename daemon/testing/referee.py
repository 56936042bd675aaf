"""The referee: privmask's own detectors run densely, to find what a redaction left visible.

Real footage has no ground truth, so the tests judge a redaction against a referee: the same
detector models, run on every frame, on a larger input and at a lower threshold than
privmask runs them, with their boxes merged. Privmask has to mask every box the referee
finds (see `coverage`). Production trades recall for speed (a stride, a smaller input, an
upscaled pass on every other frame); the referee does not, so where it still misses, so
does the test: it is a floor, not ground truth.

The referee on a long clip is slow (minutes), so its boxes for the shared clips are stored as
annotations (`Annotations`), pinned to the clip's and the models' sha256 and the referee's
settings; stale ones are refused with the command that regenerates them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privmask.adapters import models
from privmask.adapters.detections import Detections, TargetClass, box_iou, nms
from privmask.adapters.detectors import build_detector, builder_of
from privmask.adapters.detectors.base import Detector, Frame
from privmask.daemon.testing.coverage import FrameBox, frame_boxes
from privmask.daemon.testing.video import Box, Image, read_frames

_MERGE_IOU = 0.3  # boxes of one class from several passes that overlap this much are one
_CUT_EDGE = 2  # px: a tile's box this close to an inner tile edge was cut by the tile


@dataclass(frozen=True)
class RefereeSpec:
    """How the referee runs one model.

    zoom: how much larger than privmask's full-frame input the referee's extra pass sees the
        frame. Models that take any input size (YuNet) are upscaled by it; models with a
        fixed square input (YOLOX, the plate model) see overlapping tiles of 1/zoom of the
        frame's sides, half a tile apart, as well as the whole frame.
    min_score: below privmask's default for the model, so the referee finds what privmask
        would have found at a weaker moment, and no lower than crops showed real targets.
    """

    target: str
    model: str
    min_score: float
    zoom: float
    why: str

    def __post_init__(self) -> None:
        if models.spec_for(self.model).detects is not TargetClass.parse(self.target):
            raise ValueError(f"model {self.model} does not detect {self.target}s")
        if not 0 < self.min_score < 1 or self.zoom < 1:
            raise ValueError(f"referee {self.target}: min_score 0..1 and zoom >= 1")


SPECS: dict[str, RefereeSpec] = {
    "face": RefereeSpec(
        "face",
        "yunet",
        min_score=0.3,
        zoom=2.0,
        why="privmask: 0.4, 1.5x on every other frame. 2x finds faces from 16 px; under 0.3 "
        "the crops were backs of heads and floorboards, and 2x boxes of 64 px and more were "
        "floor, not faces (see Multiscale)",
    ),
    "person": RefereeSpec(
        "person",
        "yolox-nano",
        min_score=0.1,
        zoom=2.0,
        why="privmask: 0.35, whole frame at 416 px. 2x tiles see people at twice the size; "
        "every box from 0.1 up on the shared clip was a person or part of one (a head "
        "entering at the bottom edge, legs leaving at the side)",
    ),
    "plate": RefereeSpec(
        "plate",
        "hyperlpr-plate",
        min_score=0.2,
        zoom=2.0,
        why="privmask: 0.4, whole frame at 320 px, where a 10 px plate is 4 px. 2x tiles "
        "find the plates of the shared car clip on most frames; every box from 0.2 up was "
        "a plate",
    ),
}


class Tiled:
    """A fixed-input detector run on the whole frame and on overlapping tiles of it."""

    def __init__(self, detector: Detector, zoom: float) -> None:
        self.detector = detector
        self.zoom = zoom

    def detect(self, frame: Frame) -> Detections:
        height, width = frame.shape[:2]
        found = [self.detector.detect(frame)]
        if self.zoom > 1:
            tile_w, tile_h = math.ceil(width / self.zoom), math.ceil(height / self.zoom)
            for x, y in _origins(width, tile_w, height, tile_h):
                part = np.ascontiguousarray(frame[y : y + tile_h, x : x + tile_w])
                boxes = self.detector.detect(part)
                kept = _whole(boxes, x, y, width, height, tile_w, tile_h)
                found.append(_shifted(kept, x, y))
        return Detections.merge(found)


def _origins(width: int, tile_w: int, height: int, tile_h: int) -> Iterator[tuple[int, int]]:
    """Top-left corners of tiles half a tile apart, the last ones flush with the frame."""
    xs = sorted({*range(0, max(1, width - tile_w), max(1, tile_w // 2)), width - tile_w})
    ys = sorted({*range(0, max(1, height - tile_h), max(1, tile_h // 2)), height - tile_h})
    for y in ys:
        for x in xs:
            yield x, y


def _whole(
    boxes: Detections, x: int, y: int, width: int, height: int, tile_w: int, tile_h: int
) -> Detections:
    """Drop boxes that a tile's inner edge cut: a neighbouring tile holds them whole."""
    if not len(boxes):
        return boxes
    b = boxes.xyxy
    cut = np.zeros(len(boxes), dtype=bool)
    if x > 0:
        cut |= b[:, 0] <= _CUT_EDGE
    if y > 0:
        cut |= b[:, 1] <= _CUT_EDGE
    if x + tile_w < width:
        cut |= b[:, 2] >= tile_w - _CUT_EDGE
    if y + tile_h < height:
        cut |= b[:, 3] >= tile_h - _CUT_EDGE
    return boxes[~cut]


def _shifted(boxes: Detections, x: int, y: int) -> Detections:
    offset = np.array([x, y, x, y], dtype=np.float32)
    return Detections(boxes.xyxy + offset, boxes.score, boxes.class_id, boxes.track_id)


class Multiscale:
    """YuNet on every frame at 1x, and at `zoom`x for the small faces only.

    The 1x pass finds faces from about 24 px; the zoomed pass keeps boxes under
    SMALL_FACE x zoom px high, the faces the 1x pass is weak at. Larger boxes from the
    zoomed pass were almost all false: on the shared one-by-one clip 59 of its 62 boxes of
    70-190 px lay on the floor or the table's feet, and faces that large the 1x pass finds.
    """

    SMALL_FACE = 32

    def __init__(self, path: Path, min_score: float, zoom: float) -> None:
        self.zoom = zoom
        yunet = builder_of(models.spec_for("yunet"))  # imported only when used
        self.whole = yunet(path, min_score, max_side=1 << 14, upscale=1.0)
        self.zoomed = (
            yunet(path, min_score, max_side=1 << 14, upscale=zoom, upscale_every=1)
            if zoom > 1
            else None
        )

    def detect(self, frame: Frame) -> Detections:
        found = self.whole.detect(frame)
        if self.zoomed is None:
            return found
        small = self.zoomed.detect(frame)
        heights = small.xyxy[:, 3] - small.xyxy[:, 1]
        return Detections.merge([found, small[heights < self.SMALL_FACE * self.zoom]])


def settings_of(spec: RefereeSpec) -> dict[str, object]:
    """A spec with the constants that shape its boxes, as annotations record them."""
    shaping: dict[str, object] = {"merge_iou": _MERGE_IOU}
    if spec.model == "yunet":
        shaping["small_face"] = Multiscale.SMALL_FACE
    else:
        shaping["cut_edge"] = _CUT_EDGE
    return {**asdict(spec), **shaping}


def _without_why(settings: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """What changes the boxes: a reworded reason does not make annotations stale."""
    return [{k: v for k, v in s.items() if k != "why"} for s in settings]


def merge(found: Detections) -> Detections:
    """One box per target and class: NMS over every pass's boxes."""
    parts = []
    for target in np.unique(found.class_id):
        same = found[found.class_id == target]
        parts.append(same[nms(same.xyxy, same.score, _MERGE_IOU)])
    return Detections.merge(parts)


class Referee:
    """The dense detectors for some classes, loaded once."""

    def __init__(
        self,
        targets: Sequence[str],
        models_dir: str | os.PathLike[str] | None = None,
        specs: dict[str, RefereeSpec] = SPECS,
    ) -> None:
        self.specs = [specs[t] for t in targets]
        self.detectors = [self._build(s, models.resolve(s.model, models_dir)) for s in self.specs]

    @staticmethod
    def _build(spec: RefereeSpec, path: Path) -> Detector | Tiled | Multiscale:
        if spec.model == "yunet":
            return Multiscale(path, spec.min_score, spec.zoom)
        return Tiled(build_detector(spec.model, path, spec.min_score), spec.zoom)

    @property
    def models(self) -> list[dict[str, str]]:
        return [{"name": s.model, "sha256": models.spec_for(s.model).sha256} for s in self.specs]

    @property
    def settings(self) -> list[dict[str, object]]:
        return [settings_of(s) for s in self.specs]

    def detect(self, frame: Image) -> Detections:
        return merge(Detections.merge(d.detect(frame) for d in self.detectors))

    def run(self, clip: str | Path) -> tuple[list[FrameBox], int]:
        """Every referee box of every frame of a clip, and the clip's frame count."""
        found: list[FrameBox] = []
        frames = 0
        for index, frame in enumerate(read_frames(clip)):
            found += to_frame_boxes(index, self.detect(frame))
            frames = index + 1
        return found, frames


def to_frame_boxes(index: int, found: Detections) -> list[FrameBox]:
    """Boxes widened to whole pixels (outwards), with their class labels."""
    return [
        FrameBox(
            index,
            TargetClass(int(c)).label,
            (math.floor(b[0]), math.floor(b[1]), math.ceil(b[2]), math.ceil(b[3])),
            round(float(s), 3),
        )
        for b, s, c in zip(found.xyxy, found.score, found.class_id)
    ]


# The shared real clips the referee's annotations are kept for, and the classes judged on each.
SHARED_CLIPS: dict[str, tuple[str, ...]] = {
    "intel_one-by-one-person-detection.mp4": ("face", "person"),
    "intel_car-detection.mp4": ("plate",),
}
REGENERATE = ".venv/bin/python bench/referee_report.py --write"


class StaleAnnotations(Exception):
    """Stored referee boxes that do not belong to this clip, these models or these settings."""


@dataclass(frozen=True)
class FalsePositive:
    """A referee box judged by eye not to be a target (a hand, the floor), and why.

    Kept in the annotation file by hand and carried over when it is regenerated; it takes
    out the referee box of its class on its frame that overlaps `box` by IoU 0.5 or more.
    """

    target: str
    frame: int
    box: Box
    why: str

    def matches(self, found: FrameBox) -> bool:
        if found.target != self.target or found.frame != self.frame:
            return False
        a = np.array([self.box], dtype=np.float32)
        b = np.array([found.box], dtype=np.float32)
        return bool(box_iou(a, b)[0, 0] >= 0.5)


@dataclass(frozen=True)
class Annotations:
    """The referee's boxes for one clip, pinned to what produced them."""

    clip: str  # file name
    sha256: str
    frames: int
    models: tuple[dict[str, str], ...]
    settings: tuple[dict[str, object], ...]
    boxes: tuple[FrameBox, ...]
    seconds: float = 0.0  # how long the referee took, for the record
    false_positives: tuple[FalsePositive, ...] = ()

    @property
    def judged(self) -> list[FrameBox]:
        """The boxes a redaction must cover: all but the false positives."""
        return [b for b in self.boxes if not any(f.matches(b) for f in self.false_positives)]

    def unmatched(self) -> list[FalsePositive]:
        """False positives that no box matches (the referee no longer finds them)."""
        return [f for f in self.false_positives if not any(f.matches(b) for b in self.boxes)]

    def to_json(self) -> dict[str, object]:
        rows: dict[str, list[list[float]]] = {}
        for b in self.boxes:
            rows.setdefault(b.target, []).append([b.frame, *b.box, b.score])
        return {
            "about": "referee boxes (privmask.daemon.testing.referee); derived data, not "
            f"media. Regenerate with: {REGENERATE} (it keeps false_positives, the boxes "
            "judged by eye not to be targets, which are added here by hand)",
            "clip": self.clip,
            "clip_sha256": self.sha256,
            "frames": self.frames,
            "referee": {"models": list(self.models), "settings": list(self.settings)},
            "seconds": round(self.seconds, 1),
            "false_positives": [
                {"target": f.target, "frame": f.frame, "box": list(f.box), "why": f.why}
                for f in self.false_positives
            ],
            "boxes": rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Annotations:
        return cls(
            clip=data["clip"],
            sha256=data["clip_sha256"],
            frames=int(data["frames"]),
            models=tuple(data["referee"]["models"]),
            settings=tuple(data["referee"]["settings"]),
            boxes=tuple(frame_boxes(data["boxes"])),
            seconds=float(data.get("seconds", 0.0)),
            false_positives=tuple(
                FalsePositive(f["target"], int(f["frame"]), tuple(f["box"]), f["why"])
                for f in data.get("false_positives", ())
            ),
        )

    def save(self, path: Path) -> None:
        text = json.dumps(self.to_json(), separators=(",", ":"))
        # one row per line keeps a regenerated file's diff readable
        path.write_text(text.replace("],[", "],\n[") + "\n")


def annotate(
    clip: Path, targets: Sequence[str], models_dir: str | os.PathLike[str] | None = None
) -> Annotations:
    """Run the referee over a whole clip (minutes for the shared clips)."""
    referee = Referee(targets, models_dir)
    start = time.perf_counter()
    boxes, frames = referee.run(clip)
    return Annotations(
        clip.name,
        models.sha256_of(clip),
        frames,
        tuple(referee.models),
        tuple(referee.settings),
        tuple(boxes),
        time.perf_counter() - start,
    )


def load_annotations(path: Path, clip: Path, targets: Sequence[str]) -> Annotations:
    """Stored referee boxes for `clip`, or StaleAnnotations saying what differs and how to
    regenerate them: they must be of this very clip, by the models the registry pins and
    with the referee's present settings."""
    if not path.is_file():
        raise StaleAnnotations(f"{path}: no referee annotations; make them with: {REGENERATE}")
    stored = Annotations.from_json(json.loads(path.read_text()))
    wanted = [SPECS[t] for t in targets]
    problems = []
    if stored.sha256 != models.sha256_of(clip):
        problems.append(f"they are of another {clip.name} (sha256 {stored.sha256[:12]}...)")
    pinned = [{"name": s.model, "sha256": models.spec_for(s.model).sha256} for s in wanted]
    if list(stored.models) != pinned:
        problems.append("they were made by other models (name or sha256)")
    if _without_why(stored.settings) != _without_why([settings_of(s) for s in wanted]):
        problems.append("the referee's settings have changed since")
    if problems:
        raise StaleAnnotations(
            f"{path}: stale referee annotations: {'; '.join(problems)}. "
            f"Regenerate them with: {REGENERATE}"
        )
    return stored
