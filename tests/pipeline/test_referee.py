"""No leaked box on real footage: privmask must mask every box a denser referee finds.

The referee (`privmask.daemon.testing.referee`) runs privmask's own detectors on every
frame, on a larger input and at a lower threshold. On the shared real clips its boxes are
stored in tests/pipeline/referee/ (the referee takes minutes there; regenerate them with
`.venv/bin/python bench/referee_report.py --write`), pinned to the clip's and the models'
sha256; on the synthetic CCTV-like scene it runs here, and the ground truth tells its false
positives apart. Privmask itself runs in every test run, as `offline.redact` with a plan of
the classes judged and its defaults otherwise. A box is covered when >= 80 % of its
informative pixels are masked (`testing.coverage`).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.video import planes
from privmask.daemon.pipeline.masking import ClassStyle, MaskRenderer
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.testing import (
    COVERED,
    REGENERATE,
    SHARED_CLIPS,
    Annotations,
    Box,
    Coverage,
    FrameBox,
    Image,
    Judged,
    Referee,
    Scene,
    StaleAnnotations,
    check_coverage,
    covered_fraction,
    group_runs,
    load_annotations,
    read_frames,
    split_by_truth,
    write_frames,
    write_scene,
)
from privmask.rules.plan import MaskShape, MaskStyle, RedactionPlan, TargetPlan

pytestmark = pytest.mark.slow

ANNOTATIONS = Path(__file__).parent / "referee"
ONE_BY_ONE = "intel_one-by-one-person-detection.mp4"
CAR = "intel_car-detection.mp4"


def plan_of(*targets: str, style: MaskStyle = MaskStyle.BLUR) -> RedactionPlan:
    return RedactionPlan(targets=tuple(TargetPlan(t, style=style) for t in targets))


def load_stored(media_dir: Path, name: str) -> tuple[Path, Annotations]:
    clip = media_dir / name
    try:
        return clip, load_annotations(ANNOTATIONS / f"{clip.stem}.json", clip, SHARED_CLIPS[name])
    except StaleAnnotations as exc:
        pytest.fail(str(exc))


# --- the judge and the bookkeeping, on small real clips --------------------------------


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("small")
    source = folder / "in.mp4"
    scene = write_scene(source, width=640, height=360, seconds=2.0, cctv=True)
    return folder, source, scene


def masked_copy(source: Path, target: Path, scene: Scene, style: MaskStyle, shift: float) -> None:
    """The clip with privmask's own masks drawn over the true face boxes, moved right by
    `shift` of their width, and encoded as privmask encodes (crf 20)."""
    look = {TargetClass.FACE: ClassStyle(style, MaskShape.BOX, 0.0)}
    renderer = MaskRenderer(scene.width, scene.height, look)
    out = []
    for index, image in enumerate(read_frames(source)):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        boxes = [t.boxes[index] for t in scene.targets if t.boxes[index] is not None]
        moved = [
            (x1 + shift * (x2 - x1), y1, x2 + shift * (x2 - x1), y2) for x1, y1, x2, y2 in boxes
        ]
        renderer.render(
            planes(frame), Detections.create(moved, [1.0] * len(moved), TargetClass.FACE)
        )
        out.append(frame.to_ndarray(format="bgr24"))
    write_frames(target, out, fps=scene.fps, size=(scene.width, scene.height), crf=20)


@pytest.mark.parametrize("style", list(MaskStyle))
def test_a_box_is_covered_when_a_mask_hides_it_and_not_when_half_of_it_shows(
    small_scene, style: MaskStyle
) -> None:  # type: ignore[no-untyped-def]
    folder, source, scene = small_scene
    whole, half, plain = (folder / f"{style}-{name}.mp4" for name in ("whole", "half", "plain"))
    masked_copy(source, whole, scene, style, 0.0)
    masked_copy(source, half, scene, style, 0.5)
    write_frames(plain, read_frames(source), fps=scene.fps, size=(640, 360), crf=20)
    before = list(read_frames(source))
    faces = list(scene.visible("face", min_size=16))
    assert len(faces) > 100

    def covered(path: Path) -> list[float]:
        return [
            covered_fraction(before[i], a, b) for (i, _, b), a in zip(faces, picked(path, faces))
        ]

    hidden, halved, untouched = covered(whole), covered(half), covered(plain)
    # re-encoding alone never looks masked; a whole mask always does, half of one never
    assert max(untouched) < 0.2
    assert sum(f >= COVERED for f in hidden) >= 0.97 * len(faces), sorted(hidden)[:10]
    assert sum(f < COVERED for f in halved) >= 0.97 * len(faces), sorted(halved)[-10:]


def picked(path: Path, faces: list[tuple[int, str, Box]]) -> list[Image]:
    frames = list(read_frames(path))
    return [frames[i] for i, _, _ in faces]


def test_uncovered_boxes_group_into_runs_by_class_place_and_time() -> None:
    def miss(frame: int, target: str, box: tuple[int, int, int, int]) -> Judged:
        return Judged(FrameBox(frame, target, box, 0.5), 0.0)

    runs = group_runs(
        [
            miss(10, "plate", (100, 100, 126, 110)),
            miss(11, "plate", (100, 120, 126, 130)),  # moved 20 px: a fast plate
            miss(13, "plate", (101, 138, 127, 148)),  # one frame not found
            miss(11, "plate", (400, 300, 426, 310)),  # another plate, far away
            miss(12, "face", (100, 120, 126, 130)),  # another class at the same place
            miss(30, "plate", (100, 150, 126, 160)),  # much later
        ]
    )
    described = [(r.target, r.first, r.last, len(r.boxes)) for r in runs]
    assert described == [
        ("plate", 10, 13, 3),
        ("plate", 11, 11, 1),
        ("face", 12, 12, 1),
        ("plate", 30, 30, 1),
    ]
    assert runs[0].heights == (10, 10)


def test_stale_annotations_are_refused_with_the_command_that_regenerates_them(
    media_dir: Path, tmp_path: Path
) -> None:
    clip = media_dir / CAR
    stored = json.loads((ANNOTATIONS / "intel_car-detection.json").read_text())
    cases = {
        "another clip": {**stored, "clip_sha256": "0" * 64},
        "other models": {
            **stored,
            "referee": {**stored["referee"], "models": [{"name": "hyperlpr-plate", "sha256": "1"}]},
        },
        "other settings": {
            **stored,
            "referee": {**stored["referee"], "settings": [{"min_score": 0.9}]},
        },
    }
    for what, data in cases.items():
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(StaleAnnotations) as caught:
            load_annotations(path, clip, SHARED_CLIPS[CAR])
        assert REGENERATE in str(caught.value), what
    with pytest.raises(StaleAnnotations, match="no referee annotations"):
        load_annotations(tmp_path / "missing.json", clip, SHARED_CLIPS[CAR])


# --- privmask against the referee ------------------------------------------------------


def judged(media_dir: Path, models_dir: Path, folder: Path, name: str) -> Coverage:
    clip, boxes = load_stored(media_dir, name)
    output = folder / f"{clip.stem}.mp4"
    redact(clip, output, plan_of(*SHARED_CLIPS[name]), models_dir=models_dir)
    return check_coverage(clip, output, boxes.judged)


@pytest.fixture(scope="module")
def one_by_one(media_dir: Path, models_dir: Path, tmp_path_factory) -> Coverage:  # type: ignore[no-untyped-def]
    return judged(media_dir, models_dir, tmp_path_factory.mktemp("one"), ONE_BY_ONE)


def assert_covered(coverage: Coverage, target: str, at_least: int) -> None:
    boxes, missed, runs = coverage.counts().get(target, (0, 0, 0))
    print(coverage.summary())
    assert boxes >= at_least  # the referee found what it found when the figures were taken
    assert missed == 0, coverage.summary()


def test_every_referee_face_on_the_one_by_one_clip_is_masked(one_by_one: Coverage) -> None:
    assert_covered(one_by_one, "face", at_least=700)


def test_every_referee_person_on_the_one_by_one_clip_is_masked(one_by_one: Coverage) -> None:
    assert_covered(one_by_one, "person", at_least=1100)


def test_every_referee_plate_on_the_car_clip_is_masked(
    media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    assert_covered(judged(media_dir, models_dir, tmp_path, CAR), "plate", at_least=100)


def test_every_face_the_referee_finds_on_the_cctv_scene_is_masked(
    models_dir: Path, tmp_path: Path
) -> None:
    source, output = tmp_path / "cctv.mp4", tmp_path / "out.mp4"
    scene = write_scene(source, cctv=True)  # faces only: the face-only plan's own scene
    redact(source, output, plan_of("face"), models_dir=models_dir)
    found, _ = Referee(["face"], models_dir).run(source)
    real, false = split_by_truth(found, scene)
    print(f"cctv: {len(real)} referee faces on targets, {len(false)} referee false positives")
    assert len(real) > 600
    coverage = check_coverage(source, output, real)
    assert coverage.uncovered == [], coverage.summary()
