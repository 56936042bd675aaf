"""Every detector plug-in, run on real models and real pixels.

Faces: the public-domain astronaut crop (daemon/testing/assets/face_astronaut.png) pasted at known
places onto frames of Intel's parking-lot clip, which has no visible faces. People and a
licence plate: frames of Intel's sample clips whose boxes were read off by eye once.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from privmask.adapters.detections import Detections, TargetClass, box_iou
from privmask.adapters.detectors import build_detector
from privmask.adapters.detectors.base import Detector
from privmask.adapters.detectors.yunet import YuNetFaceDetector
from privmask.adapters.models import resolve

Image = npt.NDArray[Any]  # a BGR uint8 frame; OpenCV and PyAV return untyped arrays

SHARED = Path(__file__).resolve().parents[3] / "shared"
MODELS = Path(os.environ.get("PRIVMASK_MODELS") or SHARED / "models")
MEDIA = SHARED / "media"
ASSETS = Path(__file__).resolve().parents[2] / "daemon" / "testing" / "assets"
FACE_FILE = ASSETS / "face_astronaut.png"
# Cheek to cheek, hairline to chin inside the 103x120 sprite (measured by eye, 5x zoom).
FACE_IN_SPRITE = np.array([17.5, 21.6, 86.5, 114.0], dtype=np.float32)

FACE_MODELS = ["yunet", "centerface"]
PERSON_MODELS = ["yolox-nano", "light-person"]
ALL_MODELS = [*FACE_MODELS, *PERSON_MODELS, "hyperlpr-plate"]

# Read off frames of intel_one-by-one-person-detection.mp4 (768x432) on a 50 px grid.
PERSON_FRAMES = {
    300: (383.0, 5.0, 540.0, 382.0),  # man in black, back to the camera
    1050: (385.0, 5.0, 520.0, 380.0),  # woman in a grey cardigan
}
EMPTY_ROOM_FRAME = 0
# intel_car-detection.mp4 (768x432): the red car's rear plate, read off a 4x zoom.
PLATE_FRAME, PLATE_BOX = 210, (391.0, 332.0, 420.0, 343.0)
FACE_FREE_FRAMES = (0, 100, 210, 300)


def detector(name: str) -> Detector:
    """A fresh detector: YuNet alternates its scale from call to call (`upscale_every`)."""
    return build_detector(name, resolve(name, MODELS))


@cache
def video_frames(filename: str, indices: tuple[int, ...]) -> dict[int, Image]:
    wanted, found = set(indices), {}
    with av.open(str(MEDIA / filename)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                found[index] = frame.to_ndarray(format="bgr24")
            if len(found) == len(wanted):
                break
    if len(found) != len(wanted):
        raise RuntimeError(f"{filename}: frames {sorted(wanted - set(found))} not found")
    return found


def car_frame(index: int) -> Image:
    return video_frames("intel_car-detection.mp4", (*FACE_FREE_FRAMES, PLATE_FRAME))[index]


def person_frame(index: int) -> Image:
    return video_frames("intel_one-by-one-person-detection.mp4", (EMPTY_ROOM_FRAME, 300, 1050))[
        index
    ]


@cache
def face_sprite() -> Image:
    sprite = cv2.imread(str(FACE_FILE), cv2.IMREAD_COLOR)
    if sprite is None:
        raise FileNotFoundError(FACE_FILE)
    return sprite


def paste_face(frame: Image, height: int, x: int, y: int) -> npt.NDArray[np.float32]:
    """Paste the face so its face box is `height` px high, top-left of the sprite at (x, y).

    Returns the face box in frame pixels.
    """
    scale = height / float(FACE_IN_SPRITE[3] - FACE_IN_SPRITE[1])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    sprite = cv2.resize(face_sprite(), None, fx=scale, fy=scale, interpolation=interpolation)
    h, w = sprite.shape[:2]
    frame[y : y + h, x : x + w] = sprite
    return FACE_IN_SPRITE * scale + np.array([x, y, x, y], dtype=np.float32)


def best_iou(found: Detections, truth: npt.ArrayLike) -> float:
    if len(found) == 0:
        return 0.0
    return float(box_iou(np.asarray(truth, dtype=np.float32).reshape(1, 4), found.xyxy).max())


def check_valid(found: Detections, frame: Image, target: TargetClass) -> None:
    height, width = frame.shape[:2]
    assert isinstance(found, Detections)
    assert found.xyxy.dtype == np.float32 and found.score.dtype == np.float32
    assert np.all(found.class_id == int(target))
    assert np.all((found.xyxy[:, 0] >= 0) & (found.xyxy[:, 2] <= width))
    assert np.all((found.xyxy[:, 1] >= 0) & (found.xyxy[:, 3] <= height))
    assert np.all(found.xyxy[:, 2] > found.xyxy[:, 0]) and np.all(
        found.xyxy[:, 3] > found.xyxy[:, 1]
    )


@pytest.mark.parametrize("name", FACE_MODELS)
@pytest.mark.parametrize("height", [24, 48, 96])
def test_face_found_where_pasted(name: str, height: int) -> None:
    frame = cv2.resize(car_frame(0), (1280, 720))
    truths = [paste_face(frame, height, x, y) for x, y in ((140, 120), (620, 400), (1000, 200))]
    found = detector(name).detect(frame)
    check_valid(found, frame, TargetClass.FACE)
    hits = [best_iou(found, truth) > 0.3 for truth in truths]
    # CenterFace scores 24 px faces near its threshold (65% pass in our measurement).
    needed = 2 if (name, height) == ("centerface", 24) else 3
    assert sum(hits) >= needed, (hits, found.xyxy, found.score)
    assert len(found) <= len(truths) + 1


def test_yunet_upscale_reaches_20px_faces() -> None:
    """At native size YuNet misses most 20 px faces; 1.5x upscaling finds them."""
    frame = cv2.resize(car_frame(100), (1280, 720))
    truths = [paste_face(frame, 20, x, y) for x, y in ((200, 150), (700, 500), (1100, 300))]
    yunet = YuNetFaceDetector(resolve("yunet", MODELS), upscale=1.5, upscale_every=2)
    first, second, third = (yunet.detect(frame) for _ in range(3))
    check_valid(first, frame, TargetClass.FACE)
    for found in (first, third):  # calls 1, 3, 5... are upscaled
        assert all(best_iou(found, t) > 0.3 for t in truths), (found.xyxy, found.score)
    assert sum(best_iou(second, t) > 0.3 for t in truths) < 3  # at 1.0 most are missed


@pytest.mark.parametrize("name", FACE_MODELS)
def test_face_models_quiet_on_face_free_footage(name: str) -> None:
    total = 0
    for index in FACE_FREE_FRAMES:
        frame = cv2.resize(car_frame(index), (1280, 720))
        total += len(detector(name).detect(frame))
    assert total <= 1


@pytest.mark.parametrize("name", FACE_MODELS)
@pytest.mark.parametrize("size", [(1000, 562), (1920, 1080), (333, 517)])
def test_face_boxes_in_frame_coordinates(name: str, size: tuple[int, int]) -> None:
    """Odd sizes (not multiples of 32, portrait, above max_side) map back to frame pixels."""
    width, height = size
    frame = cv2.resize(car_frame(300), size)
    face = max(48, height // 8)
    truth = paste_face(frame, face, width // 2 + 13, height // 3 + 7)
    found = detector(name).detect(frame)
    check_valid(found, frame, TargetClass.FACE)
    assert best_iou(found, truth) > 0.5, (truth, found.xyxy)


@pytest.mark.parametrize("name", PERSON_MODELS)
@pytest.mark.parametrize("index", sorted(PERSON_FRAMES))
def test_person_found(name: str, index: int) -> None:
    frame = person_frame(index)
    found = detector(name).detect(frame)
    check_valid(found, frame, TargetClass.PERSON)
    assert best_iou(found, PERSON_FRAMES[index]) > 0.5, found.xyxy


@pytest.mark.parametrize("name", PERSON_MODELS)
def test_person_boxes_in_frame_coordinates(name: str) -> None:
    frame = cv2.resize(person_frame(300), (1000, 562))
    truth = np.array(PERSON_FRAMES[300]) * [1000 / 768, 562 / 432, 1000 / 768, 562 / 432]
    found = detector(name).detect(frame)
    check_valid(found, frame, TargetClass.PERSON)
    assert best_iou(found, truth) > 0.5, found.xyxy


@pytest.mark.parametrize("name", PERSON_MODELS)
def test_no_person_in_empty_room(name: str) -> None:
    assert len(detector(name).detect(person_frame(EMPTY_ROOM_FRAME))) == 0


def test_plate_found() -> None:
    frame = car_frame(PLATE_FRAME)
    found = detector("hyperlpr-plate").detect(frame)
    check_valid(found, frame, TargetClass.PLATE)
    assert best_iou(found, PLATE_BOX) > 0.3, (found.xyxy, found.score)


def test_plate_boxes_in_frame_coordinates() -> None:
    frame = cv2.resize(car_frame(PLATE_FRAME), (1000, 562))
    truth = np.array(PLATE_BOX) * [1000 / 768, 562 / 432, 1000 / 768, 562 / 432]
    found = detector("hyperlpr-plate").detect(frame)
    check_valid(found, frame, TargetClass.PLATE)
    assert best_iou(found, truth) > 0.3, (found.xyxy, found.score)


def test_no_plate_in_empty_lot() -> None:
    assert len(detector("hyperlpr-plate").detect(car_frame(0))) == 0


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 640, 3), (720, 1280, 3), (17, 31, 3), (1, 1, 3)])
def test_empty_and_black_frames_give_empty_detections(name: str, shape: tuple[int, ...]) -> None:
    found = detector(name).detect(np.zeros(shape, dtype=np.uint8))
    assert isinstance(found, Detections) and len(found) == 0


@pytest.mark.parametrize("name", ALL_MODELS)
def test_wrong_frame_layout_is_refused(name: str) -> None:
    """A grey or float frame is a caller's bug; finding nothing would leave it unmasked."""
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector(name).detect(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector(name).detect(np.zeros((64, 64, 3), dtype=np.float32))


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("yunet", TargetClass.FACE),
        ("centerface", TargetClass.FACE),
        ("yolox-nano", TargetClass.PERSON),
        ("light-person", TargetClass.PERSON),
        ("hyperlpr-plate", TargetClass.PLATE),
    ],
)
def test_build_detector_maps_registry_names(name: str, target: TargetClass) -> None:
    built = build_detector(name, resolve(name, MODELS), min_score=0.77)
    assert built.name == name
    assert built.classes == frozenset({target})
    assert built.min_score == pytest.approx(0.77)  # type: ignore[attr-defined]
    assert detector(name).min_score < 0.77  # type: ignore[attr-defined]


