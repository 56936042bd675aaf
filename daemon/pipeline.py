"""The redaction pipeline: probe, detect, track, mask, encode, verify, publish.

Detection needs the whole clip before anything is masked (see `tracker`), so a clip with
dynamic targets is read twice: pass one decodes and detects on every n-th frame, keeping
only boxes; pass two decodes again, masks and encodes. No frames are held in memory, so
memory stays flat whatever the clip's length. A clip with only static regions is read once
and runs no detector.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from privmask.adapters import models
from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.detectors import build_detector
from privmask.adapters.detectors.base import Detector
from privmask.adapters.video import (
    EncoderSettings,
    Transcoder,
    VideoError,
    VideoInfo,
    decode_frames,
    planes,
    probe,
    to_bgr,
    verify_output,
)
from privmask.daemon.masking import ClassStyle, MaskRenderer
from privmask.daemon.report import build_report
from privmask.daemon.tracker import Track, TrackerSettings, fill, link
from privmask.rules.plan import RedactionPlan

# (pass name, frames done, frames expected); the CLI draws a progress bar from it
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Redaction:
    """What one redaction did: enough for the report and the package manifest."""

    source: VideoInfo
    output: VideoInfo
    frames: int
    tracks: tuple[Track, ...]
    settings: TrackerSettings
    masked_area: float  # mean fraction of the frame area masked
    models: tuple[tuple[str, str], ...]  # (registry name, sha256)


def redact(
    source: Path,
    target: Path,
    plan: RedactionPlan,
    encoder: EncoderSettings = EncoderSettings(),
    models_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Redaction:
    """Write a redacted copy of `source` to `target`, or nothing at all.

    The copy is written under a temporary name beside `target` and renamed into place only
    after it has been decoded back in full, so a reader never sees a partial file.
    """
    info = probe(source)
    detectors = load_detectors(plan, models_dir)
    sightings: dict[int, Detections] = {}
    if detectors:
        sightings = detect(source, info, detectors, plan.detect_every, progress)
    settings = tracker_settings(plan, info)
    tracks = link(sightings, settings)
    with _staging(target) as staging:
        frames, masked = render(source, staging, info, plan, tracks, settings, encoder, progress)
        output = verify_output(staging, frames, info.duration_s)
        os.replace(staging, target)
    return Redaction(
        source=info,
        output=dataclasses.replace(output, path=target),
        frames=frames,
        tracks=tuple(tracks),
        settings=settings,
        masked_area=masked,
        models=tuple((name, models.spec_for(name).sha256) for name, _ in detectors),
    )


def write_report(redaction: Redaction, plan: RedactionPlan, path: Path) -> None:
    import json

    report = build_report(redaction, plan)
    with _staging(path) as staging:
        staging.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(staging, path)


def load_detectors(
    plan: RedactionPlan, models_dir: str | os.PathLike[str] | None
) -> list[tuple[str, Detector]]:
    """Resolve and load every model the plan needs, before any work starts."""
    loaded = []
    for target in plan.targets:
        name = target.model or models.DEFAULT_MODEL[TargetClass.parse(target.target)]
        path = models.resolve(name, models_dir)
        loaded.append((name, build_detector(name, path, target.min_score)))
    return loaded


def tracker_settings(plan: RedactionPlan, info: VideoInfo) -> TrackerSettings:
    fps = float(info.frame_rate) or 25.0
    return TrackerSettings(
        max_gap=max(plan.detect_every, round(plan.hold_seconds * fps)),
        lead=plan.detect_every + round(plan.fill_seconds * fps),
        tail=plan.detect_every + round(plan.fill_seconds * fps),
        frame_size=(info.width, info.height),
        max_edge_frames=round(10 * fps),
    )


def detect(
    source: Path,
    info: VideoInfo,
    detectors: list[tuple[str, Detector]],
    every: int,
    progress: Progress | None = None,
) -> dict[int, Detections]:
    """Pass one: detections on every `every`-th frame and on the last one, by frame index."""
    sightings: dict[int, Detections] = {}
    last_index, last_frame = -1, None
    for index, frame in enumerate(decode_frames(source)):
        last_index, last_frame = index, frame
        if index % every == 0:
            sightings[index] = _detect_frame(frame, info, detectors)
            last_frame = None
        if progress:
            progress("detect", index + 1, info.estimated_frames)
    if last_frame is not None:
        sightings[last_index] = _detect_frame(last_frame, info, detectors)
    return sightings


def _detect_frame(frame, info: VideoInfo, detectors: list[tuple[str, Detector]]) -> Detections:  # type: ignore[no-untyped-def]
    """Detect in the frame as a viewer sees it (upright), in stored-frame coordinates."""
    turns = (info.rotation // 90) % 4
    image = np.ascontiguousarray(np.rot90(to_bgr(frame, info.width, info.height), turns))
    found = Detections.merge(d.detect(image) for _, d in detectors)
    if turns:
        found = unrotate(found, turns, info.width, info.height)
    return found.clipped(info.width, info.height)


def unrotate(dets: Detections, turns: int, width: int, height: int) -> Detections:
    """Map boxes found in the upright (display) image back to stored-frame coordinates."""
    corners = display_to_stored(dets.xyxy.reshape(-1, 2), turns, width, height).reshape(-1, 4)
    boxes = np.concatenate(
        [np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])],
        axis=1,
    )
    return Detections(boxes.astype(np.float32), dets.score, dets.class_id, dets.track_id)


def display_to_stored(points: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Points of an image shown turned `turns` x 90 degrees counter-clockwise, in the stored
    frame (`width` x `height`). One turn (np.rot90) shows stored (x, y) at (y, W - x)."""
    points = np.asarray(points, dtype=np.float64)
    for step in range(turns):
        # undo the last turn first; before it, the image had the other orientation
        stored_width = width if (turns - 1 - step) % 2 == 0 else height
        points = np.stack([stored_width - points[:, 1], points[:, 0]], axis=1)
    return points


