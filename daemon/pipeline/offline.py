"""Offline redaction of a clip: probe, detect, track, mask, encode, verify, publish.

Detection needs the whole clip before anything is masked (see `tracker`), so a clip with
dynamic targets is read twice: pass one decodes and detects on every n-th frame, keeping
only boxes; pass two decodes again, masks and encodes. No frames are held in memory (a few
wait in queues), so memory stays flat whatever the clip's length. A clip with only static
regions is read once and runs no detector. A clip whose picture size changes part way is
detected on and masked at each part's own size (see `parts`).

Pass one is the analysis (`analysis`): tracks are linked with fixed settings and grouped
into subjects, whose ids a plan's selection names; a redaction from a saved analysis skips
it. The plan's hold is applied when masks are filled (`hold`).

Both passes keep the two cores busy: in pass one a thread decodes ahead while the models
run side by side (`detection`: the whole picture halved, close looks only where small faces
can be); in pass two a thread decodes ahead and another encodes while frames are masked.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import av

from privmask.adapters import files, models
from privmask.adapters.detections import TargetClass
from privmask.adapters.transcode import Transcoder, verify_output
from privmask.adapters.video import (
    EncoderSettings,
    ReadAhead,
    VideoError,
    VideoInfo,
    decode_frames,
    probe,
)
from privmask.daemon.pipeline.analysis import Analysis, detection_settings
from privmask.daemon.pipeline.detection import FrameDetector, NamedDetector, load_detectors
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.hold import LINK_HOLD_SECONDS, bridge
from privmask.daemon.pipeline.motion import Picture
from privmask.daemon.pipeline.parts import PartMasker, PartSizes, detect_part
from privmask.daemon.pipeline.report import Redaction, build_report
from privmask.daemon.pipeline.setup import tracker_settings
from privmask.daemon.pipeline.tracker import Linker, Track, TrackerSettings, fill
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
    analysis: Analysis | None = None,
) -> Redaction:
    """Write a redacted copy of `source` to `target` (and its JSON `report`), or nothing.

    With `analysis` (of this clip, checked by the caller: `analysis.check_usable`), its
    tracks are masked and nothing is detected; otherwise the clip is analysed first. Either
    way the plan's selection names subjects of that analysis.

    Both are written under hidden temporary names beside their targets, flushed to disk,
    and renamed into place only after the video has been verified, so a reader never sees
    a partial file, and a failure anywhere leaves neither. An existing `target` or `report`
    is replaced only with `overwrite` (FileExistsError otherwise).
    """
    info = probe(source)
    if analysis is None:
        analysis = analyse(source, info, plan, models_dir, progress)
    settings = tracker_settings(plan, FrameGeometry.of(info), info.frame_rate)
    sizes = _part_sizes(source, analysis)
    masked = masked_tracks(analysis, plan, info, settings)
    with ExitStack() as stack:
        staging = stack.enter_context(files.staging(target))
        report_staging = stack.enter_context(files.staging(report)) if report else None
        frames, area, duration = render(
            source, staging, target.name, info, plan, masked, settings, encoder, sizes,
            progress,
        )  # fmt: skip
        output = verify_output(staging, frames, duration, name=target.name)
        result = Redaction(
            source=info,
            output=dataclasses.replace(output, path=target),
            frames=frames,
            tracks=analysis.tracks,
            settings=settings,
            masked_area=area,
            models=analysis.models,
            dropped=analysis.dropped,
            subjects=analysis.subjects,
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


def masked_tracks(
    analysis: Analysis,
    plan: RedactionPlan,
    info: VideoInfo,
    settings: dict[TargetClass, TrackerSettings],
) -> list[Track]:
    """The tracks of the subjects the plan's selection masks, bridged by the plan's hold:
    what `render` masks, and what the review page's preview masks."""
    subject_of = analysis.subject_of()
    selected = [t for t in analysis.tracks if plan.selection.masks(subject_of[t.track_id])]
    return bridge(selected, link_settings(plan, info), settings)


def link_settings(plan: RedactionPlan, info: VideoInfo) -> dict[TargetClass, TrackerSettings]:
    """The tracker settings tracks are linked with: the plan's, but with the fixed hold
    `LINK_HOLD_SECONDS`, so that no mask setting changes a track or a subject id."""
    fixed = dataclasses.replace(
        plan,
        hold_seconds=LINK_HOLD_SECONDS,
        targets=tuple(dataclasses.replace(t, hold_seconds=None) for t in plan.targets),
    )
    return tracker_settings(fixed, FrameGeometry.of(info), info.frame_rate)


