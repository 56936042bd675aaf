"""Synthetic scenes with exact ground truth: sprites moving over a background, on camera.

Real footage has no annotations, so the tests, the benchmark and the demo paste real faces
and people (see `sprites`) onto a textured background at known, moving positions, and keep
every box. The clip is written with the same encoder a camera would use (H.264, yuv420p),
so detectors see compression artefacts; `cctv=True` adds the look of a cheap camera.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from privmask.daemon.testing.sprites import FACE_BOX_FRACTION, PersonSprite, load_face_sprite
from privmask.daemon.testing.video import Box, Image, write_frames


@dataclass(frozen=True)
class FaceSpec:
    """One pasted face: its face-box height, and a straight path with a vertical sway.

    start is the face-box centre in frame fractions (outside 0..1 starts off-frame);
    velocity is in pixels per frame; first and last are fractions of the clip's length.
    """

    id: str
    height: int
    start: tuple[float, float]
    velocity: tuple[float, float]
    sway: float = 0.0
    first: float = 0.0
    last: float = 1.0


# Designed for 1280x720 and 150 frames; the paths keep the sprites apart from one another.
DEFAULT_FACES: tuple[FaceSpec, ...] = (
    FaceSpec("face20", 20, (0.16, 0.21), (1.2, 0.2), sway=3.0),
    FaceSpec("face28", 28, (0.86, 0.17), (-1.6, 0.4), sway=2.0),
    FaceSpec("face40_left_entry", 40, (-0.03, 0.85), (6.0, 0.0), sway=4.0),
    FaceSpec("face64_pillar", 64, (0.33, 0.555), (3.2, 0.0)),
    FaceSpec("face120_mid_clip", 120, (0.78, 0.58), (-0.8, 0.3), sway=5.0, first=0.3, last=0.75),
    FaceSpec("face48_right_entry", 48, (1.04, 0.35), (-8.0, 0.0), first=0.2),
)
# A solid grey pillar in front of everything, in frame fractions; face64_pillar walks behind it.
DEFAULT_PILLAR = (0.50, 0.44, 0.56, 0.78)
PILLAR_COLOUR = (90, 95, 100)

CLEAN_CRF = 18
# 30, not 33-35: at crf 33 x264 flattens the sensor noise of static areas away entirely
# (frame-to-frame change 0.6 levels against 0.4 for the clean clip), at 30 it stays (2.0).
CCTV_CRF = 30


@dataclass(frozen=True)
class Target:
    """Ground truth of one pasted face or person, one entry per frame.

    boxes: the bounding box of the visible part (clipped to the frame, without what the
    pillar or a later sprite hides; a cover across the middle leaves both sides, so the box
    spans the cover); None when nothing of it is visible. full_boxes: where it really is, unclipped,
    None when it is not in the scene. occluded: fraction of its in-frame area hidden.
    """

    kind: str
    id: str
    boxes: tuple[Box | None, ...]
    full_boxes: tuple[Box | None, ...]
    occluded: tuple[float, ...]


@dataclass(frozen=True)
class Scene:
    """A written clip's size, timing and the ground truth of everything pasted into it."""

    width: int
    height: int
    fps: int
    frame_count: int
    targets: tuple[Target, ...]

    def visible(self, kind: str, min_size: int = 0) -> Iterator[tuple[int, str, Box]]:
        """(frame index, target id, visible box) wherever the visible box is min_size high."""
        for target in self.targets:
            if target.kind != kind:
                continue
            for index, box in enumerate(target.boxes):
                if box is not None and box[3] - box[1] >= min_size:
                    yield index, target.id, box


@dataclass(frozen=True)
class _Placement:
    """Where one sprite goes in every frame (top-left, None when absent)."""

    kind: str
    id: str
    sprite: Image
    inner: Box  # the target's box inside the sprite
    origins: tuple[tuple[int, int] | None, ...]


class _Sprite(NamedTuple):
    image: Image
    inner: Box


