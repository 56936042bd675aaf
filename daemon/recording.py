"""When a clip was recorded, in the site's time zone, and where that was read.

Rules match `times` and `dates` on the recording time as the site's clock showed it, and
package names carry it. It is taken from, in order:

- `container`: the container's `creation_time` tag (UTC by FFmpeg's convention; a value
  without a zone is taken as UTC), when it is plausible;
- `file_name`: a recorder's export name, read as the site's local time (recorders name files
  by their own wall clock): Hikvision `ch01_20240315093000[_20240315094500][_0].mp4` and
  `192.168.0.64_01_20240315093000123_...`, Dahua `2024-03-15/001/dav/09/09.30.00-09.45.00[M]
  [0@0][0].dav` (the date is a folder) and `maq_ch2_main_20240315093000_...`, and the common
  `CAM_YYYYMMDD_HHMMSS`;
- `mtime`: the file's modification time, when nothing better is known.

A time before 2000 or more than a day ahead is not believed (unset camera clocks write 1970,
2000 or 2037). Pure: the tags are read by `privmask.adapters.recording`, the mtime may be
given (the one intake saw), and only the mtime fallback touches the file without it.

`span_from_name` also reads the end where a name has it (Hikvision `ch01_START_END`, Dahua
`HH.MM.SS-HH.MM.SS`, Dahua export `chN_main_START_END`), for sweeps of folder archives.
A wall-clock time that a DST fall-back shows twice is read as the later of its two moments,
unless the file was last written before that one (then it can only be the earlier): taken
late, a file is swept late, but never passed by a sweep before it existed. An inbox clip's
name is read the same way, judged by the mtime intake saw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path, PurePath
from typing import Literal, NamedTuple

Source = Literal["container", "file_name", "mtime"]
Fields = tuple[int, int, int, int, int, int]  # year, month, day, hour, minute, second

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
AHEAD = timedelta(days=1)  # a recorder's clock a little ahead of ours is still believed

_STAMP = r"(?P<stamp>\d{14})"  # YYYYMMDDhhmmss
_END = r"(?:_(?P<end>\d{14}))?"  # an optional _YYYYMMDDhhmmss after the start
# Hikvision NVR export: ch01_START[_END][_PART]; a prefix such as "cut_" is kept apart
_HIKVISION = re.compile(rf"(?<![A-Za-z0-9])(?P<camera>ch\d{{1,3}})_{_STAMP}{_END}(?!\d)", re.I)
# Hikvision client or FTP upload: ADDRESS_CHANNEL_START with milliseconds
_HIKVISION_IP = re.compile(
    rf"^(?P<camera>\d{{1,3}}(?:\.\d{{1,3}}){{3}}_\d{{1,3}})_{_STAMP}\d{{3}}(?!\d)"
)
# Dahua export: [DEVICE_]chN_main|sub_START[_END]
_DAHUA_EXPORT = re.compile(
    rf"^(?P<camera>(?:[A-Za-z0-9-]+_)?ch\d{{1,3}})_(?:main|sub|extra\d?)_{_STAMP}{_END}(?!\d)",
    re.I,
)
# Dahua recorder or SD card: HH.MM.SS-HH.MM.SS[type]..., under a YYYY-MM-DD folder
_DAHUA_CLOCK = re.compile(r"^(\d{2})\.(\d{2})\.(\d{2})-(\d{2})\.(\d{2})\.(\d{2})\[")
_DAHUA_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# CAM_YYYYMMDD_HHMMSS[_...]
_CAMERA_DATE_TIME = re.compile(
    r"^(?P<camera>[A-Za-z0-9][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*?)_(?P<day>\d{8})_(?P<clock>\d{6})(?!\d)"
)


MAX_SPAN = timedelta(days=1)  # a longer file, by its name, has a wrong end


class Stamp(NamedTuple):
    """What a name says: the wall-clock fields (year .. second) of its start and, where it
    has one, of its end (for Dahua's time-only end: the start's day), and the camera."""

    fields: Fields
    camera: str | None
    end: Fields | None = None


class NamedSpan(NamedTuple):
    """When a file's name says it was recorded: aware times in the site's zone; `end` None
    where the name has none (or one not after the start)."""

    start: datetime
    end: datetime | None
    camera: str | None


def recording_time(
    path: PurePath,
    metadata: Mapping[str, str],
    tz: tzinfo,
    *,
    mtime: float | None = None,
    now: datetime | None = None,
) -> tuple[datetime, Source]:
    """The clip's recording time, aware and in `tz`, and where it came from.

    `metadata`: the container's tags (`adapters.recording.container_metadata`); `mtime`: the
    modification time intake saw (default: the file's, now)."""
    now = now or datetime.now(UTC)
    tagged = container_time(metadata, now)
    if tagged is not None:
        return tagged.astimezone(tz), "container"
    written = datetime.fromtimestamp(mtime, UTC) if mtime is not None else None
    named = span_from_name(path, tz, written=written)
    if named is not None and _plausible(named.start, now):
        return named.start, "file_name"
    seconds = Path(path).stat().st_mtime if mtime is None else mtime
    return datetime.fromtimestamp(seconds, tz), "mtime"


def container_time(metadata: Mapping[str, str], now: datetime) -> datetime | None:
    """The container's `creation_time` (aware), when it is there and plausible."""
    tagged = _from_tag(metadata.get("creation_time"))
    return tagged if tagged is not None and _plausible(tagged, now) else None


def time_from_name(name: str | PurePath, tz: tzinfo) -> datetime | None:
    """The wall-clock time a recorder's export name gives, in `tz`; None for other names."""
    named = span_from_name(name, tz)
    return named.start if named is not None else None


def camera_from_name(name: str | PurePath) -> str | None:
    """The camera id a recorder's export name gives, for an inbox that gives none. Pass the
    path below the inbox: for Dahua it is the folder above the date folder, if there is one."""
    stamp = read_name(name)
    return stamp.camera if stamp is not None else None


def span_from_name(
    name: str | PurePath, tz: tzinfo, *, written: datetime | None = None
) -> NamedSpan | None:
    """The start, end and camera a recorder's name gives (see `camera_from_name` for the
    path to pass), read on the site's clock `tz`; None for other names. `written`: when the
    file was last written (its mtime), to tell the two passes of a fall-back hour apart."""
    stamp = read_name(name)
    if stamp is None:
        return None
    start, end = wall_clock_span(stamp.fields, stamp.end, tz, written=written)
    return NamedSpan(start, end, stamp.camera)


def wall_clock_span(
    start: Fields, end: Fields | None, tz: tzinfo, *, written: datetime | None = None
) -> tuple[datetime, datetime | None]:
    """A recorder's wall-clock start and end as moments, in `tz`. Each field set can mean two
    moments (the repeated hour of a fall-back, or the skipped one of a spring-forward): of the
    starts not after `written`, each with the first end after it (within MAX_SPAN), the pair
    making the shortest recording is taken, the later of equal ones; with no such end, the
    latest start and no end. An end whose clock is before the start's on the same day is
    also read on the next day (Dahua names give only the end's time of day)."""
    starts = _readings(start, tz)
    ends = _readings(end, tz) if end is not None else []
    if end is not None and end[:3] == start[:3] and end[3:] < start[3:]:
        ends += _readings(_next_day(end), tz)
    possible = [s for s in starts if written is None or s <= written] or starts[:1]
    pairs = [(s, e) for s in possible if (e := _first_after(s, ends)) is not None]
    if not pairs:
        return possible[-1].astimezone(tz), None
    # the shortest recording the name can mean; of equal ones, the later
    chosen, found = min(pairs, key=lambda pair: (pair[1] - pair[0], -pair[0].timestamp()))
    return chosen.astimezone(tz), found.astimezone(tz)


def _readings(fields: Fields, tz: tzinfo) -> list[datetime]:
    """The moments (UTC, in order) a wall clock showing `fields` in `tz` can mean."""
    wall = datetime(*fields, tzinfo=tz)
    return sorted({wall.replace(fold=fold).astimezone(UTC) for fold in (0, 1)})


def _first_after(start: datetime, ends: list[datetime]) -> datetime | None:
    return min((e for e in ends if start < e <= start + MAX_SPAN), default=None)


def _next_day(fields: Fields) -> Fields:
    day = datetime(*fields[:3]) + timedelta(days=1)
    return (day.year, day.month, day.day, *fields[3:])


def read_name(name: str | PurePath) -> Stamp | None:
    path = PurePath(name)
    for reader in _READERS:
        stamp = reader(path)
        if stamp is not None and _valid(stamp.fields):
            return stamp
    return None


def _stamped(pattern: re.Pattern[str]) -> Callable[[PurePath], Stamp | None]:
    """A reader of names that hold a camera and a 14-digit stamp."""

    def read(path: PurePath) -> Stamp | None:
        found = pattern.search(path.name)
        if found is None:
            return None
        end = found.groupdict().get("end")
        return Stamp(_fields(found["stamp"]), found["camera"], _valid_or_none(end))

    return read


def _camera_date_time(path: PurePath) -> Stamp | None:
    found = _CAMERA_DATE_TIME.match(path.name)
    if found is None:
        return None
    return Stamp(_fields(found["day"] + found["clock"]), found["camera"])


def _dahua_recorder(path: PurePath) -> Stamp | None:
    clock = _DAHUA_CLOCK.match(path.name)
    if clock is None:
        return None
    folders = path.parts[:-1]
    for index in range(len(folders) - 1, -1, -1):  # the nearest date folder above the file
        day = _DAHUA_DAY.match(folders[index])
        if day is not None:
            camera = folders[index - 1] if index > 0 and folders[index - 1] != "/" else None
            start, end = clock.groups()[:3], clock.groups()[3:]
            date = "".join(day.groups())
            return Stamp(
                _fields(date + "".join(start)), camera, _valid_or_none(date + "".join(end))
            )
    return None


_READERS: tuple[Callable[[PurePath], Stamp | None], ...] = (
    _stamped(_HIKVISION),
    _stamped(_HIKVISION_IP),
    _stamped(_DAHUA_EXPORT),
    _dahua_recorder,
    _camera_date_time,
)


def _fields(digits: str) -> Fields:
    """YYYYMMDDhhmmss -> (year, month, day, hour, minute, second)."""
    d = digits
    return int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]), int(d[12:14])


def _valid_or_none(digits: str | None) -> Fields | None:
    fields = _fields(digits) if digits else None
    return fields if fields is not None and _valid(fields) else None


def _valid(fields: Fields) -> bool:
    try:
        datetime(*fields)
    except ValueError:  # month 13, hour 25: digits that only look like a stamp
        return False
    return True


def _from_tag(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _plausible(moment: datetime, now: datetime) -> bool:
    return EARLIEST <= moment <= now + AHEAD
