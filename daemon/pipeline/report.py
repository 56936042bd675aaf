"""The JSON report of one redaction: every track and subject, and totals a reviewer checks
first."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from privmask.adapters.detections import TargetClass
from privmask.adapters.video import VideoInfo
from privmask.daemon import __version__
from privmask.daemon.pipeline.subjects import Subject
from privmask.daemon.pipeline.tracker import Dropped, Track, TrackerSettings, span
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
    dropped: tuple[Dropped, ...] = ()  # tracks judged false detections, not masked
    subjects: tuple[Subject, ...] = ()  # the tracks as people (face and body) and targets

    def subject_of(self, track: Track) -> int:
        """The id of the subject a track belongs to (a selection names subjects)."""
        for subject in self.subjects:
            if any(t.track_id == track.track_id for t in subject.tracks):
                return subject.subject_id
        return track.track_id

    def dropped_by_reason(self) -> dict[str, int]:
        """How many tracks were not masked, by reason (see `tracker.Dropped`)."""
        return dict(sorted(Counter(d.reason for d in self.dropped).items()))


def build_report(redaction: Redaction, plan: RedactionPlan) -> dict[str, Any]:
    last_frame = redaction.frames - 1
    tracks = []
    for track in redaction.tracks:
        masked_from, masked_to = span(track, redaction.settings[track.target])
        tracks.append(
            {
                "id": track.track_id,
                "class": track.target.label,
                "subject": redaction.subject_of(track),
                "first_frame": track.frames[0],
                "last_frame": track.frames[-1],
                "masked": plan.selection.masks(redaction.subject_of(track)),
                "masked_from": masked_from,
                "masked_to": min(last_frame, masked_to),
                "sightings": len(track.frames),
                "followed": len(track.trail),  # frames picture motion found it in, unsighted
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
            "selection": {"mode": plan.selection.mode, "subjects": sorted(plan.selection.subjects)},
        },
        "models": [{"name": name, "sha256": digest} for name, digest in redaction.models],
        "subjects": [s.summary() for s in redaction.subjects],
        "tracks": tracks,
        "dropped": [dropped_summary(d) for d in redaction.dropped],
        "totals": {
            "frames": redaction.frames,
            "tracks": len(tracks),
            "subjects": len(redaction.subjects),
            "tracks_by_class": dict(sorted(counts.items())),
            "masked_area_mean": round(redaction.masked_area, 4),
            "dropped_tracks": len(redaction.dropped),
            "dropped_boxes": sum(d.sightings for d in redaction.dropped),
            "dropped_by_reason": redaction.dropped_by_reason(),
        },
    }


# why a track was not masked, as the report words it for a reviewer
DROP_REASONS = {
    "still_low_score": "never scored high, never moved, and its picture never changed",
}


def dropped_summary(dropped: Dropped) -> dict[str, Any]:
    return {
        "class": dropped.target.label,
        "reason": dropped.reason,
        "why": DROP_REASONS.get(dropped.reason, dropped.reason),
        "first_frame": dropped.first_frame,
        "last_frame": dropped.last_frame,
        "sightings": dropped.sightings,
        "max_score": round(dropped.max_score, 3),
        "box": [round(float(v), 1) for v in dropped.box],
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
