"""What the names in a folder archive say: a site's own name pattern, day folders, and which
files are video at all. Pure: nothing here touches a file.

A site pattern is for layouts no built-in reader knows (Milestone XProtect's AVI/MKV/MP4
exports have no documented name pattern; a VMS may be set up to name files its own way).
It is a Python regular expression, searched in the file's path below the archive root
(folders joined with "/"), with named groups:

- `start` (required): the recording's start on the site's clock; its digits, whatever
  separates them, must be 14: YYYYMMDDhhmmss (`2024-03-15_09-30-00` or `20240315/093000`);
- `end` (optional): 14 digits likewise, or 6 (hhmmss, on the start's day; an end before the
  start is on the next day);
- `camera` (optional): the camera as rules and packages name it.

Example, a Milestone export `Front Door_2024-03-15_09-30-00.mkv`:
`(?P<camera>[^/]+)_(?P<start>\\d{4}-\\d\\d-\\d\\d_\\d\\d-\\d\\d-\\d\\d)\\.mkv$`.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import PurePosixPath

from privmask.daemon.recording import Fields, Stamp

GROUPS = frozenset({"start", "end", "camera"})

# Containers recorders and VMS exports write; anything else in an archive (index files,
# snapshots, logs, players) is left alone
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".mts", ".m2ts", ".dav", ".asf",
        ".webm", ".flv", ".3gp", ".mpg", ".mpeg", ".ps", ".h264", ".264", ".h265", ".265",
    }
)  # fmt: skip

_DAY_FOLDER = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")  # YYYY-MM-DD or YYYYMMDD


class NamePattern:
    """A site's name pattern, checked once: ValueError with the reason otherwise."""

    def __init__(self, text: str) -> None:
        try:
            self.regex = re.compile(text)
        except re.error as exc:
            raise ValueError(f"name pattern {text!r} is not a regular expression: {exc}") from None
        names = set(self.regex.groupindex)
        if "start" not in names:
            raise ValueError(
                f"name pattern {text!r} has no (?P<start>...) group for the recording's start"
            )
        unknown = sorted(names - GROUPS)
        if unknown:
            raise ValueError(
                f"name pattern {text!r} has unknown group(s) {', '.join(unknown)}; "
                "use start, end and camera"
            )
        self.text = text

    def read(self, relative: PurePosixPath) -> Stamp | None:
        """What the pattern finds in `relative` (the path below the root); None when it does
        not match or its start is not a time."""
        found = self.regex.search(relative.as_posix())
        if found is None:
            return None
        start = _digits(found["start"])
        if start is None or len(start) != 14:
            return None
        fields = _fields(start)
        if fields is None:
            return None
        end = _end(found.groupdict().get("end"), start)
        camera = found.groupdict().get("camera") or None
        return Stamp(fields, camera, end)


def day_of_folder(name: str) -> date | None:
    """The day a folder named YYYY-MM-DD or YYYYMMDD holds (recorders' day folders)."""
    found = _DAY_FOLDER.match(name)
    if found is None:
        return None
    try:
        return date(*(int(part) for part in found.groups()))
    except ValueError:
        return None


def is_video_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in VIDEO_SUFFIXES


def could_become_video(name: str) -> bool:
    """A video name, or a temporary one of a video (`clip.mp4.part`, rsync's `.clip.mp4.x1`)."""
    return any(suffix.lower() in VIDEO_SUFFIXES for suffix in PurePosixPath(name).suffixes)


def _digits(text: str | None) -> str | None:
    return "".join(c for c in text if c.isdigit()) if text else None


def _end(text: str | None, start: str) -> Fields | None:
    digits = _digits(text)
    if digits is None:
        return None
    if len(digits) == 6:  # a time of day: the start's day
        digits = start[:8] + digits
    return _fields(digits) if len(digits) == 14 else None


def _fields(digits: str) -> Fields | None:
    d = digits
    fields = (int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]), int(d[12:14]))
    try:
        date(*fields[:3])
    except ValueError:
        return None
    return fields if fields[3] < 24 and fields[4] < 60 and fields[5] < 60 else None
