"""The review page's preview frame: one frame of the clip masked as the package will be with
the reviewer's current choice (subjects kept visible, areas drawn), from a real analysis of
a real scene, compared with the source and with a real redaction of the clip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from privmask.daemon.pipeline import analysis, offline
from privmask.daemon.review.preview import ClipPreview, PreviewError
from privmask.daemon.testing import is_masked, read_frames
from privmask.rules.plan import Region, TrackSelection

from clip_case import PLAN, Case, decode_jpeg, make_case, mean_difference

FRAME = 20


@pytest.fixture(scope="module")
def case(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Case:
    return make_case(tmp_path_factory.mktemp("preview"), models_dir)


@pytest.fixture(scope="module")
def preview(case: Case) -> ClipPreview:
    return ClipPreview(case.clip())


def box_of(case: Case, subject: int, frame: int = FRAME) -> tuple[int, int, int, int]:
    box = case.boxes[subject][frame]
    assert box is not None
    return box


def test_every_subject_is_masked_until_one_is_kept(case: Case, preview: ClipPreview) -> None:
    source = case.frames[FRAME]
    shown = decode_jpeg(preview.jpeg(preview.choice(str(FRAME), [], [])))
    assert shown.shape == source.shape
    for subject in case.boxes:
        assert is_masked(source, shown, box_of(case, subject)), subject

    kept = decode_jpeg(preview.jpeg(preview.choice(str(FRAME), ["2"], [])))
    # the kept person's pixels are the source's (up to JPEG's loss); the others stay masked
    assert mean_difference(source, kept, box_of(case, 2)) < 3
    assert not is_masked(source, kept, box_of(case, 2))
    for subject in (1, 3):
        assert is_masked(source, kept, box_of(case, subject)), subject


def test_a_drawn_area_is_masked_even_over_a_kept_subject(case: Case, preview: ClipPreview) -> None:
    x1, y1, x2, y2 = box_of(case, 2)
    area = f"{x1 - 4},{y1 - 4},{x2 + 4},{y1 - 4},{x2 + 4},{y2 + 4},{x1 - 4},{y2 + 4}"
    choice = preview.choice(str(FRAME), ["2"], [area])
    assert choice.regions == (
        Region(((x1 - 4, y1 - 4), (x2 + 4, y1 - 4), (x2 + 4, y2 + 4), (x1 - 4, y2 + 4)),
               relative=False, name="area 1", reference_size=preview.size),
    )  # fmt: skip
    shown = decode_jpeg(preview.jpeg(choice))
    assert is_masked(case.frames[FRAME], shown, (x1, y1, x2, y2))


def test_the_preview_is_the_frame_the_package_will_have(
    case: Case, preview: ClipPreview, tmp_path: Path
) -> None:
    # a drawn area over the background, subject 1 kept visible
    choice = preview.choice(str(FRAME), ["1"], ["10,300,200,300,200,350,10,350"])
    plan = dataclasses.replace(
        PLAN, selection=TrackSelection("except", frozenset({1})), regions=choice.regions
    )
    assert preview.plan(choice) == plan
    package = tmp_path / "out.mp4"
    offline.redact(case.source, package, plan, analysis=analysis.read(case.folder))
    packaged = list(read_frames(package))[FRAME]
    shown = decode_jpeg(preview.jpeg(choice))
    # the same masks in the same places: only the two encoders' losses differ (another
    # choice differs by about 11 levels over the picture and 34 in a face's box)
    assert mean_difference(packaged, shown, (0, 0, shown.shape[1], shown.shape[0])) < 4
    for subject in case.boxes:
        assert mean_difference(packaged, shown, box_of(case, subject)) < 6, subject
    assert mean_difference(packaged, shown, (10, 300, 200, 350)) < 6


def test_the_default_frame_shows_the_most_subjects(case: Case, preview: ClipPreview) -> None:
    frame = preview.busiest_frame()
    assert all(case.boxes[s][frame] is not None for s in case.boxes)
    assert preview.choice(None, [], []).frame == frame


@pytest.mark.parametrize(
    ("frame", "keep", "regions", "words"),
    [
        ("50", [], [], "frame must be 0..49"),
        ("-1", [], [], "frame must be 0..49"),
        ("x", [], [], "frame must be a whole number"),
        ("3", ["9"], [], "no subject 9 in this clip's analysis (its subjects: 1, 2, 3)"),
        ("3", ["2x"], [], "subject ids are whole numbers"),
        ("3", [], ["1,2,3"], "area 1: expected an even count of at least 4 numbers"),
        ("3", [], ["0,0,10,10,0,10,10,0"], "self-intersecting"),
        ("3", [], ["700,10,800,10,800,50"], "lies outside the 640x360 picture"),
        ("3", [], ["nan,1,2,3"], "not a finite number"),
        ("3", [], ["a,1,2,3"], "expected numbers X1,Y1,X2,Y2"),
    ],
)
def test_bad_choices_are_refused_with_one_line(
    preview: ClipPreview, frame: str, keep: list[str], regions: list[str], words: str
) -> None:
    with pytest.raises(PreviewError) as refused:
        preview.jpeg(preview.choice(frame, keep, regions))
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