def test_build_detector_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="no detector for model 'retinaface'"):
        build_detector("retinaface", MODELS / "retinaface.onnx")


def test_bad_settings_are_refused() -> None:
    path = resolve("yunet", MODELS)
    for kwargs in ({"min_score": 1.5}, {"max_side": 8}, {"upscale": 0.0}, {"upscale_every": 0}):
        with pytest.raises(ValueError):
            YuNetFaceDetector(path, **kwargs)  # type: ignore[arg-type]


def test_yunet_looks_at_a_frame_doubled_to_find_14px_faces() -> None:
    """`detect_at` enlarges by exactly the scale asked (the pipeline's close looks)."""
    frame = cv2.resize(car_frame(100), (1280, 720))
    truths = [paste_face(frame, 14, x, y) for x, y in ((200, 150), (700, 500), (1100, 300))]
    yunet = YuNetFaceDetector(resolve("yunet", MODELS))
    doubled = yunet.detect_at(frame, 2.0)
    check_valid(doubled, frame, TargetClass.FACE)
    assert all(best_iou(doubled, t) > 0.3 for t in truths), (doubled.xyxy, doubled.score)
    assert sum(best_iou(yunet.detect_at(frame, 1.0), t) > 0.3 for t in truths) < 3  # at 1x: missed


