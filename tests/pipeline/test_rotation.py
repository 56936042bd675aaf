"""A phone-style clip stored sideways with a display rotation: faces are found upright and
masked in the right place of the stored frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.testing import FaceSpec, is_masked, render_scene
from privmask.rules.plan import RedactionPlan, Region, TargetPlan

FACES = (
    FaceSpec("still", 64, (0.3, 0.5), (0.0, 0.0)),
    FaceSpec("walking", 48, (0.7, 0.3), (-2.0, 1.0)),
)


@pytest.mark.parametrize("rotation", [90, -90])
def test_faces_in_a_rotated_clip_are_masked(
    rotation: int, models_dir: Path, tmp_path: Path
) -> None:
    scene, frames = render_scene(
        width=640, height=360, fps=25, seconds=1.0, faces=FACES, pillar=None
    )
    upright = list(frames)
    turns = rotation // 90  # np.rot90 turns counter-clockwise, as a display rotation does
    source = tmp_path / "phone.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 360, 640, "yuv420p"
        stream.set_display_rotation(rotation)
        for index, image in enumerate(upright):
            stored = np.ascontiguousarray(np.rot90(image, -turns))  # undone by the player
            frame = av.VideoFrame.from_ndarray(stored, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    output = tmp_path / "out.mp4"
    redact(source, output, RedactionPlan(targets=(TargetPlan("face"),)), models_dir=models_dir)

    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.width == 360
        shown = [np.rot90(f.to_ndarray(format="bgr24"), turns) for f in container.decode(video=0)]
    for index, _, box in scene.visible("face", min_size=20):
        before, after = upright[index], shown[index]
        assert is_masked(before, after, box)


def write_rotated(path: Path, rotation: int, size: tuple[int, int] = (360, 640)) -> None:
    """A clip stored `size` (w, h) with random texture, shown turned by `rotation`."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.set_display_rotation(rotation)
        for index in range(5):
            image = rng.integers(60, 200, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_regions_are_drawn_where_the_viewer_sees_them(rotation: int, tmp_path: Path) -> None:
    source, output = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_rotated(source, rotation)
    # the top fifth of the picture as displayed, solid black
    plan = RedactionPlan(regions=(Region.parse("0,0,1,0.2"),))
    redact(source, output, plan)
    with av.open(str(output)) as container:
        stored = next(container.decode(video=0)).to_ndarray(format="gray")
    shown = np.rot90(stored, rotation // 90)
    band = shown.shape[0] // 5
    assert shown[: band - 2].max() <= 20
    assert shown[band + 2 :].min() >= 40


def test_boxes_found_upright_map_back_to_the_stored_frame() -> None:
    stored = np.zeros((100, 200), dtype=np.uint8)  # 200 wide, 100 high
    stored[10:30, 150:190] = 255
    for turns in range(4):
        shown = np.rot90(stored, turns)
        ys, xs = np.nonzero(shown)
        found = Detections.create(
            [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], [1.0], TargetClass.FACE
        )
        back = FrameGeometry(200, 100, turns).boxes_to_stored(found)
        assert back.xyxy[0].tolist() == [150, 10, 190, 30], turns
