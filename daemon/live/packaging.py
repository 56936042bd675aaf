"""Finished live segments become packages, through the same delivery path as files.

A camera's live folder (`state/live/<camera>/`) holds each finished segment as `<job>.mp4`
(masked) beside `<job>.original` (the camera's own packets for at least the same span,
mode 600) and `<job>.json` (notes: the tracks masked in it, and the original's sha256 as it
was written). A package's manifest says what a file package's says: the input's sha256 and
size (the unmasked segment's), the stream (without credentials), the tracks, models, rule,
`live: true`, and the escrow copy.

The job id is the segment's name, `live-<UTC start YYYYmmddTHHMMSS>-<6 random hex>`: unique
across cameras and restarts, never a camera's or a person's name, and the same on every
try, so a segment published just before a crash is found, not packaged twice.

A segment whose original is missing, changed since it was written, or unreadable is still
packaged: the masked video holds no personal data, and holding it back would lose evidence
too. But its manifest says so (`input.sha256` and `input.bytes` are null, `input.missing`
says why), and nothing is escrowed for it.

After publishing, the original and the notes are removed, then the masked segment: the
masked file is the mark of work left, so a crash never leaves an original without it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from privmask.adapters import files, urls
from privmask.adapters.age import AgeError
from privmask.adapters.models import sha256_of
from privmask.adapters.package import PackageError, check_package
from privmask.adapters.rtsp import ORIGINAL_SUFFIX
from privmask.adapters.video import VideoError, probe
from privmask.daemon.config import Config
from privmask.daemon.custody.audit import AuditError
from privmask.daemon.delivery import Custody, Delivery, manifest, plan_delivery
from privmask.daemon.journal import EscrowCopy, Journal
from privmask.daemon.live.outputs import LiveSegment
from privmask.daemon.pipeline.report import video_summary
from privmask.daemon.pipeline.setup import model_list
from privmask.daemon.secrets import SecretError
from privmask.rules.ruleset import Decision

log = structlog.get_logger("privmask.live")

JOB_ID = re.compile(r"live-(\d{8}T\d{6})-[0-9a-f]{6}")
NOTES_SUFFIX = ".json"


@dataclass(frozen=True)
class Notes:
    """What the camera said of a segment, kept until it is packaged."""

    frames: int | None
    tracks: list[dict[str, Any]] | None  # None: not known (the notes were lost)
    original_sha256: str | None  # as written; None: none was kept, or not known
    original_missing: str  # why the camera kept none ("" when it did)
    original_lead_s: float | None  # how long before the masked segment it starts


class SegmentPackager:
    def __init__(self, config: Config, password: bytes, custody: Custody) -> None:
        self.config = config
        self._password = password
        self._custody = custody

    def finished(self, camera: str, url: str, segment: LiveSegment, decision: Decision) -> None:
        """A camera's hook: note the segment, then package it with any an earlier failure
        (an unmounted share) left, oldest first; on a failure the rest wait for the next."""
        notes = self._note(segment)
        for masked in sorted(segment.masked.parent.glob("*.mp4")):
            known = notes if masked == segment.masked else _read_notes(masked)
            if not self._package_one(camera, url, masked, decision, known):
                return

    def _note(self, segment: LiveSegment) -> Notes:
        missing, digest = segment.original_missing, None
        if segment.original is not None:
            try:
                digest = sha256_of(segment.original)
            except OSError as exc:
                missing = f"the unmasked segment cannot be read: {exc.strerror}"
        notes = Notes(
            segment.frames, list(segment.tracks), digest, missing, segment.original_lead_s
        )
        try:
            files.write_file(_notes_path(segment.masked), json.dumps(asdict(notes)).encode())
        except OSError as exc:  # packaged now from memory; only a retry would lack them
            log.error("live_segment_notes_not_written", file=segment.masked.name, error=str(exc))
        return notes

    def _package_one(
        self, camera: str, url: str, masked: Path, decision: Decision, notes: Notes
    ) -> bool:
        job = job_id(masked)
        try:
            started = _started(job, masked)
            source, original = _source(url, masked, notes)
            delivery = plan_delivery(
                decision,
                default_outbox=self.config.outbox,
                default_password=self._password,
                camera=camera,
                when=started.astimezone(self.config.timezone),
                job=job,
                # the name's {hash}: the masked segment's when there is no original
                input_sha256=source["sha256"] or sha256_of(masked),
            )
            if self._published(delivery, job):
                log.info("live_segment_found_published", camera=camera, job=job)
            else:
                escrowed = self._seal(job, original, source, decision, started)
                contents = manifest(
                    decision,
                    job=job,
                    camera=camera,
                    source=source,
                    models=model_list(decision.plan),
                    redacted=masked,
                    redaction=None,
                    times={"started": started.timestamp(), "finished": masked.stat().st_mtime},
                    escrowed=escrowed,
                    tracks=notes.tracks,
                    masked=_totals(notes),
                )
                delivery.publish(masked, contents, self._custody.signer)
        except (PackageError, SecretError, VideoError, OSError, AgeError, AuditError) as exc:
            # kept on disk, tried again with the next segment
            log.error("live_segment_not_packaged", camera=camera, job=job, error=str(exc))
            return False
        _remove(masked)
        log.info(
            "live_segment_packaged",
            camera=camera,
            job=job,
            package=delivery.package.name,
            input_sha256=source["sha256"],
        )
        return True

    def _seal(
        self,
        job: str,
        original: Path | None,
        source: dict[str, Any],
        decision: Decision,
        started: datetime,
    ) -> EscrowCopy | None:
        """The escrow step: the unmasked segment (`original`, whose sha256 is
        `source["sha256"]`; None when there is none) sealed for the custodians and recorded
        before the package that names it is published; None when nothing is escrowed."""
        if original is None:
            return None
        # a connection per segment: camera threads package at the same time
        with Journal(self.config.journal_path) as journal:
            return self._custody.seal(
                journal,
                job,
                original,
                decision,
                actor="live",
                expected_sha256=source["sha256"],
                recorded=started.astimezone(self.config.timezone).isoformat(),
            )

    def _published(self, delivery: Delivery, job: str) -> bool:
        """Whether an earlier try published this segment's package just before a crash;
        PackageError when another package holds its name."""
        if not delivery.package.exists():
            return False
        public = self._custody.signer.public
        earlier = check_package(delivery.package, delivery.password, public).manifest
        if earlier.get("job") != job:
            raise PackageError(
                f"{delivery.package.name}: a different package already has this name"
            )
        return True


def job_id(masked: Path) -> str:
    """The segment's name; one made from its time and name for a segment named otherwise
    (by an earlier version), the same on every try."""
    if JOB_ID.fullmatch(masked.stem):
        return masked.stem
    stamp = datetime.fromtimestamp(masked.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S")
    return f"live-{stamp}-{hashlib.sha256(masked.name.encode()).hexdigest()[:6]}"


def sweep_partials(folder: Path) -> None:
    """Temporary files a crash left in the live folders (unmasked ones among them): never
    published, safe to remove before any camera starts."""
    for camera in folder.iterdir() if folder.is_dir() else ():
        for stale in camera.iterdir() if camera.is_dir() else ():
            if files.OWN_PARTIAL.fullmatch(stale.name):
                files.remove(stale)


def _source(url: str, masked: Path, notes: Notes) -> tuple[dict[str, Any], Path | None]:
    """The manifest's `input`, and the original it describes (None: there is none)."""
    stream = urls.redact(url)
    original = masked.with_suffix(ORIGINAL_SUFFIX)
    why = notes.original_missing
    if not why:
        try:
            digest = sha256_of(original)
            info = probe(original)
        except FileNotFoundError:
            why = "the unmasked segment was lost before it was packaged"
        except OSError as exc:
            why = f"the unmasked segment cannot be read: {exc.strerror}"
        except VideoError as exc:
            why = f"the unmasked segment is unreadable: {exc}"
        else:
            if notes.original_sha256 not in (None, digest):
                why = "the unmasked segment changed after it was written"
    if why:
        log.warning("live_segment_without_original", file=masked.name, reason=why)
        return {"sha256": None, "bytes": None, "stream": stream, "missing": why}, None
    summary = video_summary(info)
    del summary["file"]  # file names may hold personal data
    described = {
        "sha256": digest,
        "bytes": original.stat().st_size,
        "stream": stream,
        "starts_before_s": notes.original_lead_s,  # it starts at the camera's keyframe
        **summary,
    }
    return described, original


