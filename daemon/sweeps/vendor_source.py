"""What the Hikvision ISAPI and Dahua sources share: recorders that list recorded pieces
(segments, files) by their own wall clock, and download a piece whole.

Wall clock to UTC: the recorder's times are read in the zone configured for the source.
When clocks go back, an hour of wall-clock times happens twice, and a time in it cannot
be placed from the wall clock alone (and a time in the hour skipped when clocks go forward
never happened). A piece that starts or ends in such an hour is left out of the listing
and so recorded as a gap (and logged with the recorder), rather than placed an hour wrong:
recorders cut files at least hourly, so at most about an hour is lost that night.

A chunk is fetched by downloading the pieces that overlap it, remuxing them into one MP4
(`adapters.remux`), and cutting the chunk's range out of it by stream copy
(`adapters.cut`, from the keyframe at or before the chunk's start); the clip says its
recording time in `creation_time`. Pieces are downloaded whole: the recorders' range
downloads are not reliable across firmwares.

Neither API says which piece is still being written, so a listing is complete to the
window's end: the sweep's `lag` must cover how late the recorder lists what it recorded
(a quiet recorder, with nothing in the window, then does not hold its sweep back).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from privmask.adapters import files
from privmask.adapters.cut import cut
from privmask.adapters.remux import Part, RemuxError, remux
from privmask.adapters.video import VideoError
from privmask.daemon.sweeps.source import (
    Chunk,
    Fetched,
    Listing,
    NoData,
    Recording,
    SourceError,
    Span,
    overlaps,
)

T = TypeVar("T")
MARGIN = timedelta(hours=2)  # searched beyond a window: pieces that start before it, DST shifts
log = structlog.get_logger("privmask.sweeps")


@dataclass(frozen=True)
class Piece(Generic[T]):
    """A recorded piece, placed in UTC, and the recorder's own description of it."""

    span: Span
    item: T


def to_utc(moment: datetime, zone: tzinfo) -> datetime | None:
    """A recorder's time in UTC: aware as given; naive read in `zone`; None for a wall-clock
    time that is ambiguous or never happened there."""
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    early, late = (moment.replace(tzinfo=zone, fold=f) for f in (0, 1))
    if early.utcoffset() != late.utcoffset():
        return None  # in the repeated hour (fall back) or the skipped one (spring forward)
    return early.astimezone(UTC)


def to_wall(moment: datetime, zone: tzinfo) -> datetime:
    """A UTC time as the recorder's wall clock (naive)."""
    return moment.astimezone(zone).replace(tzinfo=None)


