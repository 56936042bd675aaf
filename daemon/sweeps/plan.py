"""Which chunks a sweep run makes of a window: pure decisions, no I/O.

A recorder's recording is cut at fixed boundaries counted in UTC from the epoch (a 15-minute
chunk starts at :00, :15, :30, :45 UTC whatever the site's zone or DST), so a chunk has the
same key whichever run finds it. Only whole chunks before the window's end, and before
where the source says it has finished writing, are taken; the rest waits for a later run.
A folder's file is one chunk, taken once it ends inside the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from privmask.daemon.sweeps.source import Chunk, Listing, Recording, Span, overlaps

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Planned:
    chunks: tuple[Chunk, ...]
    reach: datetime  # everything before it is in `chunks` or holds no data


def floor_to(moment: datetime, chunk: timedelta) -> datetime:
    """The chunk boundary (UTC) at or before `moment`."""
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // chunk) * chunk


def first_start(now: datetime, zone: tzinfo, since: datetime | None) -> datetime:
    """Where a source's first run starts: `since`, else midnight (site time) of the day
    before `now`'s site day."""
    if since is not None:
        return since.astimezone(UTC)
    yesterday = now.astimezone(zone).date() - timedelta(days=1)
    return datetime.combine(yesterday, time(0), zone).astimezone(UTC)


def window(
    covered_to: datetime | None, start: datetime, now: datetime, lag: timedelta
) -> Span | None:
    """`[covered, now - lag)`; None when nothing is due yet."""
    begin, end = covered_to or start, now.astimezone(UTC) - lag
    return Span(begin, end) if begin < end else None


def plan(
    source: str,
    listing: Listing,
    span: Span,
    chunk: timedelta,
    *,
    cuts: bool,
    camera: str | None = None,
) -> Planned:
    """The chunks of `span` from `listing`, and how far they reach."""
    end = min(span.end, listing.complete_to)
    if cuts:
        return _cut(
            source, listing.recordings, Span(span.start, floor_to(end, chunk)), chunk, camera
        )
    return _whole(source, listing.recordings, Span(span.start, end), camera)


def _cut(
    source: str, recordings: tuple[Recording, ...], span: Span, chunk: timedelta, camera: str | None
) -> Planned:
    found: list[Chunk] = []
    for rec in recordings:
        slots: set[datetime] = set()
        for data in overlaps(rec.spans, span):
            slot = floor_to(data.start, chunk)
            while slot < data.end:
                slots.add(slot)
                slot += chunk
        found += [
            Chunk(source, rec.recording, rec.camera or camera, s, s + chunk)
            for s in sorted(slots)
            if s >= floor_to(span.start, chunk) and s + chunk <= span.end
        ]
    return Planned(tuple(sorted(found, key=_order)), max(span.start, span.end))


def _whole(
    source: str, recordings: tuple[Recording, ...], span: Span, camera: str | None
) -> Planned:
    found, reach = [], span.end
    for rec in recordings:
        if not rec.spans:
            continue
        start, end = rec.spans[0].start, rec.spans[-1].end
        if end > span.end:  # still being written, or past this run: a later run takes it
            reach = min(reach, max(start, span.start))
            continue
        found.append(Chunk(source, rec.recording, rec.camera or camera, start, end))
    return Planned(tuple(sorted(found, key=_order)), max(span.start, reach))


def _order(chunk: Chunk) -> tuple[datetime, str]:
    return chunk.start, chunk.recording