@pytest.mark.parametrize("name", FACE_MODELS)
@pytest.mark.parametrize("scale", [0.5, 1.0, 1.5])
def test_faces_found_at_any_scale_are_in_frame_coordinates(name: str, scale: float) -> None:
    frame = cv2.resize(car_frame(300), (333, 517))
    truth = paste_face(frame, round(64 / scale), 101, 173)
    found = detector(name).detect_at(frame, scale)  # type: ignore[attr-defined]
    check_valid(found, frame, TargetClass.FACE)
    assert best_iou(found, truth) > 0.5, (truth, found.xyxy)


@pytest.mark.parametrize("name", FACE_MODELS)
def test_a_scale_that_is_no_size_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="scale must be positive"):
        detector(name).detect_at(car_frame(0), 0.0)  # type: ignore[attr-defined]


ONNX_FRAMES = {
    "yunet": lambda: cv2.resize(car_frame(100), (1280, 720)),
    "yolox-nano": lambda: person_frame(300),
    "light-person": lambda: person_frame(1050),
    "hyperlpr-plate": lambda: car_frame(PLATE_FRAME),
}


@pytest.mark.parametrize("name", sorted(ONNX_FRAMES))
def test_one_inference_thread_finds_what_the_default_finds(name: str) -> None:
    """The pipeline runs models side by side with one thread each: same boxes."""
    frame = ONNX_FRAMES[name]()
    if name == "yunet":
        paste_face(frame, 40, 300, 200)
    default = build_detector(name, resolve(name, MODELS)).detect(frame)
    single = build_detector(name, resolve(name, MODELS), threads=1).detect(frame)
    assert len(default) >= 1
    np.testing.assert_allclose(single.xyxy, default.xyxy, atol=0.5)
    np.testing.assert_allclose(single.score, default.score, atol=1e-3)