def _totals(notes: Notes) -> dict[str, Any]:
    """As a file manifest's `masked`; the masked area is not measured live."""
    tracks = notes.tracks
    return {
        "frames": notes.frames,
        "tracks": None if tracks is None else len(tracks),
        "tracks_by_class": None
        if tracks is None
        else dict(sorted(Counter(t["class"] for t in tracks).items())),
        "masked_area_mean": None,
    }


def _started(job: str, masked: Path) -> datetime:
    """When the segment began (UTC), from its job id: the same on every try."""
    found = JOB_ID.fullmatch(job)
    if found:
        return datetime.strptime(found.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return datetime.fromtimestamp(masked.stat().st_mtime, UTC)


def _notes_path(masked: Path) -> Path:
    return masked.with_suffix(NOTES_SUFFIX)


def _read_notes(masked: Path) -> Notes:
    """A waiting segment's notes; lost ones (a crash right after the segment) say nothing
    of its tracks, and its original is judged as found."""
    try:
        data = json.loads(_notes_path(masked).read_text())
        return Notes(**{key: data[key] for key in Notes.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return Notes(None, None, None, "", None)


def _remove(masked: Path) -> None:
    """The original and notes first, the masked segment last: while it is there, the
    segment is retried (and found published), so no original is ever left behind alone."""
    try:
        masked.with_suffix(ORIGINAL_SUFFIX).unlink(missing_ok=True)
        _notes_path(masked).unlink(missing_ok=True)
        masked.unlink(missing_ok=True)
    except OSError as exc:
        log.error("live_segment_not_removed", file=masked.name, error=exc.strerror)
