"""Which jobs a rule applies to: cameras, folders, file names, times of day and dates.

A job is seen here only as its `Facts` (not the journal's `Job`, which is a queued file).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import PurePath

from pydantic import Field, model_validator

from privmask.rules.base import StrictModel


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


@dataclass(frozen=True)
class Facts:
    """The facts about a clip or stream that rules match against; unknown facts are None."""

    camera: str | None = None  # ONVIF serial or configured name
    folder: str | None = None  # the folder the clip arrived in
    file_name: str | None = None
    when: datetime | None = None  # recording time, local


class TimeWindow(StrictModel):
    """Times of day on some weekdays. A window whose end is before its start spans midnight;
    one whose start and end are equal covers the whole day."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(Weekday), description="weekdays; default: every day"
    )
    start: time = Field(alias="from", description="start, included")
    end: time = Field(
        alias="to",
        description="end, excluded; before `from`, the window spans midnight (the "
        "early hours count for the evening's day); equal to `from`, it is the whole day",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if not self.days:
            raise ValueError("a time window needs at least one day")
        return self

    def contains(self, moment: datetime) -> bool:
        clock = moment.time()
        if self.start == self.end:
            inside, day = True, moment.date()
        elif self.start < self.end:
            inside, day = self.start <= clock < self.end, moment.date()
        else:  # e.g. 22:00-06:00: the early hours belong to the previous evening's window
            inside = clock >= self.start or clock < self.end
            day = moment.date() if clock >= self.start else date.fromordinal(moment.toordinal() - 1)
        return inside and list(Weekday)[day.weekday()] in self.days


class DateWindow(StrictModel):
    """Calendar dates, both ends included; either end may be left open."""

    start: date | None = Field(
        default=None, alias="from", description="first day, included; none: open"
    )
    end: date | None = Field(default=None, alias="to", description="last day, included; none: open")

    @model_validator(mode="after")
    def _ordered(self) -> DateWindow:
        if self.start is None and self.end is None:
            raise ValueError("a date window needs 'from', 'to' or both")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"date window ends ({self.end}) before it starts ({self.start})")
        return self

    def contains(self, moment: datetime) -> bool:
        day = moment.date()
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


class Match(StrictModel):
    """Every criterion given must hold; within one criterion, any listed value will do.

    A rule without `match` applies to every job, as the least specific rule.
    """

    cameras: list[str] = Field(
        default_factory=list,
        description="camera ids (ONVIF serial) or configured names; case-insensitive",
    )
    folders: list[str] = Field(
        default_factory=list,
        description="folders the clip may arrive in, subfolders included",
    )
    files: list[str] = Field(
        default_factory=list,
        description="""globs on the clip's file name, e.g. `"*.mp4"`, `"CAM01_*"`""",
    )
    times: list[TimeWindow] = Field(
        default_factory=list, description="times of day on some weekdays (recording time)"
    )
    dates: list[DateWindow] = Field(
        default_factory=list, description="calendar date ranges (recording time)"
    )

    @property
    def specificity(self) -> int:
        """How many criteria are given: the more, the more specific the rule."""
        return sum(
            bool(c) for c in (self.cameras, self.folders, self.files, self.times, self.dates)
        )

    def check(self, job: Facts) -> list[str]:
        """Why the job does not match (empty: it matches)."""
        misses = []
        if self.cameras and (job.camera or "").casefold() not in {
            c.casefold() for c in self.cameras
        }:
            misses.append(f"camera {job.camera or '(unknown)'} is not one of {self.cameras}")
        if self.folders and not any(_within(job.folder, f) for f in self.folders):
            misses.append(f"folder {job.folder or '(unknown)'} is not in {self.folders}")
        if self.files and not any(fnmatch.fnmatch(job.file_name or "", g) for g in self.files):
            misses.append(f"file {job.file_name or '(unknown)'} matches none of {self.files}")
        if self.times and not (job.when and any(w.contains(job.when) for w in self.times)):
            misses.append(f"time {job.when or '(unknown)'} is outside the time windows")
        if self.dates and not (job.when and any(w.contains(job.when) for w in self.dates)):
            misses.append(
                f"date {job.when.date() if job.when else '(unknown)'} is outside the dates"
            )
        return misses


def _within(folder: str | None, root: str) -> bool:
    if not folder:
        return False
    path, parent = PurePath(folder), PurePath(root)
    return path == parent or parent in path.parents
