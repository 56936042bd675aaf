"""A folder archive as a sweep source: the NVR and VMS layouts on a share (per camera, per day
folders), each video file one chunk, taken by its recording time.

A file's recording time comes, in order, from the site's name pattern (`folder_names`), the
recorders' names that `daemon.recording` reads (Hikvision, Dahua, `CAM_YYYYMMDD_HHMMSS`),
the container's `creation_time`, or the file's mtime (taken as its end). Names are read on
the site's clock; a time a DST fall-back shows twice is the later moment unless the file was
last written before it (`recording.wall_clock_span`). Where a name has no end, the end is
the start plus the probed duration. A file listed is overlapping the window, and its span is
the whole file's (not clipped): a file is one chunk, so a file across two windows is listed
by both under the same key, and made once.

The camera is the name's, else the first folder below the root (unless that is a day
folder). Skipped: hidden and temporary names (`adapters.watch.is_temporary`), links (never
followed, files nor folders), names that are not video, and files still being written
(mtime within `quiet_seconds`); a file being written (or a temporary one) holds the
listing's `complete_to` back to its start (to the window's start when its name gives none),
so the sweep does not pass it before it is there.

Cost: day folders (YYYY-MM-DD, YYYYMMDD) are entered only when their day can overlap the
window (from the day before the window's first day to the day after its last; the day
folder is believed); other layouts are walked whole at every listing (one stat per entry:
on a share of a million files, seconds to minutes), and each file without a complete span
in its name is opened and probed once per source object (remembered by path, inode, size
and mtime). The source is only read: fetch gives the file itself (`own_copy` False).

Fail closed: a root that is missing or not a folder is a permanent SourceError; one that
cannot be read, has a subfolder that cannot be read, or is empty (an unmounted share looks
empty) is a SourceError to retry, so that the watermark waits rather than passing files by.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path, PurePosixPath

import structlog

from privmask.adapters.recording import container_metadata
from privmask.adapters.untrusted import NotRegularFile, descriptor_path, entry_kind, open_regular
from privmask.adapters.video import VideoError, probe
from privmask.adapters.watch import is_temporary
from privmask.daemon.recording import (
    EARLIEST,
    NamedSpan,
    container_time,
    span_from_name,
    wall_clock_span,
)
from privmask.daemon.sweeps.folder_names import (
    NamePattern,
    could_become_video,
    day_of_folder,
    is_video_name,
)
from privmask.daemon.sweeps.source import (
    Chunk,
    Fetched,
    Listing,
    NoData,
    Recording,
    SourceError,
    Span,
)

QUIET_SECONDS = 10.0  # a file written to this recently may still be growing
UNKNOWN_LENGTH = timedelta(seconds=1)  # a file whose duration cannot be read: listed, so
# that its validation reports it, rather than passed over in silence

IGNORED_REMEMBERED = 10_000  # links already reported; beyond this, reported again

log = structlog.get_logger("privmask.sweeps")

_Entries = list[os.DirEntry[str]]  # named here: inside the class, `list` is the method


@dataclass(frozen=True)
class _Entry:
    relative: PurePosixPath
    info: os.stat_result

    @property
    def written(self) -> datetime:
        return datetime.fromtimestamp(self.info.st_mtime, UTC)


@dataclass(frozen=True)
class _Placed:
    """A complete file's recording, in UTC."""

    start: datetime
    end: datetime
    camera: str | None


