"""On the shared real clips: a mask follows a target the detector saw once, and stays on
targets entering or leaving at a frame edge until they are wholly outside.

Each case is an excerpt of the real footage (`privmask.daemon.testing.edges`: the cases and
their truth, which is not privmask's own detector), redacted as a user runs it: the
`privmask` command with its defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from privmask.daemon.testing import read_frames
from privmask.daemon.testing.edges import (
    PEOPLE_AT_EDGES,
    PEOPLE_CLIP,
    PLATE_CLIP,
    PLATE_EXCERPT,
    excerpt,
    unmasked_people,
    unmasked_plates,
)

pytestmark = pytest.mark.slow


def redact(source: Path, output: Path, detect: str, models_dir: Path) -> list[np.ndarray]:
    done = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "redact", str(source), str(output)]
        + ["--detect", detect, "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "PRIVMASK_MODELS": str(models_dir)},
    )
    assert done.returncode == 0, done.stderr
    return list(read_frames(output))


@pytest.mark.parametrize("case", sorted(PEOPLE_AT_EDGES))
def test_people_at_an_edge_stay_masked_until_wholly_outside(
    case: str, media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    first, last, _, _ = PEOPLE_AT_EDGES[case]
    clip = excerpt(media_dir / PEOPLE_CLIP, tmp_path / "in.mp4", first, last)
    after = redact(clip, tmp_path / "out.mp4", "face,person", models_dir)
    assert unmasked_people(case, list(read_frames(clip)), after) == []


def test_a_plate_seen_once_stays_masked_while_the_car_drives_on(
    media_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    # the excerpt keeps the detector's phase (every third frame from 0)
    clip = excerpt(media_dir / PLATE_CLIP, tmp_path / "in.mp4", *PLATE_EXCERPT)
    after = redact(clip, tmp_path / "out.mp4", "plate", models_dir)
    shown, judged = unmasked_plates(list(read_frames(clip)), after, models_dir)
    assert judged >= 20  # the referee sees the plate on nearly every frame
    assert shown == []
