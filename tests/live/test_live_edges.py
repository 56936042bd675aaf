"""Live, on the shared real clips: a mask follows a target the detector saw once, and stays
on people entering or leaving at a frame edge until they are wholly outside, as offline.

The cases are those of tests/pipeline/test_masks_follow_motion.py
(`privmask.daemon.testing.edges`), streamed through a real camera (gst-rtsp-server playing
the excerpt) to a real RTSP server (FFmpeg listen mode), masked by `LiveCamera` as the
daemon runs it. Every frame arrives, in order, so the i-th frame received is the excerpt's
i-th. The cases stream at the same time, each with its own camera, masker and server: a
stream plays in real time (about 9 s), and together they take the time of one.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from peers import CameraServer, Viewer, wait_for

from privmask.daemon.live.camera import LiveCamera, LiveOutputs, LiveSettings
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
from privmask.rules.plan import RedactionPlan, TargetPlan

pytestmark = pytest.mark.slow

ONCE = LiveSettings(backoff_initial_s=10.0, backoff_max_s=10.0)  # the clip once, no reconnection
PEOPLE = RedactionPlan(targets=(TargetPlan("face"), TargetPlan("person")))
PLATES = RedactionPlan(targets=(TargetPlan("plate"),))
PLATE = "plate_seen_once"
# one stream's peers are set up at a time: their free ports are probed, then bound
SETTING_UP = threading.Lock()

Streamed = dict[str, tuple[Path, Future[list[np.ndarray]]]]


def stream_live(clip: Path, plan: RedactionPlan, models_dir: Path) -> list[np.ndarray]:
    """The clip played by a camera and masked live; the masked frames as a viewer gets them."""
    with SETTING_UP:
        viewer = Viewer().start()
        server = CameraServer(clip).start()
    try:
        camera = LiveCamera(server.url, plan, LiveOutputs(viewer.url), ONCE, models_dir)
        camera.start()
        ended = wait_for(lambda: camera.status.failures >= 1, timeout_s=60)  # the clip ended
        status = camera.status
        camera.stop()
    finally:
        server.stop()
    viewer.join(30)
    assert ended and not viewer.error, (status, viewer.error)
    return [r.image for r in viewer.frames if r.image is not None]


@pytest.fixture(scope="module")
def streamed(
    media_dir: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Streamed:
    """Each case's excerpt, and its masked frames (or what went wrong, raised by `result()`
    in the case's own test)."""
    folder = tmp_path_factory.mktemp("edges")
    clips: dict[str, tuple[Path, RedactionPlan]] = {}
    for case, (first, last, _, _) in PEOPLE_AT_EDGES.items():
        clips[case] = excerpt(media_dir / PEOPLE_CLIP, folder / f"{case}.mp4", first, last), PEOPLE
    # the excerpt keeps the detector's phase (every third frame from 0)
    plate = excerpt(media_dir / PLATE_CLIP, folder / f"{PLATE}.mp4", *PLATE_EXCERPT)
    clips[PLATE] = plate, PLATES
    with ThreadPoolExecutor(len(clips)) as pool:
        return {
            case: (clip, pool.submit(stream_live, clip, plan, models_dir))
            for case, (clip, plan) in clips.items()
        }


@pytest.mark.parametrize("case", sorted(PEOPLE_AT_EDGES))
def test_live_people_at_an_edge_stay_masked_until_wholly_outside(
    case: str, streamed: Streamed
) -> None:
    clip, masked = streamed[case]
    after = masked.result()
    before = list(read_frames(clip))
    assert len(after) == len(before)
    assert unmasked_people(case, before, after) == []


def test_live_plate_seen_once_stays_masked_while_the_car_drives_on(
    streamed: Streamed, models_dir: Path
) -> None:
    clip, masked = streamed[PLATE]
    after = masked.result()
    before = list(read_frames(clip))
    assert len(after) == len(before)
    shown, judged = unmasked_plates(before, after, models_dir)
    assert judged >= 20  # the referee sees the plate on nearly every frame
    assert shown == []
