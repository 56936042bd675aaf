"""Small faces: from 14 px high, masked in every frame, as a user runs privmask.

The scenes are built by `privmask.daemon.testing` (the public-domain astronaut face pasted at
known positions): faces of 14 to 18 px that stand still from the first frame, drift a
fraction of a pixel a frame, walk across, and come in at an edge; and a small 480x270
camera whose faces are 16 px high (a shop camera's view); and a phone clip stored sideways.
Clean footage is judged from 14 px; the CCTV look (dim, soft, noisy, crf 30) from 16 px,
the smallest size masked there in every frame (of 14 px faces, 83-91 % of appearances).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.daemon.testing import (
    FaceSpec,
    Scene,
    is_masked,
    person_sprites_from_media,
    read_frames,
    render_scene,
    write_scene,
)

pytestmark = pytest.mark.slow

SMALL_FACES = (
    FaceSpec("still14", 14, (0.20, 0.30), (0.0, 0.0)),
    FaceSpec("drift14", 14, (0.70, 0.25), (0.3, 0.1)),
    FaceSpec("walk16", 16, (0.35, 0.70), (1.5, 0.0), sway=2.0),
    FaceSpec("still16_late", 16, (0.85, 0.60), (0.0, 0.0), first=0.4),
    FaceSpec("edge18", 18, (-0.01, 0.50), (2.0, 0.0), sway=1.0),
    FaceSpec("walk18", 18, (0.60, 0.85), (-1.2, -0.3), sway=2.0),
)
SHOP_FACES = (
    FaceSpec("shop16a", 16, (0.30, 0.40), (0.4, 0.0), sway=1.0),
    FaceSpec("shop16b", 16, (0.75, 0.35), (-0.3, 0.1)),
    FaceSpec("shop17_entry", 17, (1.02, 0.60), (-1.0, 0.0), first=0.2),
)


def redact(source: Path, output: Path, models_dir: Path, *flags: str) -> None:
    argv = ["redact", str(source), str(output), *flags]
    done = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PRIVMASK_MODELS": str(models_dir)},
    )
    assert done.returncode == 0, done.stderr


def leaks(scene: Scene, source: Path, output: Path, min_size: int) -> list[tuple[int, str]]:
    before, after = list(read_frames(source)), list(read_frames(output))
    shown = list(scene.visible("face", min_size=min_size))
    assert len(shown) > 150
    return [(i, face) for i, face, box in shown if not is_masked(before[i], after[i], box)]


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Scene, Path]]:
    """The small faces' scene in a look ("clean" or "cctv"), made once for the module: the
    clean one is redacted twice, with faces and with faces and people."""
    made: dict[str, tuple[Scene, Path]] = {}

    def scene_of(look: str) -> tuple[Scene, Path]:
        if look not in made:
            source = tmp_path_factory.mktemp(look) / "in.mp4"
            scene = write_scene(
                source, faces=SMALL_FACES, seconds=4.0, cctv=look == "cctv", pillar=None
            )
            made[look] = scene, source
        return made[look]

    return scene_of


@pytest.mark.parametrize(("look", "min_size"), [("clean", 14), ("cctv", 16)])
def test_small_faces_are_masked_in_every_frame(
    look: str,
    min_size: int,
    small_scene: Callable[[str], tuple[Scene, Path]],
    models_dir: Path,
    tmp_path: Path,
) -> None:
    scene, source = small_scene(look)
    output = tmp_path / "out.mp4"
    redact(source, output, models_dir, "--detect", "face")
    assert leaks(scene, source, output, min_size) == []


def test_small_faces_are_masked_with_people_detected_too(
    small_scene: Callable[[str], tuple[Scene, Path]], models_dir: Path, tmp_path: Path
) -> None:
    scene, source = small_scene("clean")
    output = tmp_path / "out.mp4"
    redact(source, output, models_dir, "--detect", "face,person")
    assert leaks(scene, source, output, 14) == []


def test_a_small_camera_masks_its_16px_faces(models_dir: Path, tmp_path: Path) -> None:
    source, output = tmp_path / "in.mp4", tmp_path / "out.mp4"
    scene = write_scene(source, width=480, height=270, faces=SHOP_FACES, seconds=4.0, pillar=None)
    redact(source, output, models_dir, "--detect", "face")
    assert leaks(scene, source, output, 16) == []


@pytest.mark.parametrize("rotation", [90, -90])
def test_small_faces_of_a_clip_stored_sideways_are_masked(
    rotation: int, media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    """People stand upright in the picture shown: their heads, looked at closely, are on
    a side of the stored frame."""
    scene, frames = render_scene(
        seconds=3.0,
        faces=SMALL_FACES,
        person_sprites=person_sprites_from_media(media_dir),
        pillar=None,
    )
    upright = list(frames)
    turns = rotation // 90  # np.rot90 turns counter-clockwise, as a display rotation does
    source, output = tmp_path / "phone.mp4", tmp_path / "out.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 720, 1280, "yuv420p"
        stream.options = {"crf": "18"}
        stream.set_display_rotation(rotation)
        for index, image in enumerate(upright):
            stored = np.ascontiguousarray(np.rot90(image, -turns))  # undone by the player
            frame = av.VideoFrame.from_ndarray(stored, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    redact(source, output, models_dir, "--detect", "face,person")
    with av.open(str(output)) as container:
        shown = [np.rot90(f.to_ndarray(format="bgr24"), turns) for f in container.decode(video=0)]
    leaked = [
        (i, face)
        for i, face, box in scene.visible("face", min_size=14)
        if not is_masked(upright[i], shown[i], box)
    ]
    assert leaked == []