def _scaled(image: Image, inner: tuple[float, float, float, float], scale: float) -> _Sprite:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, size, interpolation=interpolation)
    x1, y1, x2, y2 = inner
    box = (round(x1 * scale), round(y1 * scale), round(x2 * scale), round(y2 * scale))
    return _Sprite(resized, box)


def _face_placement(
    spec: FaceSpec, face: Image, width: int, height: int, fps: int, n: int
) -> _Placement:
    sh, sw = face.shape[:2]
    fx1, fy1, fx2, fy2 = FACE_BOX_FRACTION
    scale = spec.height / ((fy2 - fy1) * sh)
    sprite = _scaled(face, (fx1 * sw, fy1 * sh, fx2 * sw, fy2 * sh), scale)
    first, last = round(spec.first * n), round(spec.last * n)
    ix1, iy1, ix2, iy2 = sprite.inner
    origins: list[tuple[int, int] | None] = []
    for i in range(n):
        if not first <= i < last:
            origins.append(None)
            continue
        t = i - first
        cx = spec.start[0] * width + spec.velocity[0] * t
        cy = spec.start[1] * height + spec.velocity[1] * t
        cy += spec.sway * math.sin(2 * math.pi * i / (3 * fps))
        origins.append((round(cx - (ix1 + ix2) / 2), round(cy - (iy1 + iy2) / 2)))
    return _Placement("face", spec.id, sprite.image, sprite.inner, tuple(origins))


def _person_placement(k: int, person: PersonSprite, width: int, height: int, n: int) -> _Placement:
    """People cross the lower frame one after another, alternately from left and right."""
    x1, y1, x2, y2 = person.box
    sprite = _scaled(person.image, person.box, 0.5 * height / (y2 - y1))
    ix1, iy1, ix2, iy2 = sprite.inner
    from_left = k % 2 == 0
    speed = (3.0 + k) * (1 if from_left else -1)
    first = round(0.2 * k * n)
    start = -ix2 if from_left else width - ix1
    top = round(0.97 * height) - iy2
    origins = tuple(
        (round(start + speed * (i - first)), top) if i >= first else None for i in range(n)
    )
    return _Placement("person", f"person{k}", sprite.image, sprite.inner, origins)


def _intersect(a: Box, b: Box) -> Box | None:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None


def _visible_box(full: Box, frame: Box, covers: Iterable[Box]) -> tuple[Box | None, float]:
    """Bounding box of the part of `full` inside the frame and under no cover; hidden share."""
    inside = _intersect(full, frame)
    if inside is None:
        return None, 0.0
    x1, y1, x2, y2 = inside
    seen = np.ones((y2 - y1, x2 - x1), dtype=bool)
    for cover in covers:
        hit = _intersect(inside, cover)
        if hit is not None:
            seen[hit[1] - y1 : hit[3] - y1, hit[0] - x1 : hit[2] - x1] = False
    hidden = 1.0 - float(seen.mean())
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    if len(rows) == 0:
        return None, 1.0
    return (
        x1 + int(cols[0]),
        y1 + int(rows[0]),
        x1 + int(cols[-1]) + 1,
        y1 + int(rows[-1]) + 1,
    ), hidden


def _ground_truth(
    placements: Sequence[_Placement], pillar: Box | None, w: int, h: int, n: int
) -> tuple[Target, ...]:
    """Targets in drawing order: each is hidden by every sprite drawn after it and the pillar."""
    targets: list[Target] = []
    for k, p in enumerate(placements):
        boxes: list[Box | None] = []
        fulls: list[Box | None] = []
        hidden: list[float] = []
        for i in range(n):
            full = _sprite_rect(p, i, inner=True)
            covers = [r for q in placements[k + 1 :] if (r := _sprite_rect(q, i)) is not None]
            if pillar is not None:
                covers.append(pillar)
            box, share = _visible_box(full, (0, 0, w, h), covers) if full else (None, 0.0)
            fulls.append(full)
            boxes.append(box)
            hidden.append(share)
        targets.append(Target(p.kind, p.id, tuple(boxes), tuple(fulls), tuple(hidden)))
    return tuple(targets)


