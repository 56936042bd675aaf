"""The `sweeps:` section of the daemon's configuration: what to sweep, from where, when.

Each sweep names one source (a folder tree, an ONVIF Profile G recorder, a Hikvision ISAPI
or a Dahua recorder), a cron schedule read on the site's clock, how far behind now it stays
(`lag`), where its first run starts (`window` or `since`), and the chunk length recorders'
recordings are cut into. Recorder passwords are secret references (file, environment
variable, systemd credential), never the password itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import Discriminator, Field, Tag, field_validator

from privmask.daemon.sweeps.folder_names import NamePattern
from privmask.rules.base import StrictModel
from privmask.rules.schema import SecretRef

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
KINDS = ("folder", "onvif", "isapi", "dahua")


def parse_duration(value: object) -> timedelta:
    """`90`, `90s`, `30m`, `2h`, `1d` -> a timedelta; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 30m, 2h or 1d")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    found = _DURATION.match(str(value))
    if found is None:
        raise ValueError(f"{value!r} is not a duration (such as 90s, 30m, 2h or 1d)")
    return timedelta(seconds=float(found[1]) * _UNITS[found[2]])


def cron_trigger(expression: str, timezone: Any) -> CronTrigger:
    """The trigger of a 5-field cron expression on `timezone`'s clock; ValueError with the
    reason when it is malformed or can never fire (e.g. "30 2 31 2 *")."""
    trigger = CronTrigger.from_crontab(expression, timezone=timezone)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    if trigger.get_next_fire_time(None, start) is None:
        raise ValueError(f"cron {expression!r} never fires")
    return trigger


class FolderSpec(StrictModel):
    folder: str = Field(description="the archive's root folder (a mounted share)")
    pattern: str | None = Field(
        default=None,
        description="a regular expression searched in each file's path below the root, with "
        "named groups `start` (YYYYMMDDhhmmss, separators allowed), optional `end` (14 or 6 "
        "digits) and `camera`, for names no built-in pattern knows (e.g. Milestone exports); "
        "none: the vendors' own names, else container time",
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            NamePattern(value)  # its ValueError says what is wrong
        return value


class _RecorderSpec(StrictModel):
    username: str = Field(min_length=1, description="the recorder's user")
    password: SecretRef = Field(
        description="where its password is found: exactly one of `file`, `env`, `credential`"
    )
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per request")


class OnvifSpec(_RecorderSpec):
    onvif: str = Field(description="the device service URL (`http://HOST/onvif/device_service`)")
    recordings: list[str] | None = Field(
        default=None, description="recording tokens taken; none: every recording"
    )


class IsapiSpec(_RecorderSpec):
    isapi: str = Field(description="the recorder's base URL (`http://HOST`)")
    tracks: list[int] | None = Field(
        default=None, description="track ids taken (101: camera 1 main); none: every track"
    )


class DahuaSpec(_RecorderSpec):
    dahua: str = Field(description="the recorder's base URL (`http://HOST`)")
    channels: list[int] | None = Field(
        default=None, description="channels taken (from 1); none: every channel"
    )


def _kind(raw: Any) -> str | None:
    """Which source a mapping describes: the one of folder/onvif/isapi/dahua it names."""
    keys = raw.keys() if isinstance(raw, dict) else {k for k in KINDS if hasattr(raw, k)}
    named = [k for k in KINDS if k in keys]
    return named[0] if len(named) == 1 else None


SourceSpec = Annotated[
    Annotated[FolderSpec, Tag("folder")]
    | Annotated[OnvifSpec, Tag("onvif")]
    | Annotated[IsapiSpec, Tag("isapi")]
    | Annotated[DahuaSpec, Tag("dahua")],
    Discriminator(
        _kind,
        custom_error_type="source_kind",
        custom_error_message="give exactly one of folder, onvif, isapi or dahua",
    ),
]


class SweepSpec(StrictModel):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="the sweep's name: letters, digits, `_.-`; shown in logs and status "
        "(the source itself, not the name, keys its chunks)",
    )
    schedule: str = Field(
        description='cron expression (5 fields) on the site\'s clock, e.g. `"30 2 * * *"`'
    )
    lag: str = Field(
        default="0s",
        description="how far behind now a run stops (`90s`, `30m`, `2h`, `1d`; at most 30 "
        "days): recorders finish writing",
    )
    window: Literal["previous day"] | None = Field(
        default="previous day",
        description="where the first run starts: `previous day` (midnight, site time, "
        "before the first run); later runs go on from what is covered",
    )
    since: datetime | None = Field(
        default=None, description="the first run starts here instead (ISO 8601 with zone)"
    )
    chunk_minutes: int = Field(
        default=15,
        ge=1,
        le=360,  # a replayed chunk's 90 kHz MP4 times overflow past ~6.6 h of hole
        description="recorders' recordings are cut into chunks this long, on UTC boundaries "
        "(at most 6 hours)",
    )
    camera: str | None = Field(
        default=None, description="camera id for rules, where the source does not name one"
    )
    source: SourceSpec = Field(
        description="one of `{folder: PATH, pattern}`, `{onvif: URL, username, password}`, "
        "`{isapi: URL, username, password, tracks}`, `{dahua: URL, username, password, "
        "channels}`"
    )

    @field_validator("lag")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) > timedelta(days=30):
            raise ValueError("lag must be at most 30 days")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, expression: str) -> str:
        cron_trigger(expression, UTC)  # on any clock: a malformed or never-firing cron
        return expression

    @field_validator("since")
    @classmethod
    def _aware(cls, since: datetime | None) -> datetime | None:
        if since is not None and since.tzinfo is None:
            raise ValueError("since needs a time zone (e.g. 2026-03-01T00:00:00+01:00)")
        return since

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if hasattr(self.source, k))

    @property
    def delay(self) -> timedelta:
        """The lag as a duration."""
        return parse_duration(self.lag)

    @property
    def chunk(self) -> timedelta:
        return timedelta(minutes=self.chunk_minutes)

    def where(self) -> str:
        """The source as lists show it: kind and place, never a credential."""
        from privmask.adapters.urls import redact

        place = str(getattr(self.source, self.kind))
        return f"{self.kind} {place if self.kind == 'folder' else redact(place)}"

    def identity(self) -> str:
        """What the source is, whichever sweep names it: the first part of its chunks' keys,
        so two sweeps over one folder or recorder make each chunk once. A folder by its
        resolved root; a recorder by its URL without credentials (a chunk's recording, the
        key's next part, tells its recordings apart)."""
        from pathlib import Path

        from privmask.adapters.urls import redact

        place = str(getattr(self.source, self.kind))
        if self.kind == "folder":
            return f"folder:{Path(place).resolve()}"
        return f"{self.kind}:{redact(place).rstrip('/')}"


def unique_names(sweeps: list[SweepSpec]) -> list[SweepSpec]:
    """Sweep names key watermarks and status: two sweeps must not share one."""
    seen: set[str] = set()
    for sweep in sweeps:
        if sweep.name in seen:
            raise ValueError(f"two sweeps are named {sweep.name!r}")
        seen.add(sweep.name)
    return sweeps
