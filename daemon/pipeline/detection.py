"""Detection in the frames of one clip: a cheap look at the whole picture, and a close look
only where small faces can be.

YuNet finds faces of 48 px and more in the picture halved, but needs it doubled to find
faces of 14 px (measured on pasted faces in 720p, every third frame of 4 s: at 2x all faces
of 16 px and 94 % of 14 px, at 1x none under 24 px; at 0.5x all of 48 px). Doubling a whole
720p frame costs sixteen times the halved pass, so each detection frame is looked at
halved (`BASE_SCALE`), and only the places where a smaller face can be are looked at
closer (`attention.Attention`), each at the scale its smallest face needs. A clip small
enough is doubled whole.

People and plates are found on the whole picture (at most `OTHER_SIDE` wide): their models
shrink it themselves, and a plate model given the picture already shrunk by another filter
scored the small plates of the car clip lower (five of its sightings fell under 0.4).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import av
import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters import models
from privmask.adapters.detections import Detections, TargetClass, nms
from privmask.adapters.detectors import build_detector
from privmask.adapters.detectors.base import Detector, Frame, ScalableDetector
from privmask.adapters.video import crop_bgr, planes, to_bgr
from privmask.daemon.pipeline.attention import (
    BASE_SCALE,
    NEAR_SCALE,
    Attention,
    AttentionSettings,
    Rect,
    area,
)
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.setup import classes, model_list
from privmask.rules.plan import RedactionPlan

NamedDetector = tuple[str, Detector]

OTHER_SIDE = 1920  # people and plates: pictures larger are brought down to this first
WHOLE_NEAR_PIXELS = 600_000  # a picture this small doubled: look at all of it closely
MERGE_IOU = 0.3  # the same face found by two looks
MAX_LOOK_SIDE = 1024  # detector input pixels a side at most: tiles beyond
TILE_OVERLAP = 64  # pixels: more than a face that needs a close look


def load_detectors(
    plan: RedactionPlan, models_dir: str | os.PathLike[str] | None, threads: int = 1
) -> list[NamedDetector]:
    """Every model the plan needs (`setup.model_list`), each running its inference
    on `threads` threads: the frame detector keeps both cores busy with one each."""
    targets = classes(plan)
    loaded = []
    for entry in model_list(plan):  # refuses a model of the wrong class, as setup does
        name = entry["name"]
        target = targets[models.spec_for(name).detects]
        path = models.resolve(name, models_dir)
        loaded.append((name, build_detector(name, path, target.min_score, threads=threads)))
    return loaded


class FrameDetector:
    """Runs a plan's detectors on the frames of one clip, in order (it remembers where
    small faces were). Boxes come back in the stored frame of the geometry given.

    The models run on `workers` threads (one inference thread each): people while faces
    are looked for, the close looks side by side. So the close looks of a frame go by the
    people found in the detection frame before. Use it as a context manager, or `close()`
    it, to end the threads.
    """

    def __init__(
        self,
        detectors: list[NamedDetector],
        settings: AttentionSettings = AttentionSettings(),
        workers: int = 2,
    ) -> None:
        self.settings = settings
        self.faces = [d for _, d in detectors if isinstance(d, ScalableDetector)]
        self.others = [d for _, d in detectors if not isinstance(d, ScalableDetector)]
        self._attention: Attention | None = None
        self._people: list[Rect] = []  # found in the previous detection frame
        self._pool = ThreadPoolExecutor(workers, "detect")
        self.close_pixels = 0  # pixels looked at closely, at their scale (for the benchmark)
        self.close_looks = 0

    def __enter__(self) -> FrameDetector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown()

    def __call__(self, frame: av.VideoFrame, geometry: FrameGeometry) -> Detections:
        # FFmpeg's scaler and every crop run here: never two threads on one frame
        images = _Scaled(frame, geometry)
        scale = min(1.0, OTHER_SIDE / max(geometry.width, geometry.height))
        others = None
        if self.others:
            others = self._pool.submit(_each, self.others, images.image(scale))
        found = self._faces(frame, geometry, images) if self.faces else Detections.empty()
        if others is not None:
            people = images.to_stored(others.result(), scale)
            self._people = [_rect(b) for b in people.of_class(TargetClass.PERSON).xyxy]
            found = Detections.merge([people, found])
        return found.clipped(geometry.width, geometry.height)

    def _faces(self, frame: av.VideoFrame, geometry: FrameGeometry, images: _Scaled) -> Detections:
        width, height = geometry.width, geometry.height
        whole = (0, 0, width, height)
        if width * height * NEAR_SCALE**2 <= WHOLE_NEAR_PIXELS:
            return self._look(frame, geometry, [(whole, NEAR_SCALE)])
        attention = self._attention
        if attention is None or (attention.width, attention.height) != (width, height):
            attention = self._attention = Attention(width, height, self.settings, geometry.turns)
            self._people = []
        base_image = images.image(BASE_SCALE)
        base = images.to_stored(
            self._pool.submit(_each, self.faces, base_image, 1.0).result(), BASE_SCALE
        )
        large = [_rect(b) for b in base.xyxy]
        places = attention.places(planes(frame)[0], self._people, large)
        close = self._look(frame, geometry, [(whole, NEAR_SCALE)] if places is None else places)
        faces = _dedupe(Detections.merge([base, close]))
        attention.seen(faces)
        return faces

    def _look(
        self, frame: av.VideoFrame, geometry: FrameGeometry, places: list[tuple[Rect, float]]
    ) -> Detections:
        """Faces in each place (a rectangle of the stored frame, at its scale), the places
        looked at side by side."""
        looks = []
        for (x1, y1, x2, y2), scale in [t for place in places for t in _tiled(place)]:
            image = crop_bgr(frame, (x1, y1, x2, y2))
            image = np.ascontiguousarray(np.rot90(image, geometry.turns))
            crop = FrameGeometry(x2 - x1, y2 - y1, geometry.turns)
            looks.append((crop, x1, y1, self._pool.submit(_each, self.faces, image, scale)))
            self.close_pixels += round(area((x1, y1, x2, y2)) * scale**2)
        self.close_looks += len(looks)
        return Detections.merge(
            _offset(crop.boxes_to_stored(look.result()), x1, y1) for crop, x1, y1, look in looks
        )


def _tiled(place: tuple[Rect, float]) -> list[tuple[Rect, float]]:
    """A place too large for one look (the detector's memory grows with its input) as
    tiles that overlap by more than the largest face the scale is for."""
    (x1, y1, x2, y2), scale = place
    most = int(MAX_LOOK_SIDE / scale)
    return [
        ((left, top, right, bottom), scale)
        for top, bottom in _spans(y1, y2, most)
        for left, right in _spans(x1, x2, most)
    ]


def _spans(low: int, high: int, most: int) -> list[tuple[int, int]]:
    """[low, high) as the fewest even spans of at most `most` that overlap by TILE_OVERLAP."""
    if high - low <= most:
        return [(low, high)]
    count = -(-(high - low - TILE_OVERLAP) // (most - TILE_OVERLAP))
    side = -(-(high - low + (count - 1) * TILE_OVERLAP) // count)
    side += side % 2
    step = (high - low - side) / (count - 1)
    starts = [low + int(i * step) // 2 * 2 for i in range(count)]
    return [(start, min(high, start + side)) for start in starts]


class _Scaled:
    """The frame scaled by FFmpeg's scaler and shown upright, once per size."""

    def __init__(self, frame: av.VideoFrame, geometry: FrameGeometry) -> None:
        self.frame, self.geometry = frame, geometry
        self._images: dict[tuple[int, int], Frame] = {}

    def _size(self, scale: float) -> FrameGeometry:
        g = self.geometry
        return g.resized(max(2, round(g.width * scale)), max(2, round(g.height * scale)))

    def image(self, scale: float) -> Frame:
        small = self._size(scale)
        size = (small.width, small.height)
        if size not in self._images:
            whole = self._images.get((self.geometry.width, self.geometry.height))
            if whole is not None and small.turns == 0:
                image = cv2.resize(whole, size, interpolation=cv2.INTER_AREA)
            else:
                image = np.ascontiguousarray(np.rot90(to_bgr(self.frame, *size), small.turns))
            self._images[size] = image
        return self._images[size]

    def to_stored(self, found: Detections, scale: float) -> Detections:
        """Boxes found in `image(scale)`, in the stored frame."""
        small = self._size(scale)
        stored = small.boxes_to_stored(found)
        return stored.scaled(self.geometry.width / small.width, self.geometry.height / small.height)


def _each(detectors: list, image: Frame, scale: float | None = None) -> Detections:  # type: ignore[type-arg]
    if scale is None:
        return Detections.merge(d.detect(image) for d in detectors)
    return Detections.merge(d.detect_at(image, scale) for d in detectors)


def _offset(found: Detections, x: int, y: int) -> Detections:
    shift = np.array([x, y, x, y], dtype=np.float32)
    return Detections(found.xyxy + shift, found.score, found.class_id, found.track_id)


def _dedupe(found: Detections) -> Detections:
    """One box per face where looks overlap (the best scored)."""
    if len(found) < 2:
        return found
    return found[np.array(nms(found.xyxy, found.score, MERGE_IOU), dtype=np.int64)]


def _rect(box: npt.NDArray[np.float32]) -> Rect:
    return (int(box[0]), int(box[1]), int(np.ceil(box[2])), int(np.ceil(box[3])))
