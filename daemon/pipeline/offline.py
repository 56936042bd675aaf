"""The redaction pipeline: probe, detect, track, mask, encode, verify, publish.

Detection needs the whole clip before anything is masked (see `tracker`), so a clip with
dynamic targets is read twice: pass one decodes and detects on every n-th frame, keeping
only boxes; pass two decodes again, masks and encodes. No frames are held in memory, so
memory stays flat whatever the clip's length. A clip with only static regions is read once
and runs no detector.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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
from privmask.daemon.pipeline.masking import ClassStyle, MaskRenderer
from privmask.daemon.pipeline.report import build_report
from privmask.daemon.pipeline.tracker import Track, TrackerSettings, fill, link
from privmask.rules.plan import PlanError, RedactionPlan

# (pass name, frames done, frames expected); the CLI draws a progress bar from it
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Redaction:
    """What one redaction did: enough for the report and the package manifest."""

    source: VideoInfo
    output: VideoInfo
    frames: int
    tracks: tuple[Track, ...]
    settings: dict[TargetClass, TrackerSettings]
    masked_area: float  # mean fraction of the frame area masked
    models: tuple[tuple[str, str], ...]  # (registry name, sha256)


def redact(
    source: Path,
    target: Path,
    plan: RedactionPlan,
    encoder: EncoderSettings = EncoderSettings(),
    models_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    report: Path | None = None,
) -> Redaction:
    """Write a redacted copy of `source` to `target` (and its JSON `report`), or nothing.

    Both are written under hidden temporary names beside their targets, flushed to disk,
    and renamed into place only after the video has been verified, so a reader never sees
    a partial file, and a failure anywhere leaves neither.
    """
    info = probe(source)
    detectors = load_detectors(plan, models_dir)
    sightings: dict[int, Detections] = {}
    if detectors:
        sightings = detect(source, info, detectors, plan.detect_every, progress)
    settings = tracker_settings(plan, info)
    tracks = link(sightings, settings)
    with ExitStack() as stack:
        staging = stack.enter_context(_staging(target))
        report_staging = stack.enter_context(_staging(report)) if report else None
        frames, masked, duration = render(
            source, staging, info, plan, tracks, settings, encoder, progress
        )
        output = verify_output(staging, frames, duration, name=target.name)
        result = Redaction(
            source=info,
            output=dataclasses.replace(output, path=target),
            frames=frames,
            tracks=tuple(tracks),
            settings=settings,
            masked_area=masked,
            models=tuple((name, models.spec_for(name).sha256) for name, _ in detectors),
        )
        if report and report_staging:
            report_staging.write_text(json.dumps(build_report(result, plan), indent=2) + "\n")
            _publish(report_staging, report)
        try:
            _publish(staging, target)
        except BaseException:
            if report is not None:
                report.unlink(missing_ok=True)
            raise
    return result


def _publish(staging: Path, target: Path) -> None:
    """fsync the file, rename it into place, fsync the folder: durable once we return."""
    with staging.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(staging, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_detectors(
    plan: RedactionPlan, models_dir: str | os.PathLike[str] | None
) -> list[tuple[str, Detector]]:
    """Resolve and load every model the plan needs, before any work starts."""
    loaded = []
    for target in plan.targets:
        wanted = TargetClass.parse(target.target)
        name = target.model or models.DEFAULT_MODEL[wanted]
        if models.spec_for(name).detects is not wanted:
            # its boxes would be of another class, and nothing would be masked
            raise PlanError(f"model {name} does not detect {wanted.label}s")
        path = models.resolve(name, models_dir)
        loaded.append((name, build_detector(name, path, target.min_score)))
    return loaded


def tracker_settings(plan: RedactionPlan, info: VideoInfo) -> dict[TargetClass, TrackerSettings]:
    """Per class of target: how long a track may go unseen, and how far masks reach."""
    fps = float(info.frame_rate) or 25.0
    reach = plan.detect_every + round(plan.fill_seconds * fps)
    settings = {}
    for target in plan.targets:
        hold = plan.hold_seconds if target.hold_seconds is None else target.hold_seconds
        settings[TargetClass.parse(target.target)] = TrackerSettings(
            max_gap=max(plan.detect_every, round(hold * fps)),
            lead=reach,
            tail=reach,
            frame_size=(info.width, info.height),
            max_edge_frames=round(10 * fps),
        )
    return settings


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
            sightings[index] = detect_frame(frame, info, detectors)
            last_frame = None
        if progress:
            progress("detect", index + 1, info.estimated_frames)
    if last_frame is not None:
        sightings[last_index] = detect_frame(last_frame, info, detectors)
    return sightings


def detect_frame(frame, info: VideoInfo, detectors: list[tuple[str, Detector]]) -> Detections:  # type: ignore[no-untyped-def]
    """Detect in the frame as a viewer sees it (upright), in stored-frame coordinates."""
    turns = info.turns
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
    settings: dict[TargetClass, TrackerSettings],
    encoder: EncoderSettings,
    progress: Progress | None = None,
) -> tuple[int, float, float]:
    """Pass two: mask every frame and encode.

    Returns the frames written, the mean masked area and the seconds the frames span.
    """
    renderer = build_renderer(plan, info)
    transcoder = Transcoder(source, staging, encoder, info)
    try:
        masks = fill([t for t in tracks if plan.selection.masks(t.track_id)], settings)
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
    # without a frame count, a cut file shows as streams that all stop before the end
    missing = info.duration_s - transcoder.media_end
    if missing > max(0.5, 2 / float(info.frame_rate or 1)):
        raise VideoError(
            f"{source}: truncated: its streams end at {transcoder.media_end:.2f} s "
            f"of {info.duration_s:.2f} s"
        )
    return frames, masked_total / max(1, frames), transcoder.duration_written


def build_renderer(plan: RedactionPlan, info: VideoInfo) -> MaskRenderer:
    """The plan's styles and fixed regions (given as the viewer sees the picture) for frames
    of this clip; a region wholly outside the picture is an error, never skipped."""
    styles = {
        TargetClass.parse(t.target): ClassStyle(t.style, t.shape, t.margin) for t in plan.targets
    }
    regions = []
    for region in plan.regions:
        shown = np.array(region.in_pixels(*info.display_size))
        stored = display_to_stored(shown, info.turns, info.width, info.height)
        regions.append((stored, region.style))
    renderer = MaskRenderer(info.width, info.height, styles, regions, plan.strength)
    if renderer.regions_outside:
        names = ", ".join(plan.regions[i].name or str(i + 1) for i in renderer.regions_outside)
        width, height = info.display_size
        raise PlanError(f"region {names} lies outside the {width}x{height} picture")
    return renderer


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A hidden temporary name beside `target`, removed unless the caller renamed it."""
    staging = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.partial{target.suffix}")
    try:
        yield staging
    finally:
        staging.unlink(missing_ok=True)
