"""The JSON report of one redaction: every track, and totals a reviewer checks first."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from privmask.adapters.detections import TargetClass
from privmask.adapters.video import VideoInfo
from privmask.daemon import __version__
from privmask.daemon.pipeline.tracker import Track, TrackerSettings
from privmask.rules.plan import RedactionPlan


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


def build_report(redaction: Redaction, plan: RedactionPlan) -> dict[str, Any]:
    last_frame = redaction.frames - 1
    tracks = []
    for track in redaction.tracks:
        settings = redaction.settings[track.target]
        tracks.append(
            {
                "id": track.track_id,
                "class": track.target.label,
                "first_frame": track.frames[0],
                "last_frame": track.frames[-1],
                "masked": plan.selection.masks(track.track_id),
                "masked_from": max(0, track.frames[0] - track.lead(settings)),
                "masked_to": min(last_frame, track.frames[-1] + track.tail(settings)),
                "sightings": len(track.frames),
                "max_score": round(max(track.scores), 3),
                # the detected boxes only; frames between them are interpolated
                "boxes": [
                    [frame, *(round(float(v), 1) for v in box)]
                    for frame, box in zip(track.frames, track.boxes)
                ],
            }
        )
    counts = Counter(track.target.label for track in redaction.tracks)
    source, output = redaction.source, redaction.output
    return {
        "privmask_version": __version__,
        "input": video_summary(source),
        "output": video_summary(output),
        "plan": {
            "targets": [
                {**asdict(t), "padding": t.margin, "style": t.style.value, "shape": t.shape.value}
                for t in plan.targets
            ],
            "regions": [
                {"name": r.name, "points": r.points, "relative": r.relative, "style": r.style.value}
                for r in plan.regions
            ],
            "detect_every": plan.detect_every,
            "hold_seconds": plan.hold_seconds,
            "fill_seconds": plan.fill_seconds,
            "selection": {"mode": plan.selection.mode, "tracks": sorted(plan.selection.tracks)},
        },
        "models": [{"name": name, "sha256": digest} for name, digest in redaction.models],
        "tracks": tracks,
        "totals": {
            "frames": redaction.frames,
            "tracks": len(tracks),
            "tracks_by_class": dict(sorted(counts.items())),
            "masked_area_mean": round(redaction.masked_area, 4),
        },
    }


def video_summary(info: VideoInfo) -> dict[str, Any]:
    return {
        "file": info.path.name,
        "container": info.container,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "frame_rate": round(float(info.frame_rate), 3),
        "duration_s": round(info.duration_s, 3),
        "rotation": info.rotation,
        "audio": [asdict(a) for a in info.audio],
    }