class VendorSource(ABC, Generic[T]):
    """A recorder's vendor API as a sweep source; subclasses talk to the recorder."""

    cuts = True
    recorder_error: type[Exception]  # what the adapter raises; it carries a `code`

    def __init__(self, name: str, label: str, timezone: tzinfo) -> None:
        self.name, self._label, self._zone = name, label, timezone

    @contextmanager
    def _asking(self) -> Iterator[None]:
        """The recorder's errors as the runner takes them (`source_error`)."""
        try:
            yield
        except self.recorder_error as exc:
            raise source_error(self.name, exc, getattr(exc, "code", "")) from None

    @abstractmethod
    def _recordings(self) -> Sequence[tuple[str, str | None]]:
        """(recording id, camera) of each recording to sweep."""

    @abstractmethod
    def _pieces(
        self, recording: str, start: datetime, end: datetime
    ) -> Sequence[tuple[datetime, datetime, T]]:
        """The recorder's pieces of `recording` overlapping a wall-clock range: (start, end,
        item), times as the recorder gave them."""

    @abstractmethod
    def _download(self, item: T, target: Path) -> None:
        """Stream the piece `item` into `target` (made new)."""

    def list(self, window: Span) -> Listing:
        recordings = []
        for recording, camera in self._recordings():
            pieces = self._placed(recording, window)
            spans = overlaps(_merged([p.span for p in pieces]), window)
            recordings.append(Recording(recording, camera, spans))
        return Listing(tuple(recordings), complete_to=window.end)

    def fetch(self, chunk: Chunk, folder: Path) -> Fetched:
        window = Span(chunk.start, chunk.end)
        pieces = [p for p in self._placed(chunk.recording, window) if overlaps([p.span], window)]
        if not pieces:
            raise NoData(
                f"{self.name}: {chunk.recording} holds nothing from {chunk.start} to {chunk.end}"
            )
        target = folder / f"{chunk.file_stem}.mp4"
        files.discard(target)  # an earlier try's: this one replaces it whole
        try:
            start = self._clip(pieces, window, target)
        except (RemuxError, VideoError) as exc:
            if isinstance(exc, VideoError) and exc.code == "invalid_video":  # none in range
                log.warning(
                    "sweep_chunk_without_frames",
                    source=self.name,
                    recorder=self._label,
                    chunk=chunk.key,
                    reason="the recorder listed data there, its files hold none: a gap",
                )
                raise NoData(f"{self.name}: {chunk.recording}: {exc}") from None
            raise SourceError(f"{self.name}: {self._label}: {exc}") from None
        covered = overlaps(_merged([p.span for p in pieces]), window)
        return Fetched(target, own_copy=True, start=start, gaps=_gaps(covered, window))

    def _placed(self, recording: str, window: Span) -> Sequence[Piece[T]]:
        """The recorder's pieces of `recording` near `window`, placed in UTC, in order."""
        wall = (
            to_wall(window.start - MARGIN, self._zone),
            to_wall(window.end + MARGIN, self._zone),
        )
        placed = []
        for start, end, item in self._pieces(recording, *wall):
            first, last = to_utc(start, self._zone), to_utc(end, self._zone)
            if first is None or last is None:
                log.warning(
                    "sweep_piece_unplaceable",
                    source=self.name,
                    recorder=self._label,
                    recording=recording,
                    wall_start=start.isoformat(),
                    wall_end=end.isoformat(),
                    reason="its wall-clock time is ambiguous or skipped (DST): a gap",
                )
                continue
            if first < last:
                placed.append(Piece(Span(first, last), item))
        return sorted(placed, key=lambda p: p.span.start)

    def _clip(self, pieces: Sequence[Piece[T]], window: Span, target: Path) -> datetime:
        """Download, join, cut and stamp `pieces` into `target`; the clip's first frame."""
        origin = pieces[0].span.start
        with ExitStack() as stack:
            parts = []
            for piece in pieces:
                path = stack.enter_context(files.staging(target.with_suffix(".download")))
                self._download(piece.item, path)
                parts.append(Part(path, piece.span.start))
            joined = stack.enter_context(files.staging(target.with_suffix(".joined.mp4")))
            remux(parts, joined, name=target.name)
            cutting = stack.enter_context(files.staging(target.with_suffix(".cut.mp4")))
            since = (window.start - origin).total_seconds()
            until = (window.end - origin).total_seconds()
            made = cut(joined, cutting, max(since, 0.0) or None, until, name=target.name)
            first = origin + timedelta(seconds=made.start)
            remux([Part(cutting, first)], target, name=target.name)  # to stamp creation_time
        return first


def _merged(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start <= merged[-1].end:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return merged


def _gaps(covered: Sequence[Span], window: Span) -> tuple[Span, ...]:
    gaps, at = [], window.start
    for span in covered:
        if span.start > at:
            gaps.append(Span(at, span.start))
        at = max(at, span.end)
    if at < window.end:
        gaps.append(Span(at, window.end))
    return tuple(gaps)


def source_error(source: str, exc: Exception, code: str) -> SourceError:
    """A recorder's error as the runner takes it: wrong credentials are permanent (retrying
    cannot help until the operator fixes them); the message already names the recorder."""
    return SourceError(f"{source}: {exc}", permanent=code == "auth")
