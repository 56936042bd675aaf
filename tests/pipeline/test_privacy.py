"""Privacy first: on clips with exact ground truth, no face is left visible in any frame.

The clips are built by `privmask.daemon.testing`: real faces (the public-domain astronaut)
from 20 px up, some entering at the frame edges, one passing behind a pillar, and real
people from Intel's sample footage walking across, all at known positions. The same scene
is also rendered like a cheap CCTV camera (dim, soft, noisy, heavily compressed).
The redaction runs as a user runs it: the `privmask` command with its defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from privmask.daemon.testing import (
    CHANGE_SIGMA,
    CHANGE_THRESHOLD,
    Scene,
    is_masked,
    person_sprites_from_media,
    read_frames,
    write_scene,
)

pytestmark = pytest.mark.slow


def background_changed(scene: Scene, frames: list[np.ndarray], out: list[np.ndarray]) -> float:
    """Share of the pixels away from every target (margin: half a box) that changed."""
    changed = total = 0
    for index, (before, after) in enumerate(zip(frames, out, strict=True)):
        away = np.ones(before.shape[:2], dtype=bool)
        for target in scene.targets:
            box = target.full_boxes[index]
            if box is None:
                continue
            x1, y1, x2, y2 = box
            mx, my = (x2 - x1) // 2, (y2 - y1) // 2
            away[max(0, y1 - my) : y2 + my, max(0, x1 - mx) : x2 + mx] = False
        # a blur is linear: the blurred difference is the difference of the blurred frames,
        # at half the cost (and a max over channels by hand: numpy's axis=2 max is slow)
        difference = cv2.subtract(before, after, dtype=cv2.CV_32F)
        blurred = np.abs(cv2.GaussianBlur(difference, (0, 0), CHANGE_SIGMA))
        most = np.maximum(np.maximum(blurred[..., 0], blurred[..., 1]), blurred[..., 2])
        moved = most > CHANGE_THRESHOLD
        changed += int(moved[away].sum())
        total += int(away.sum())
    return changed / total


def run_redact(source: Path, folder: Path, models_dir: Path, *options: str):  # type: ignore[no-untyped-def]
    """Redact as a user does; the output's frames and the JSON report."""
    output, report = folder / "out.mp4", folder / "report.json"
    argv = ["redact", source, output, *options, "--report", report]
    done = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, "PRIVMASK_MODELS": str(models_dir)},
    )
    assert done.returncode == 0, done.stderr
    return list(read_frames(output)), json.loads(report.read_text())


@pytest.fixture(scope="module", params=["clean", "cctv"])
def scene(request, media_dir: Path, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp(request.param)
    source = folder / "in.mp4"
    made = write_scene(
        source, person_sprites=person_sprites_from_media(media_dir), cctv=request.param == "cctv"
    )
    return request.param, made, source, list(read_frames(source))


@pytest.fixture(scope="module")
def redacted(scene, models_dir: Path, tmp_path_factory):  # type: ignore[no-untyped-def]
    look, made, source, before = scene
    after, report = run_redact(
        source, tmp_path_factory.mktemp(f"{look}-out"), models_dir, "--detect", "face,person"
    )
    return look, made, before, after, report


def test_every_face_of_20px_or_more_is_masked_in_every_frame(redacted) -> None:  # type: ignore[no-untyped-def]
    look, scene, before, after, _ = redacted
    leaks = [
        (index, target_id)
        for index, target_id, box in scene.visible("face", min_size=20)
        if not is_masked(before[index], after[index], box)
    ]
    appearances = sum(1 for _ in scene.visible("face", min_size=20))
    print(f"{look}: face recall {1 - len(leaks) / appearances:.4f} of {appearances} appearances")
    assert appearances > 500
    assert leaks == []


def test_people_are_masked(redacted) -> None:  # type: ignore[no-untyped-def]
    look, scene, before, after, _ = redacted
    appearances = list(scene.visible("person", min_size=20))
    masked = sum(is_masked(before[i], after[i], box) for i, _, box in appearances)
    recall = masked / len(appearances)
    print(f"{look}: person recall {recall:.4f} of {len(appearances)} appearances")
    # the misses are narrow strips of a person walking behind another one
    assert recall >= 0.95


def test_background_stays_mostly_untouched(redacted) -> None:  # type: ignore[no-untyped-def]
    look, scene, before, after, report = redacted
    changed = background_changed(scene, before, after)
    area = report["totals"]["masked_area_mean"]
    print(f"{look}: background changed {changed:.4f}; mean masked area {area}")
    assert changed < 0.05


def test_faces_only_mask_at_most_2_percent_of_the_background(  # type: ignore[no-untyped-def]
    scene, models_dir: Path, tmp_path: Path
) -> None:
    # a solid fill changes every pixel it covers, so what changed is what was masked
    look, made, source, before = scene
    after, report = run_redact(source, tmp_path, models_dir, "--detect", "face", "--style", "solid")
    masked = background_changed(made, before, after)
    leaks = [
        (index, target_id)
        for index, target_id, box in made.visible("face", min_size=20)
        if not is_masked(before[index], after[index], box)
    ]
    totals = report["totals"]
    print(
        f"{look}, faces only: background masked {masked:.4f}; "
        f"{totals['dropped_tracks']} tracks ({totals['dropped_boxes']} boxes) dropped: "
        f"{totals['dropped_by_reason']}"
    )
    assert leaks == []
    assert masked <= 0.02
    assert len(report["dropped"]) == totals["dropped_tracks"]


def test_report_lists_every_track(redacted) -> None:  # type: ignore[no-untyped-def]
    _, scene, _, _, report = redacted
    classes = report["totals"]["tracks_by_class"]
    assert classes.get("face", 0) >= len({t.id for t in scene.targets if t.kind == "face"})
    assert classes.get("person", 0) >= 3
    for track in report["tracks"]:
        assert (
            track["masked_from"]
            <= track["first_frame"]
            <= track["last_frame"]
            <= track["masked_to"]
        )
        assert len(track["boxes"]) == track["sightings"]
    assert [m["name"] for m in report["models"]] == ["yunet", "yolox-nano"]