def render(
    source: Path,
    staging: Path,
    info: VideoInfo,
    plan: RedactionPlan,
    tracks: list[Track],
    settings: TrackerSettings,
    encoder: EncoderSettings,
    progress: Progress | None = None,
) -> tuple[int, float]:
    """Pass two: mask every frame and encode; return (frames written, mean masked area)."""
    turns, size = (info.rotation // 90) % 4, (info.width, info.height)
    styles = {
        TargetClass.parse(t.target): ClassStyle(t.style, t.shape, t.padding) for t in plan.targets
    }
    renderer = MaskRenderer(
        info.width,
        info.height,
        styles,
        [
            display_to_stored(np.array(region.in_pixels(*_display_size(info))), turns, *size)
            for region in plan.regions
        ],
        plan.region_style,
        plan.strength,
    )
    transcoder = Transcoder(source, staging, encoder, info)
    try:
        masks = fill(tracks, settings)
        masked_total = 0.0
        for index, frame in enumerate(transcoder.frames()):
            masked_total += renderer.render(planes(frame), masks.get(index))
            transcoder.write(frame)
            if progress:
                progress("mask", index + 1, info.estimated_frames)
        transcoder.finish()
    except BaseException:
        transcoder.close()
        raise
    frames = transcoder.frames_written
    if info.declared_frames and frames < info.declared_frames:
        raise VideoError(f"{source}: truncated: {frames} of {info.declared_frames} frames decode")
    return frames, masked_total / max(1, frames)


def _display_size(info: VideoInfo) -> tuple[int, int]:
    return (info.height, info.width) if (info.rotation // 90) % 2 else (info.width, info.height)


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A hidden temporary name beside `target`, removed unless the caller renamed it."""
    staging = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.partial{target.suffix}")
    try:
        yield staging
    finally:
        staging.unlink(missing_ok=True)
