"""The real pictures pasted into synthetic scenes, and where the face or person is in each.

Faces: scikit-image's public-domain astronaut, a sprite shipped in assets/. People: crops of
Intel's CC BY 4.0 sample video, read from the media folder (not shipped).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import cv2

from privmask.daemon.testing.video import Box, Image

ASSETS = Path(__file__).parent / "assets"
FACE_SPRITE_FILE = ASSETS / "face_astronaut.png"
# The face region inside face_astronaut.png (103 x 120 px, a tight crop of the astronaut's
# head), measured once by eye on a 5x zoom: cheek to cheek, hairline to chin. YuNet finds
# (0.13, 0.14, 0.90, 0.94) on the same sprite; its boxes run a little wider than the skin.
FACE_SPRITE_SHAPE = (120, 103)
FACE_BOX_FRACTION = (0.17, 0.18, 0.84, 0.95)


class PersonSprite(NamedTuple):
    """A BGR crop holding one person, and that person's box within the crop."""

    image: Image
    box: Box


def load_face_sprite() -> Image:
    sprite = cv2.imread(str(FACE_SPRITE_FILE), cv2.IMREAD_COLOR)
    if sprite is None:
        raise FileNotFoundError(FACE_SPRITE_FILE)
    if sprite.shape[:2] != FACE_SPRITE_SHAPE:
        # The face box is hard-coded for this exact crop; a new crop needs a new measurement.
        raise ValueError(f"{FACE_SPRITE_FILE.name} is {sprite.shape[:2]}, not {FACE_SPRITE_SHAPE}")
    return sprite


# Three people seen from behind, standing still, each with the whole body in frame, chosen
# from a contact sheet of every 20th frame of intel_one-by-one-person-detection.mp4 and
# measured on a 2x zoom with a 10 px grid (boxes: head top to shoe soles, elbow to elbow).
PERSON_FRAMES: tuple[tuple[int, Box], ...] = (
    (120, (387, 15, 514, 392)),  # woman, fair hair, long grey cardigan
    (300, (383, 4, 542, 384)),  # man, black jacket and trousers
    (1000, (386, 9, 521, 377)),  # woman, dark hair, grey sweater
)
PERSON_VIDEO = "intel_one-by-one-person-detection.mp4"
PERSON_MARGIN = 10


def person_sprites_from_media(media_dir: str | Path) -> list[PersonSprite]:
    """Crops of the three people in PERSON_FRAMES (the video is CC BY 4.0, Intel Corporation)."""
    wanted = dict(PERSON_FRAMES)
    sprites: dict[int, PersonSprite] = {}
    with av.open(str(Path(media_dir) / PERSON_VIDEO)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 10)
        time_base = stream.time_base or Fraction(1, 90000)
        for index in sorted(wanted):
            # Seek to the keyframe before each wanted frame rather than decode 1000 frames.
            container.seek(int(index / rate / time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if round((frame.time or 0.0) * rate) >= index:
                    sprites[index] = _person_crop(frame.to_ndarray(format="bgr24"), wanted[index])
                    break
    return [sprites[index] for index, _ in PERSON_FRAMES]


def _person_crop(frame: Image, box: Box) -> PersonSprite:
    h, w = frame.shape[:2]
    m = PERSON_MARGIN
    x1, y1 = max(0, box[0] - m), max(0, box[1] - m)
    x2, y2 = min(w, box[2] + m), min(h, box[3] + m)
    inner = (box[0] - x1, box[1] - y1, box[2] - x1, box[3] - y1)
    return PersonSprite(frame[y1:y2, x1:x2].copy(), inner)
