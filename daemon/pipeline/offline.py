"""Offline redaction of a clip: probe, detect, track, mask, encode, verify, publish.

Detection needs the whole clip before anything is masked (see `tracker`), so a clip with
dynamic targets is read twice: pass one decodes and detects on every n-th frame, keeping
only boxes; pass two decodes again, masks and encodes. No frames are held in memory, so
memory stays flat whatever the clip's length. A clip with only static regions is read once
and runs no detector. A clip whose picture size changes part way is detected on and masked
at each part's own size (see `parts`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import av

from privmask.adapters import files, models
from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.transcode import Transcoder, verify_output
from privmask.adapters.video import EncoderSettings, VideoError, VideoInfo, decode_frames, probe
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.parts import PartMasker, PartSizes, detect_part
from privmask.daemon.pipeline.report import Redaction, build_report
from privmask.daemon.pipeline.setup import NamedDetector, load_detectors, tracker_settings
from privmask.daemon.pipeline.tracker import Track, TrackerSettings, fill, link
from privmask.rules.plan import RedactionPlan

# (pass name, frames done, frames expected); the CLI draws a progress bar from it
Progress = Callable[[str, int, int], None]


def redact(
    source: Path,
    target: Path,
    plan: RedactionPlan,
    encoder: EncoderSettings = EncoderSettings(),
    models_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    report: Path | None = None,
    overwrite: bool = False,
) -> Redaction:
    """Write a redacted copy of `source` to `target` (and its JSON `report`), or nothing.

    Both are written under hidden temporary names beside their targets, flushed to disk,
    and renamed into place only after the video has been verified, so a reader never sees
    a partial file, and a failure anywhere leaves neither. An existing `target` or `report`
    is replaced only with `overwrite` (FileExistsError otherwise).
    """
    info = probe(source)
    detectors = load_detectors(plan, models_dir)
    sightings: dict[int, Detections] = {}
    sizes: PartSizes | None = None  # the picture sizes detection saw, when it ran
    if detectors:
        sizes = PartSizes(source)
        sightings = detect(source, info, detectors, plan.detect_every, sizes, progress)
    settings = tracker_settings(plan, FrameGeometry.of(info), info.frame_rate)
    tracks = link(sightings, settings)
    with ExitStack() as stack:
        staging = stack.enter_context(files.staging(target))
        report_staging = stack.enter_context(files.staging(report)) if report else None
        frames, masked, duration = render(
            source, staging, target.name, info, plan, tracks, settings, encoder, sizes, progress
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
            files.publish(report_staging, report, overwrite=overwrite)
        try:
            files.publish(staging, target, overwrite=overwrite)
        except BaseException:
            if report is not None:
                report.unlink(missing_ok=True)
            raise
    return result


def detect(
    source: Path,
    info: VideoInfo,
    detectors: list[NamedDetector],
    every: int,
    sizes: PartSizes,
    progress: Progress | None = None,
) -> dict[int, Detections]:
    """Pass one: detections by frame index, in the clip's geometry, on every `every`-th
    frame, the first and last frame of each part of another picture size, and the last one.
    `sizes` records the size of every frame, for pass two to check."""
    geometry = FrameGeometry.of(info)
    sightings: dict[int, Detections] = {}
    unseen: tuple[int, av.VideoFrame] | None = None  # the latest frame not detected on
    for index, frame in enumerate(decode_frames(source)):
        new_part = sizes.record(index, frame.width, frame.height)
        if new_part and unseen is not None:
            # a part's last frame: tracks must not carry its boxes across the change on a guess
            sightings[unseen[0]] = detect_part(unseen[1], geometry, detectors)
        if index % every == 0 or new_part:
            sightings[index] = detect_part(frame, geometry, detectors)
            unseen = None
        else:
            unseen = (index, frame)
        if progress:
            progress("detect", index + 1, info.estimated_frames)
    if unseen is not None:
        sightings[unseen[0]] = detect_part(unseen[1], geometry, detectors)
    return sightings


def render(
    source: Path,
    staging: Path,
    name: str,
    info: VideoInfo,
    plan: RedactionPlan,
    tracks: list[Track],
    settings: dict[TargetClass, TrackerSettings],
    encoder: EncoderSettings,
    sizes: PartSizes | None,
    progress: Progress | None = None,
) -> tuple[int, float, float]:
    """Pass two: mask every frame at its own size and encode; with `sizes` (detection ran),
    a frame of another size than pass one saw fails the job.

    `name` is what messages call the output (`staging` is its hidden temporary name).
    Returns the frames written, the mean masked area and the seconds the frames span.
    """
    masker = PartMasker(plan, FrameGeometry.of(info), source)
    transcoder = Transcoder(source, staging, encoder, info, name=name)
    try:
        masks = fill([t for t in tracks if plan.selection.masks(t.track_id)], settings)
        masked_total = 0.0
        for index, frame in enumerate(transcoder.frames()):
            if sizes is not None:
                sizes.check(index, frame.width, frame.height)
            masked_total += masker.render(index, frame, masks.get(index))
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