class FolderSource:
    """The sweep source of a folder archive (see the module's notes)."""

    cuts = False

    def __init__(
        self,
        name: str,
        root: Path,
        timezone: tzinfo,
        pattern: str | None = None,
        *,
        quiet_seconds: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.timezone = timezone
        self.pattern = NamePattern(pattern) if pattern is not None else None
        if quiet_seconds < 0:
            raise ValueError(f"quiet_seconds must be >= 0, got {quiet_seconds}")
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._placed: dict[tuple[PurePosixPath, int, int, int], _Placed] = {}
        self._ignored: set[tuple[PurePosixPath, int]] = set()

    def list(self, window: Span) -> Listing:
        """The complete video files whose recording overlaps `window`, in recording order."""
        now = self._clock()
        recordings: list[Recording] = []
        complete_to = window.end
        placed: dict[tuple[PurePosixPath, int, int, int], _Placed] = {}
        for entry in self._walk(window):
            name = entry.relative.name
            if not could_become_video(name):
                continue  # index files, snapshots: whenever they change, they hold nothing
            if now - entry.info.st_mtime < self.quiet_seconds:
                complete_to = min(complete_to, self._held_to(entry, window))
                continue
            if is_temporary(name) or not is_video_name(name):
                continue
            key = (entry.relative, entry.info.st_ino, entry.info.st_size, entry.info.st_mtime_ns)
            found = self._placed.get(key) or self._place(entry, now)
            if found is None:
                continue
            placed[key] = found
            if found.start < window.end and window.start < found.end:
                span = Span(found.start, found.end)
                recordings.append(Recording(entry.relative.as_posix(), found.camera, (span,)))
        self._placed = placed  # forget files that are gone
        recordings.sort(key=lambda r: (r.spans[0].start, r.recording))
        return Listing(tuple(recordings), max(complete_to, window.start))

    def fetch(self, chunk: Chunk, folder: Path) -> Fetched:
        """The listed file itself, checked to be a regular file reached without links;
        NoData when it is gone (the recorder's retention deleted it)."""
        relative = PurePosixPath(chunk.recording)
        if relative.is_absolute() or any(p in ("", ".", "..") for p in relative.parts):
            raise SourceError(
                f"{self._where()}: {chunk.recording!r} is not a file of this folder", permanent=True
            )
        self._check_root()
        path = self.root.joinpath(*relative.parts)
        try:
            os.close(open_regular(path, self.root))
        except NotRegularFile as exc:
            raise SourceError(
                f"{self._where()}: {chunk.recording} is not a regular file (a {exc.kind})",
                permanent=True,
            ) from None
        except FileNotFoundError:
            raise NoData(f"{self._where()}: {chunk.recording} is gone") from None
        except OSError as exc:
            raise SourceError(
                f"{self._where()}: {chunk.recording} cannot be read ({exc.strerror})"
            ) from None
        return Fetched(path=path, own_copy=False, start=chunk.start)

    # -- walking ---------------------------------------------------------------------------

    def _walk(self, window: Span) -> Iterator[_Entry]:
        """Every regular file below the root, hidden and temporary ones too (they can hold
        the listing back); hidden, temporary and linked folders are not entered, nor day
        folders that cannot overlap the window: a file starts on its folder's day and lasts
        at most a day, and a day either side covers folders named by the UTC day."""
        first_day = (window.start.astimezone(self.timezone) - timedelta(days=1)).date()
        last_day = (window.end.astimezone(self.timezone) + timedelta(days=1)).date()
        pending: list[tuple[PurePosixPath, _Entries]] = [(PurePosixPath(), self._scan_root())]
        while pending:
            below, found = pending.pop()
            for entry in sorted(found, key=lambda e: e.name):
                relative = below / entry.name
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since its folder was read
                if stat.S_ISREG(info.st_mode):
                    yield _Entry(relative, info)
                elif not stat.S_ISDIR(info.st_mode):
                    self._ignore(relative, info)
                elif not is_temporary(entry.name):
                    day = day_of_folder(entry.name)
                    if day is None or first_day <= day <= last_day:
                        pending.append((relative, self._scan(relative)))

    def _ignore(self, relative: PurePosixPath, info: os.stat_result) -> None:
        """Say once that a link (or a pipe, a device) is left alone."""
        seen = (relative, info.st_ino)
        if seen in self._ignored:
            return
        if len(self._ignored) >= IGNORED_REMEMBERED:
            self._ignored.clear()
        self._ignored.add(seen)
        kind = entry_kind(info.st_mode)
        log.warning("sweep_entry_ignored", source=self.name, path=str(relative), kind=kind)

    def _scan_root(self) -> _Entries:
        self._check_root()
        try:
            with os.scandir(self.root) as listing:
                entries = list(listing)
        except OSError as exc:
            raise SourceError(f"{self._where()}: cannot be read ({exc.strerror})") from None
        if not entries:  # an unmounted share looks like this
            raise SourceError(f"{self._where()}: the folder is empty (is the share mounted?)")
        return entries

    def _scan(self, relative: PurePosixPath) -> _Entries:
        try:
            with os.scandir(self.root.joinpath(*relative.parts)) as listing:
                return list(listing)
        except FileNotFoundError:
            return []  # deleted since (the recorder's retention)
        except OSError as exc:  # files there would be passed by: fail closed
            raise SourceError(
                f"{self._where()}: {relative} cannot be read ({exc.strerror})"
            ) from None

    def _check_root(self) -> None:
        try:
            info = self.root.stat()
        except FileNotFoundError:
            raise SourceError(f"{self._where()}: no such folder", permanent=True) from None
        except OSError as exc:
            raise SourceError(f"{self._where()}: cannot be read ({exc.strerror})") from None
        if not stat.S_ISDIR(info.st_mode):
            raise SourceError(f"{self._where()}: not a folder", permanent=True)

    def _where(self) -> str:
        return f"folder source {self.name} ({self.root})"

    # -- recording times -------------------------------------------------------------------

    def _held_to(self, entry: _Entry, window: Span) -> datetime:
        """How far a file still being written lets the listing count as complete."""
        named = self._named(entry.relative, None)
        return named.start.astimezone(UTC) if named is not None else window.start

    def _named(self, relative: PurePosixPath, written: datetime | None) -> NamedSpan | None:
        """The span and camera the site's pattern or a recorder's name gives."""
        stamp = self.pattern.read(relative) if self.pattern is not None else None
        if stamp is not None:
            start, end = wall_clock_span(stamp.fields, stamp.end, self.timezone, written=written)
            named: NamedSpan | None = NamedSpan(start, end, stamp.camera)
        else:
            named = span_from_name(relative, self.timezone, written=written)
        return named if named is not None and named.start >= EARLIEST else None

    def _place(self, entry: _Entry, now: float) -> _Placed | None:
        named = self._named(entry.relative, entry.written)
        camera = (named.camera if named is not None else None) or _first_folder(entry.relative)
        if named is not None and named.end is not None:
            return _Placed(named.start.astimezone(UTC), named.end.astimezone(UTC), camera)
        opened = self._open(entry)
        if opened is None:
            return None  # gone or replaced by a link since it was seen
        tags, length = opened
        if named is not None:
            start = named.start.astimezone(UTC)
            return _Placed(start, start + length, camera)
        tagged = container_time(tags, datetime.fromtimestamp(now, UTC))
        if tagged is not None:
            start = tagged.astimezone(UTC)
            return _Placed(start, start + length, camera)
        return _Placed(entry.written - length, entry.written, camera)  # the last write: its end

    def _open(self, entry: _Entry) -> tuple[dict[str, str], timedelta] | None:
        """The container's time tags and the duration of a file, read without following
        a link anywhere below the root."""
        try:
            fd = open_regular(self.root.joinpath(*entry.relative.parts), self.root)
        except OSError:
            return None
        try:
            path = descriptor_path(fd)
            tags = container_metadata(path)
            try:
                seconds = probe(path).duration_s
            except (VideoError, OSError):  # listed all the same: its validation says why
                seconds = 0.0
        finally:
            os.close(fd)
        return tags, timedelta(seconds=seconds) if seconds > 0 else UNKNOWN_LENGTH


def _first_folder(relative: PurePosixPath) -> str | None:
    """The camera a per-camera layout gives: the first folder below the root."""
    if len(relative.parts) < 2 or day_of_folder(relative.parts[0]) is not None:
        return None
    return relative.parts[0]
