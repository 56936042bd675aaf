"""An analysis: what detection and tracking found in a clip, kept so that a redaction can
choose who stays visible by the ids the contact sheet showed, without detecting again.

`analysis.json` holds the clip's sha256, the models (with their sha256) and detection
settings, the subjects (`subjects`: who is who, for people) and every track's sightings and
followed places at full precision (`tracks`: what a redaction masks). A redaction from it
refuses another clip, other models or other detection settings: an id must mean what the
sheet showed.

The analysis folder holds unmasked crops of faces: it is created mode 700, its files 600,
written under a hidden temporary name and renamed into place whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from privmask.adapters import files
from privmask.adapters.detections import TargetClass
from privmask.daemon import __version__
from privmask.daemon.pipeline.hold import LINK_HOLD_SECONDS
from privmask.daemon.pipeline.report import dropped_summary
from privmask.daemon.pipeline.subjects import Subject, group
from privmask.daemon.pipeline.tracker import Dropped, Track
from privmask.rules.plan import RedactionPlan

FORMAT = "privmask-analysis"
VERSION = 1
ANALYSIS_FILE = "analysis.json"
SHEET_FILES = ("sheet.html", "sheet.png")
OWN_FILES = frozenset({ANALYSIS_FILE, *SHEET_FILES})


class AnalysisError(ValueError):
    """An analysis that cannot be used (missing, damaged, of another clip, models or
    settings, an unknown subject id); the message says which and why."""


@dataclass(frozen=True)
class Analysis:
    """Detection and tracking of one clip: tracks, the subjects they form, and what ran."""

    tracks: tuple[Track, ...]
    dropped: tuple[Dropped, ...]
    models: tuple[tuple[str, str], ...]  # (registry name, sha256)
    detection: dict[str, Any]  # `detection_settings` of the plan that ran
    parts: tuple[tuple[int, int, int], ...]  # (first frame, width, height); () when none ran
    frames: int = 0  # frames decoded; 0 when no detection ran
    clip: dict[str, Any] = field(default_factory=dict)  # file, sha256, size, rate: when saved
    subjects: tuple[Subject, ...] = ()

    def __post_init__(self) -> None:
        if not self.subjects and self.tracks:
            object.__setattr__(self, "subjects", tuple(group(self.tracks)))

    def subject_of(self) -> dict[int, int]:
        return {t.track_id: s.subject_id for s in self.subjects for t in s.tracks}


def detection_settings(plan: RedactionPlan, model_list: list[dict[str, str]]) -> dict[str, Any]:
    """What decides which boxes are found and how they are linked: equal settings on the
    same clip give the same tracks and subject ids."""
    return {
        "classes": [t.target for t in plan.targets],
        "models": model_list,
        "detect_every": plan.detect_every,
        "min_score": {t.target: t.min_score for t in plan.targets},
        "link_hold_seconds": LINK_HOLD_SECONDS,
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_usable(analysis: Analysis, sha256: str, detection: dict[str, Any], folder: Path) -> None:
    """Refuse an analysis of another clip, or made with other models or settings."""
    if analysis.clip.get("sha256") != sha256:
        raise AnalysisError(
            f"{folder}: the analysis is of another clip (sha256 "
            f"{str(analysis.clip.get('sha256'))[:12]}..., INPUT is {sha256[:12]}...)"
        )
    theirs, ours = analysis.detection, detection
    if theirs.get("models") != ours["models"]:

        def named(models: Any) -> str:
            return ", ".join(f"{m['name']} {m['sha256'][:12]}" for m in models or []) or "none"

        raise AnalysisError(
            f"{folder}: the analysis was made with other models ({named(theirs.get('models'))}) "
            f"than this redaction runs ({named(ours['models'])})"
        )
    for key in ("detect_every", "min_score", "link_hold_seconds"):
        if theirs.get(key) != ours[key]:
            raise AnalysisError(
                f"{folder}: the analysis was made with {key} {theirs.get(key)}, "
                f"this redaction says {ours[key]}; analyse again with the same settings"
            )


def check_ids(analysis: Analysis, ids: frozenset[int], folder: Path) -> None:
    known = {s.subject_id for s in analysis.subjects}
    unknown = sorted(ids - known)
    if unknown:
        listed = ", ".join(map(str, sorted(known))) or "none"
        raise AnalysisError(
            f"{folder}: no subject {', '.join(map(str, unknown))} in the analysis "
            f"(its subjects: {listed})"
        )


def to_json(analysis: Analysis) -> dict[str, Any]:
    subject_of = analysis.subject_of()
    return {
        "format": FORMAT,
        "version": VERSION,
        "privmask_version": __version__,
        "clip": {**analysis.clip, "frames": analysis.frames, "parts": analysis.parts},
        "models": [{"name": n, "sha256": d} for n, d in analysis.models],
        "detection": analysis.detection,
        "subjects": [s.summary() for s in analysis.subjects],
        "tracks": [_track_json(t, subject_of[t.track_id]) for t in analysis.tracks],
        "dropped": [dropped_summary(d) for d in analysis.dropped],
    }


def _track_json(track: Track, subject: int) -> dict[str, Any]:
    # full precision: a redaction from the analysis masks exactly what one without would
    def rows(places: dict[int, Any]) -> list[list[float]]:
        return [[f, *map(float, box)] for f, box in sorted(places.items())]

    return {
        "id": track.track_id,
        "class": track.target.label,
        "subject": subject,
        "frames": track.frames,
        "boxes": [[float(v) for v in box] for box in track.boxes],
        "scores": [float(s) for s in track.scores],
        "trail": rows(track.trail),
        "kept": rows(track.kept),
    }


def read(folder: Path) -> Analysis:
    """The analysis in `folder`; AnalysisError when it is missing or not one."""
    path = folder / ANALYSIS_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise AnalysisError(f"{path}: no analysis there (make one: privmask analyze)") from None
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path}: cannot read the analysis: {exc}") from None
    try:
        if data["format"] != FORMAT or data["version"] != VERSION:
            raise ValueError(f"format {data['format']} version {data['version']}")
        return _from_json(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise AnalysisError(f"{path}: not a privmask analysis ({exc})") from None


def _from_json(data: dict[str, Any]) -> Analysis:
    def box(values: list[float]) -> np.ndarray:
        found = np.array(values, dtype=np.float32)
        if found.shape != (4,) or not np.isfinite(found).all():
            raise ValueError(f"bad box {values}")
        return found

    tracks = []
    for t in data["tracks"]:
        frames = [int(f) for f in t["frames"]]
        if not frames or frames != sorted(frames) or len(t["boxes"]) != len(frames):
            raise ValueError(f"track {t['id']}: bad frames")
        tracks.append(
            Track(
                int(t["id"]),
                TargetClass.parse(t["class"]),
                frames=frames,
                boxes=[box(b) for b in t["boxes"]],
                scores=[float(s) for s in t["scores"]],
                trail={int(r[0]): box(r[1:]) for r in t["trail"]},
                kept={int(r[0]): box(r[1:]) for r in t["kept"]},
            )
        )
    dropped = tuple(
        Dropped(
            TargetClass.parse(d["class"]),
            str(d["reason"]),
            int(d["first_frame"]),
            int(d["last_frame"]),
            int(d["sightings"]),
            float(d["max_score"]),
            box(d["box"]),
        )
        for d in data["dropped"]
    )
    clip = dict(data["clip"])
    parts = tuple((int(a), int(b), int(c)) for a, b, c in clip.pop("parts"))
    count = int(clip.pop("frames"))
    models = tuple((str(m["name"]), str(m["sha256"])) for m in data["models"])
    detection = dict(data["detection"])
    analysis = Analysis(tuple(tracks), dropped, models, detection, parts, count, clip)
    ids = {s["id"] for s in data["subjects"]}
    if ids != {s.subject_id for s in analysis.subjects}:
        raise ValueError("its subjects do not match its tracks")
    return analysis


def check_folder(folder: Path, force: bool) -> None:
    """Refuse, before any work, an analysis folder that cannot be written: its parent
    missing, a file in its place, or (without --force) anything in it. With --force, a
    folder holding only a former analysis is replaced; one holding anything else never is."""
    if not folder.parent.is_dir():
        raise AnalysisError(f"{folder.parent}: folder does not exist")
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise AnalysisError(f"{folder}: exists and is not a folder")
    if not folder.exists():
        return
    held = {entry.name for entry in folder.iterdir()}
    if held and not force:
        raise AnalysisError(f"{folder}: is not empty (--force replaces a former analysis)")
    if held - OWN_FILES:
        raise AnalysisError(
            f"{folder}: holds files other than an analysis; not replaced (choose another --out)"
        )


def write_folder(folder: Path, contents: dict[str, bytes], force: bool) -> None:
    """Write `contents` as the files of `folder` (mode 700, files 600), whole or not at all."""
    check_folder(folder, force)
    staged = files.temporary_name(folder)
    os.mkdir(staged, 0o700)
    aside: Path | None = None
    try:
        os.chmod(staged, 0o700)  # exactly, whatever the umask
        for name, data in contents.items():
            fd = os.open(staged / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
        if folder.exists():  # empty, or a former analysis with --force: checked above
            aside = files.temporary_name(folder)
            os.rename(folder, aside)
        files.publish(staged, folder)
    except BaseException:
        files.remove(staged)
        if aside is not None and not folder.exists():
            os.rename(aside, folder)
            aside = None
        raise
    finally:
        if aside is not None:
            files.remove(aside)
