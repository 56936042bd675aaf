"""The online tracker: live masks keep the offline rules at the frame edges."""

from __future__ import annotations

import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.online import OnlineTracker
from privmask.daemon.pipeline.tracker import TrackerSettings

WIDTH, HEIGHT = 640, 360


def _covered(masked: Detections | None, truth: list[float]) -> bool:
    if masked is None:
        return False
    x1, y1, x2, y2 = truth
    return bool(
        (
            (masked.xyxy[:, 0] <= x1)
            & (masked.xyxy[:, 1] <= y1)
            & (masked.xyxy[:, 2] >= x2)
            & (masked.xyxy[:, 3] >= y2)
        ).any()
    )


def test_a_target_leaving_slowly_at_an_edge_stays_masked_after_its_sightings_left_the_window() -> (
    None
):
    # a person 200 px wide walks out at the right edge at 2 px a frame; the detector loses
    # them at frame 60, with 220 px still inside: 110 frames more until they are gone,
    # far longer than the window keeps sightings (hold 12 + tail 12 frames)
    settings = {
        TargetClass.PERSON: TrackerSettings(
            max_gap=12, lead=5, tail=5, frame_size=(WIDTH, HEIGHT), max_edge_frames=250
        )
    }
    tracker = OnlineTracker(settings)
    assert tracker.history < 110
    delay = 20
    shown = []
    for index in range(200):
        if index % 3 == 0:
            seen = Detections.empty()
            if index <= 60:
                box = [300 + 2 * index, 100, 500 + 2 * index, 300]
                seen = Detections.create([box], [0.9], TargetClass.PERSON)
            tracker.add(index, seen)
        leaving = index - delay
        if leaving < 0:
            continue
        x1 = 300 + 2 * leaving
        if x1 < WIDTH:  # part of them is still in the picture
            truth = [x1, 100, min(WIDTH, x1 + 200), 300]
            if not _covered(tracker.boxes(leaving), truth):
                shown.append(leaving)
    assert shown == []
    # and once they are gone, nothing is held for them
    assert tracker.boxes(200) is None
    assert np.isfinite(tracker.history)