def analyse(
    source: Path,
    info: VideoInfo,
    plan: RedactionPlan,
    models_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Pass one, the analysis: detect, link with `link_settings`, group into subjects. A
    plan without targets runs no detector and finds nothing."""
    detectors = load_detectors(plan, models_dir)
    models_run = tuple((name, models.spec_for(name).sha256) for name, _ in detectors)
    detection = detection_settings(plan, [{"name": n, "sha256": d} for n, d in models_run])
    linker = Linker(link_settings(plan, info))
    if not detectors:
        return Analysis((), (), models_run, detection, ())
    sizes, starts = PartSizes(source), list[int]()
    frames = detect(source, info, detectors, plan.detect_every, sizes, linker, progress, starts)
    parts = tuple((start, w, h) for start, (w, h) in zip(starts, sizes.sizes, strict=True))
    tracks = tuple(linker.tracks())
    return Analysis(tracks, tuple(linker.dropped()), models_run, detection, parts, frames)


def _part_sizes(source: Path, analysis: Analysis) -> PartSizes | None:
    """The picture sizes detection saw, for pass two to check; None where none ran."""
    if not analysis.parts:
        return None
    sizes = PartSizes(source)
    for start, width, height in analysis.parts:
        sizes.record(start, width, height)
    return sizes


def detect(
    source: Path,
    info: VideoInfo,
    detectors: list[NamedDetector],
    every: int,
    sizes: PartSizes,
    linker: Linker,
    progress: Progress | None = None,
    starts: list[int] | None = None,
) -> int:
    """Pass one: detect on every `every`-th frame, the first and last frame of each part of
    another picture size, and the last one, and hand each detection frame's boxes (in the
    clip's geometry) and picture to `linker`, in order. `sizes` records the size of every
    frame, for pass two to check.

    A thread decodes ahead while the frames before are detected on."""
    geometry = FrameGeometry.of(info)
    frames = ReadAhead(_to_detect(source, every, sizes, starts), name="detect-read")
    last = -1
    try:
        with FrameDetector(detectors) as detector:
            for index, frame in frames:
                found = detect_part(frame, geometry, detector)
                linker.add(index, found, Picture.of(frame, geometry))
                last = index
                if progress:
                    progress("detect", index + 1, info.estimated_frames)
    finally:
        frames.close()
    return last + 1  # the last frame is always detected on


def _to_detect(
    source: Path, every: int, sizes: PartSizes, starts: list[int] | None = None
) -> Iterator[tuple[int, av.VideoFrame]]:
    """The frames pass one detects on, with their indices, in order."""
    unseen: tuple[int, av.VideoFrame] | None = None  # the latest frame not detected on
    for index, frame in enumerate(decode_frames(source, writable=False)):
        new_part = sizes.record(index, frame.width, frame.height)
        if starts is not None and (new_part or index == 0):
            starts.append(index)
        if new_part and unseen is not None:
            # a part's last frame: tracks must not carry its boxes across the change on a guess
            yield unseen
        if index % every == 0 or new_part:
            yield index, frame
            unseen = None
        else:
            unseen = (index, frame)
    if unseen is not None:
        yield unseen


def render(
    source: Path,
    staging: Path,
    name: str,
    info: VideoInfo,
    plan: RedactionPlan,
    masked_tracks: list[Track],
    settings: dict[TargetClass, TrackerSettings],
    encoder: EncoderSettings,
    sizes: PartSizes | None,
    progress: Progress | None = None,
) -> tuple[int, float, float]:
    """Pass two: mask every frame at its own size (`masked_tracks`: those the selection
    masks) and encode; with `sizes` (detection ran),
    a frame of another size than pass one saw fails the job.

    `name` is what messages call the output (`staging` is its hidden temporary name).
    Returns the frames written, the mean masked area and the seconds the frames span.
    """
    masker = PartMasker(plan, FrameGeometry.of(info), source)
    transcoder = Transcoder(source, staging, encoder, info, name=name)
    try:
        masks = fill(masked_tracks, settings)
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
