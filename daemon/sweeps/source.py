"""What a sweep asks of a source of recordings: the contract between the sweep runner and
the folder, ONVIF Profile G, Hikvision ISAPI and Dahua sources.

Times are aware datetimes in UTC everywhere here; the site's time zone matters only for
schedules and for reading vendor file names, which the sources do themselves.

A sweep covers a window `[watermark, now - lag)` of a source: it lists the recordings
overlapping it, cuts them into chunks (a folder's file is one chunk; a recorder's recording
is cut at fixed chunk boundaries), and each chunk becomes one job, keyed by
(source, recording, start, end) so that a double fire, a restart or an overlapping manual
run makes it once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


class SourceError(Exception):
    """The source cannot answer now (offline, refused, an error answer): logged, retried with
    backoff, the watermark waits. One line that names the recorder or folder, never a
    password. `permanent`: retrying cannot help (wrong credentials, no such folder) — still
    retried, but logged as an error the operator must fix."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Span:
    """A stretch of recorded time [start, end) (UTC)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Recording:
    """Recorded video a source holds: a file of a folder archive, an ONVIF recording (one
    camera's video track), an ISAPI track, a Dahua channel."""

    recording: str  # the source's id for it: a path relative to the folder, a token, a track
    camera: str | None  # the camera it shows, as packages and rules name cameras
    spans: tuple[Span, ...]  # where it holds data, within the window asked for, in order


@dataclass(frozen=True)
class Listing:
    """What a source holds in a window: its recordings and, per recording, the gaps (time in
    the window with no data, known as such: not an error, recorded as a gap)."""

    recordings: tuple[Recording, ...]
    complete_to: datetime  # the source has finished writing up to here (e.g. ONVIF DataTo)


@dataclass(frozen=True)
class Chunk:
    """One job of a sweep: a recording's data in [start, end)."""

    # the source's identity (`SweepSpec.identity()`): two sweeps over one source share chunks
    source: str
    recording: str
    camera: str | None
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """What makes a chunk once: (source, recording, start, end)."""
        return "|".join((self.source, self.recording, self.start.isoformat(), self.end.isoformat()))

    @property
    def file_stem(self) -> str:
        """A name for the chunk's fetched clip: readable, unique per key (a digest of it),
        short, in characters any filesystem takes (a recording id is the recorder's text)."""
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", self.recording)[:40]
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:12]
        return f"{slug}-{self.start:%Y%m%dT%H%M%SZ}-{digest}"


@dataclass(frozen=True)
class Fetched:
    """A chunk made a clip on this host."""

    path: Path  # the clip: a folder source's own file (read in place), or a fetched copy
    own_copy: bool  # True: privmask wrote it (deleted once its package is durable)
    start: datetime  # the first frame's recording time (UTC), as the source told it
    gaps: tuple[Span, ...] = ()  # stretches of the chunk without data


class SweepSource(Protocol):
    """One configured source. Implementations: `folder_source.FolderSource`,
    `onvif_source.OnvifSource`, `isapi_source.IsapiSource`, `dahua_source.DahuaSource`."""

    name: str  # the sweep's name, for logs and status
    cuts: bool  # True: recordings are cut into fixed chunks; False: a recording is one chunk

    def list(self, window: Span) -> Listing:
        """The recordings overlapping `window`; SourceError when the source cannot answer."""
        ...

    def fetch(self, chunk: Chunk, folder: Path) -> Fetched:
        """The chunk as a clip (MP4, or the folder's own file), written under `folder` (a
        private staging folder of the sweep) atomically, or nothing; SourceError when the
        source cannot give it now. A chunk with no data at all: Fetched is not returned,
        SourceError neither: `NoData` is raised, and the runner records the chunk as a gap."""
        ...


class NoData(Exception):
    """The chunk holds no recorded data (a gap in the recording, not an error)."""


def overlaps(spans: Sequence[Span], window: Span) -> tuple[Span, ...]:
    """`spans` clipped to `window`, empty ones dropped."""
    clipped = (Span(max(s.start, window.start), min(s.end, window.end)) for s in spans)
    return tuple(s for s in clipped if s.start < s.end)
