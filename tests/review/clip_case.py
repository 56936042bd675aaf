"""A clip waiting for review, as the clip page tests see it: a real scene of three faces
with known places, analysed for real (`privmask analyze`'s own code), and `OneClipQueue`,
which stands in for the daemon's side of the review queue (the page under test is not
stood in for). Tests import these from here, not from conftest."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from privmask.daemon.cli.analyze import analyse_to
from privmask.daemon.pipeline import analysis
from privmask.daemon.review.queue import ClipUnderReview, Decision, ReviewError, WaitingClip
from privmask.daemon.testing import FaceSpec, Scene, read_frames, write_scene
from privmask.rules.plan import RedactionPlan, TargetPlan

JOB = "17"
WIDTH, HEIGHT, SECONDS = 640, 360, 2.0
FACES = (
    FaceSpec("left", 64, (0.2, 0.45), (0.3, 0.0)),
    FaceSpec("middle", 64, (0.5, 0.55), (0.0, 0.0)),
    FaceSpec("right", 64, (0.8, 0.45), (-0.3, 0.0)),
)
PLAN = RedactionPlan(targets=(TargetPlan("face"),))  # blur, the default style
Image = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Case:
    """The clip, its analysis folder, the unmasked frames, and each face's true box per
    frame by subject id (ids as the analysis numbered them)."""

    source: Path
    folder: Path
    frames: list[Image]
    boxes: dict[int, list[Box | None]]

    def clip(self) -> ClipUnderReview:
        waiting = WaitingClip(JOB, self.source.name, "gate", datetime(2026, 11, 30, tzinfo=UTC))
        return ClipUnderReview(waiting, self.source, self.folder, PLAN)


def make_case(folder: Path, models_dir: Path) -> Case:
    source = folder / "entrance.mp4"
    scene = write_scene_clip(source)
    out = folder / "analysis"
    analyse_to(source, out, PLAN, str(models_dir), quiet=True, force=False)
    return Case(source, out, list(read_frames(source)), truth_by_subject(scene, out))


def write_scene_clip(path: Path) -> Scene:
    return write_scene(path, width=WIDTH, height=HEIGHT, seconds=SECONDS, faces=FACES,
                       pillar=None)  # fmt: skip


def truth_by_subject(scene: Scene, folder: Path) -> dict[int, list[Box | None]]:
    """Each face's true box per frame, by the id of the subject an analysis gave it: the
    scene's target nearest the subject's first sighting."""
    boxes: dict[int, list[Box | None]] = {}
    for subject in analysis.read(folder).subjects:
        frame, *box = subject.boxes()[0]
        target = min(scene.targets, key=lambda t: _distance(t.boxes[int(frame)], box))
        boxes[subject.subject_id] = list(target.boxes)
    assert len(boxes) == len(FACES), "each face one subject"
    return boxes


def _distance(truth: Box | None, box: list[float]) -> float:
    if truth is None:
        return float("inf")
    return float(np.abs(np.array(truth, float) - np.array(box, float)).sum())


@dataclass
class OneClipQueue:
    """The daemon's side of the queue for one clip: it waits until decided; decisions and
    views are kept for the test to read. `refusal`: a ReviewError every decision gets."""

    clip: ClipUnderReview
    decisions: list[tuple[str, Decision]] = field(default_factory=list)
    views: list[tuple[str, str, str]] = field(default_factory=list)
    refusal: str | None = None
    view_refusal: str | None = None  # a ReviewError every view gets (the record failed)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def waiting(self) -> tuple[WaitingClip, ...]:
        return () if self.decisions else (self.clip.clip,)

    def get(self, job: str) -> ClipUnderReview | None:
        return self.clip if job == self.clip.clip.job and not self.decisions else None

    def decide(self, job: str, decision: Decision) -> None:
        with self._lock:
            if self.refusal is not None:
                raise ReviewError(self.refusal)
            if self.get(job) is None:
                raise ReviewError(f"job {job} is not waiting for review")
            if not decision.reason.strip():
                raise ReviewError("a decision needs a reason")
            self.decisions.append((job, decision))

    def viewed(self, job: str, reviewer: str, what: str) -> None:
        with self._lock:
            if self.view_refusal is not None:
                raise ReviewError(self.view_refusal)
            self.views.append((job, reviewer, what))


def decode_jpeg(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image, dtype=np.uint8)


def mean_difference(a: Image, b: Image, box: Box) -> float:
    x1, y1, x2, y2 = box
    part_a = a[y1:y2, x1:x2].astype(np.int16)
    part_b = b[y1:y2, x1:x2].astype(np.int16)
    return float(np.abs(part_a - part_b).mean())