def _sprite_rect(p: _Placement, i: int, inner: bool = False) -> Box | None:
    origin = p.origins[i]
    if origin is None:
        return None
    x, y = origin
    if inner:
        return (x + p.inner[0], y + p.inner[1], x + p.inner[2], y + p.inner[3])
    sh, sw = p.sprite.shape[:2]
    return (x, y, x + sw, y + sh)


def _paste(frame: Image, sprite: Image, x: int, y: int) -> None:
    h, w = frame.shape[:2]
    sh, sw = sprite.shape[:2]
    hit = _intersect((x, y, x + sw, y + sh), (0, 0, w, h))
    if hit is not None:
        x1, y1, x2, y2 = hit
        frame[y1:y2, x1:x2] = sprite[y1 - y : y2 - y, x1 - x : x2 - x]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> npt.NDArray[Any]:
    """Value noise: random values on a coarse grid, upscaled smoothly to h x w, in -1..1."""
    grid = rng.uniform(-1, 1, (max(2, h * cells // w), cells, 3)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


class _Background:
    """A fixed camera's view: gradients, textured noise, static boxes and a swaying patch.

    Built once from its own random stream, so the background does not depend on the faces
    and a clip without faces renders the exact same background for comparison.
    """

    SWAY = 8

    def __init__(self, w: int, h: int, fps: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 1])
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.empty((h, w, 3), np.float32)
        for c, (a, b) in enumerate(rng.uniform(60, 190, (3, 2))):
            base[..., c] = a + (b - a) * (0.6 * ys / h + 0.4 * xs / w)
        base += 35 * _smooth_noise(rng, h, w, 12) + 12 * _smooth_noise(rng, h, w, 80)
        for _ in range(7):
            x, y = int(rng.integers(0, w - w // 8)), int(rng.integers(0, h - h // 8))
            bw, bh = int(rng.integers(w // 20, w // 6)), int(rng.integers(h // 20, h // 5))
            box = base[y : y + bh, x : x + bw]  # a view; may be cut by the frame edge
            texture = _smooth_noise(rng, box.shape[0], box.shape[1], 20)
            box[:] = rng.uniform(30, 230, 3) + 10 * texture
        self.base = np.clip(base, 0, 255).astype(np.uint8)
        # The "foliage" patch (top right) sways sideways with a 4 s period.
        self.patch = (w - w // 4, 0, w // 4, h // 4)  # x, y, width, height
        pw, ph = self.patch[2] + 2 * self.SWAY, self.patch[3]
        leaves = 110 + 60 * _smooth_noise(rng, ph, pw, 40) + 25 * _smooth_noise(rng, ph, pw, 120)
        leaves[..., 1] += 30
        self.leaves = np.clip(leaves, 0, 255).astype(np.uint8)
        self.fps = fps

    def render(self, i: int) -> Image:
        frame = self.base.copy()
        x, y, pw, ph = self.patch
        shift = self.SWAY + round(self.SWAY * math.sin(2 * math.pi * i / (4 * self.fps)))
        frame[y : y + ph, x : x + pw] = self.leaves[:, shift : shift + pw]
        return frame


class _Camera:
    """What the sensor does: a slow brightness drift; for CCTV also gamma, blur and noise."""

    NOISE_SIGMA = 10.0
    NOISE_MARGIN = 32

    def __init__(self, w: int, h: int, fps: int, seed: int, cctv: bool) -> None:
        self.fps, self.cctv = fps, cctv
        self.rng = np.random.default_rng([seed, 2])
        if cctv:
            # Grain of about 2 px, mostly in luma: finer noise would not survive crf 33.
            m = self.NOISE_MARGIN
            fields = []
            for _ in range(3):
                grain = self.rng.normal(0, self.NOISE_SIGMA, ((h + m) // 2, (w + m) // 2, 1))
                grain = grain + self.rng.normal(0, self.NOISE_SIGMA / 3, (*grain.shape[:2], 3))
                fields.append(cv2.resize(grain, (w + m, h + m), interpolation=cv2.INTER_LINEAR))
            self.noise = np.round(np.stack(fields)).astype(np.int16)

    def expose(self, frame: Image, i: int) -> Image:
        gain = 1.0 + 0.06 * math.sin(2 * math.pi * i / (5 * self.fps))
        levels = np.arange(256, dtype=np.float32) / 255 * gain
        if self.cctv:
            levels = 0.85 * levels**1.6  # a dark, contrasty cheap sensor
        out = cv2.LUT(frame, np.clip(levels * 255, 0, 255).astype(np.uint8))
        if not self.cctv:
            return out
        out = cv2.GaussianBlur(out, (0, 0), 0.9)
        h, w = out.shape[:2]
        # A few noise fields at random offsets give fresh noise every frame for the price of
        # an add (drawing 2.7 M normal samples per frame would dominate generation time).
        k, dx, dy = self.rng.integers(0, [3, self.NOISE_MARGIN, self.NOISE_MARGIN])
        noisy = out.astype(np.int16) + self.noise[k, dy : dy + h, dx : dx + w]
        return np.clip(noisy, 0, 255).astype(np.uint8)


def render_scene(
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    seconds: float = 6.0,
    faces: Sequence[FaceSpec] = DEFAULT_FACES,
    person_sprites: Sequence[PersonSprite] = (),
    pillar: tuple[float, float, float, float] | None = DEFAULT_PILLAR,
    cctv: bool = False,
    seed: int = 0,
) -> tuple[Scene, Iterator[Image]]:
    """The ground truth, and the uncompressed BGR frames that `write_scene` would encode.

    Drawing order: background, people, faces (in the given order), pillar; a later one
    hides an earlier one, and the ground truth says so.
    """
    n = round(seconds * fps)
    placements = [_person_placement(k, p, width, height, n) for k, p in enumerate(person_sprites)]
    if faces:
        face = load_face_sprite()
        placements += [_face_placement(s, face, width, height, fps, n) for s in faces]
    pillar_box = None
    if pillar is not None:
        x1, y1, x2, y2 = pillar
        pillar_box = (round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height))
    scene = Scene(width, height, fps, n, _ground_truth(placements, pillar_box, width, height, n))

    def frames() -> Iterator[Image]:
        background = _Background(width, height, fps, seed)
        camera = _Camera(width, height, fps, seed, cctv)
        for i in range(n):
            frame = background.render(i)
            for p in placements:
                if (origin := p.origins[i]) is not None:
                    _paste(frame, p.sprite, *origin)
            if pillar_box is not None:
                px1, py1, px2, py2 = pillar_box
                frame[py1:py2, px1:px2] = PILLAR_COLOUR
            yield camera.expose(frame, i)

    return scene, frames()


def write_scene(
    path: str | Path,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    seconds: float = 6.0,
    faces: Sequence[FaceSpec] = DEFAULT_FACES,
    person_sprites: Sequence[PersonSprite] = (),
    pillar: tuple[float, float, float, float] | None = DEFAULT_PILLAR,
    cctv: bool = False,
    seed: int = 0,
    crf: int | None = None,
    audio: bool = False,
) -> Scene:
    """Write an H.264 MP4 (yuv420p, constant fps) of a synthetic scene; return its ground truth.

    crf defaults to CLEAN_CRF or, with cctv, CCTV_CRF (heavily compressed, like a cheap camera).
    audio adds a mono AAC 440 Hz tone as long as the video, to check that audio survives.
    """
    scene, frames = render_scene(
        width=width,
        height=height,
        fps=fps,
        seconds=seconds,
        faces=faces,
        person_sprites=person_sprites,
        pillar=pillar,
        cctv=cctv,
        seed=seed,
    )
    quality = crf if crf is not None else (CCTV_CRF if cctv else CLEAN_CRF)
    write_frames(path, frames, fps=fps, crf=quality, audio=audio, size=(width, height))
    return scene
