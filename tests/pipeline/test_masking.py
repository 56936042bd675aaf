"""The mask renderer on real yuv420p frames: each style hides the box and only the box."""

from __future__ import annotations

import av
import numpy as np
import pytest

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.video import planes
from privmask.daemon.pipeline.masking import ClassStyle, MaskRenderer
from privmask.rules.plan import MaskShape, MaskStyle

W, H = 320, 240
BOX = [100, 60, 180, 160]  # 80 x 100 px


def textured_frame() -> av.VideoFrame:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")


def render(style: MaskStyle, shape: MaskShape = MaskShape.BOX, padding: float = 0.0):  # type: ignore[no-untyped-def]
    frame = textured_frame()
    before = [p.copy() for p in planes(frame)]
    renderer = MaskRenderer(W, H, {TargetClass.FACE: ClassStyle(style, shape, padding)})
    area = renderer.render(planes(frame), Detections.create([BOX], [0.9], TargetClass.FACE))
    return before, [p.copy() for p in planes(frame)], area


@pytest.mark.parametrize("style", list(MaskStyle))
def test_each_style_destroys_detail_inside_and_nothing_outside(style: MaskStyle) -> None:
    before, after, area = render(style)
    x1, y1, x2, y2 = BOX
    inside_before, inside_after = before[0][y1:y2, x1:x2], after[0][y1:y2, x1:x2]
    # random texture has huge local contrast; a real mask leaves almost none
    assert (
        np.abs(np.diff(inside_after.astype(int), axis=1)).mean()
        < 0.2 * np.abs(np.diff(inside_before.astype(int), axis=1)).mean()
    )
    outside = np.ones((H, W), bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(before[0][outside], after[0][outside])
    assert area == pytest.approx(80 * 100 / (W * H))


def test_ellipse_keeps_the_corners() -> None:
    before, after, _ = render(MaskStyle.SOLID, MaskShape.ELLIPSE)
    x1, y1, x2, y2 = BOX
    assert np.array_equal(before[0][y1, x1], after[0][y1, x1])
    assert (after[0][(y1 + y2) // 2, (x1 + x2) // 2]) == 16
    assert after[1][(y1 + y2) // 4, (x1 + x2) // 4] == 128


def test_padding_grows_the_box_and_stays_in_the_frame() -> None:
    frame = textured_frame()
    renderer = MaskRenderer(
        W, H, {TargetClass.FACE: ClassStyle(MaskStyle.SOLID, MaskShape.BOX, 0.5)}
    )
    renderer.render(planes(frame), Detections.create([[0, 0, 40, 40]], [0.9], TargetClass.FACE))
    y = planes(frame)[0]
    assert (y[:60, :60] == 16).all()
    assert (y[61:, 61:] != 16).any()


def test_static_polygon_only_inside() -> None:
    frame = textured_frame()
    triangle = [(0, 0), (200, 0), (0, 200)]
    renderer = MaskRenderer(W, H, {}, [(triangle, MaskStyle.SOLID)])
    area = renderer.render(planes(frame), None)
    y = planes(frame)[0]
    assert y[10, 10] == 16 and y[150, 150] != 16
    assert area == pytest.approx(200 * 200 / 2 / (W * H), rel=0.05)


def test_classes_without_a_style_are_left_alone() -> None:
    frame = textured_frame()
    before = planes(frame)[0].copy()
    renderer = MaskRenderer(W, H, {TargetClass.FACE: ClassStyle(MaskStyle.SOLID, MaskShape.BOX, 0)})
    renderer.render(planes(frame), Detections.create([BOX], [0.9], TargetClass.PERSON))
    assert np.array_equal(before, planes(frame)[0])


@pytest.mark.parametrize("style", [MaskStyle.BLUR, MaskStyle.PIXELATE])
def test_a_large_box_keeps_only_the_shading_of_the_picture_there(style: MaskStyle) -> None:
    """A person near the camera: the mask of a large box is a few cells of the picture's
    mean shading there (the way it is made fast must not leave more, nor shift it)."""
    width, height, box = 1280, 720, [101, 33, 498, 690]
    rng = np.random.default_rng(2)
    shading = np.linspace(40, 220, width)[None, :] + np.zeros((height, 1))
    noisy = shading + rng.normal(0, 40, (height, width))
    grey = np.clip(noisy, 0, 255).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(np.dstack([grey] * 3), format="bgr24")
    frame = frame.reformat(format="yuv420p")
    before = planes(frame)[0].astype(int)
    renderer = MaskRenderer(
        width, height, {TargetClass.PERSON: ClassStyle(style, MaskShape.BOX, 0)}
    )
    renderer.render(planes(frame), Detections.create([box], [0.9], TargetClass.PERSON))
    x1, y1, x2, y2 = box
    inside_before, inside = before[y1:y2, x1:x2], planes(frame)[0][y1:y2, x1:x2].astype(int)
    # the noise is gone; the shading from left to right stays, column by column
    assert (
        np.abs(np.diff(inside, axis=0)).mean() < 0.1 * np.abs(np.diff(inside_before, axis=0)).mean()
    )
    columns, columns_before = inside.mean(axis=0), inside_before.mean(axis=0)
    assert np.abs(columns - columns_before).max() < 40
    assert abs(inside.mean() - inside_before.mean()) < 2
