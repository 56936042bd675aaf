"""The time range of a reveal: offsets into the clip, or wall-clock times with their zone.

A custodian asked for "the minutes around 14:03" writes either an offset into the clip
(`90`, `1:30`, `0:01:30.5`) or the time itself in ISO 8601 with its zone
(`2026-11-30T14:03:00+01:00`, `...Z`), which is resolved against the clip's recording
start from the journal. A time without a zone is refused: a wrong guess of the zone would
reveal the wrong hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_OFFSET = re.compile(r"(?:(?:(?P<h>\d+):)?(?P<m>\d+):)?(?P<s>\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Span:
    start: str | None = None  # as given
    end: str | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Span:
        """Check the syntax of both ends now (ValueError naming the option)."""
        for option, text in (("--from", start), ("--to", end)):
            if text is not None:
                _check(option, text)
        span = cls(start, end)
        both = [_offset(t) for t in (start, end) if t is not None and _is_offset(t)]
        if len(both) == 2 and both[1] <= both[0]:
            raise ValueError(f"--to {end} is not after --from {start}")
        return span

    @property
    def whole(self) -> bool:
        return self.start is None and self.end is None

    def resolve(self, recorded: str | None) -> tuple[float | None, float | None]:
        """Both ends as seconds from the clip's first frame; `recorded` is the clip's
        recording start (ISO 8601), needed only for ends given as times."""
        start = _seconds("--from", self.start, recorded)
        end = _seconds("--to", self.end, recorded)
        if start is not None and end is not None and end <= start:
            raise ValueError(f"--to {self.end} is not after --from {self.start}")
        return start, end


def _check(option: str, text: str) -> None:
    if _is_offset(text):
        _offset(text)
        return
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is neither an offset into the clip (90, 1:30, 0:01:30.5) nor "
            "an ISO 8601 time with its zone (2026-11-30T14:03:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{option} {text} has no time zone; add it (+01:00, Z), or give an offset into the clip"
        )


def _is_offset(text: str) -> bool:
    return _OFFSET.fullmatch(text.strip()) is not None


def _offset(text: str) -> float:
    found = _OFFSET.fullmatch(text.strip())
    assert found is not None
    hours, minutes = int(found["h"] or 0), int(found["m"] or 0)
    seconds = float(found["s"])
    if (found["m"] is not None and seconds >= 60) or (found["h"] is not None and minutes >= 60):
        raise ValueError(f"{text!r}: minutes and seconds run 0-59 (h:mm:ss.s)")
    return hours * 3600 + minutes * 60 + seconds


def _seconds(option: str, text: str | None, recorded: str | None) -> float | None:
    if text is None:
        return None
    if _is_offset(text):
        return _offset(text)
    if recorded is None:
        raise ValueError(
            f"{option} {text}: the journal does not know when this clip was recorded; "
            "give an offset into the clip instead"
        )
    start = datetime.fromisoformat(recorded)
    if start.tzinfo is None:  # not written so by privmask; a guess could reveal the wrong hour
        raise ValueError(f"{option} {text}: the clip's recording time has no zone ({recorded})")
    offset = (datetime.fromisoformat(text) - start).total_seconds()
    if offset < 0:
        raise ValueError(f"{option} {text} is before the clip's recording starts ({recorded})")
    return offset
