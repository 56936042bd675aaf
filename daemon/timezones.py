"""The site's clock: a time zone by its IANA name, and the host's own zone found by name.

A zone is kept by name because worker processes receive it pickled, and only a named zone
pickles. `timezone:` in the daemon's config is checked with `zone_named`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError, available_timezones


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError with the message a user reads otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
        raise ValueError(
            f"unknown time zone {name!r}; give an IANA name such as Europe/Berlin"
        ) from None


def host_timezone(
    environ: Mapping[str, str] = os.environ,
    localtime: Path = Path("/etc/localtime"),
    timezone_file: Path = Path("/etc/timezone"),
) -> tzinfo:
    """The zone this host's clock shows, by name (worker processes get it pickled, and only
    a named zone pickles): `$TZ` when it names one; the zone /etc/localtime links to;
    /etc/timezone (Debian); the zone whose data /etc/localtime holds; else UTC, as glibc."""
    link = os.path.realpath(localtime) if localtime.is_symlink() else ""
    candidates = [
        environ.get("TZ", "").removeprefix(":"),
        link.partition("zoneinfo/")[2],
        _first_line(timezone_file),
    ]
    for name in filter(None, candidates):
        with contextlib.suppress(ValueError):
            return zone_named(name)
    return _zone_with_data(localtime) or UTC


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _zone_with_data(path: Path) -> ZoneInfo | None:
    """The named zone whose data file is byte for byte `path` (a copied /etc/localtime)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    for name in sorted(available_timezones()):
        for root in TZPATH:
            candidate = Path(root, name)
            with contextlib.suppress(OSError):
                if candidate.stat().st_size == len(data) and candidate.read_bytes() == data:
                    return ZoneInfo(name)
    return None
