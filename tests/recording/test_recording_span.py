"""The span a recorder's file name gives (start and, where the name has it, end), read as the
site's wall clock; the hour that a DST fall-back repeats is read as the later pass unless the
file was last written before it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from privmask.daemon.recording import recording_time, span_from_name
from privmask.daemon.timezones import zone_named

BERLIN = zone_named("Europe/Berlin")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def in_utc(start: datetime, end: datetime | None) -> tuple[datetime, datetime | None]:
    """Compared in UTC: Python calls a time in a fold unequal to any time in another zone."""
    return start.astimezone(UTC), end.astimezone(UTC) if end is not None else None


# (name, start UTC, end UTC or None, camera); Berlin is UTC+1 in winter, UTC+2 in summer
SPANS = [
    ("ch01_20240315093000_20240315094500.mp4", utc(2024, 3, 15, 8, 30), utc(2024, 3, 15, 8, 45),
     "ch01"),
    ("ch01_20191121000002_20191121015621_0.mp4", utc(2019, 11, 20, 23, 0, 2),
     utc(2019, 11, 21, 0, 56, 21), "ch01"),
    ("ch01_20240315093000.mp4", utc(2024, 3, 15, 8, 30), None, "ch01"),
    ("2024-03-15/001/dav/09/09.30.00-09.45.00[M][0@0][0].dav", utc(2024, 3, 15, 8, 30),
     utc(2024, 3, 15, 8, 45), None),
    ("NVR1/2024-07-01/001/dav/23/23.50.00-00.10.00[R][0@0][0].dav", utc(2024, 7, 1, 21, 50),
     utc(2024, 7, 1, 22, 10), "NVR1"),  # past midnight: the end is on the next day
    ("maq_ch2_main_20210207170000_20210207180000.dav", utc(2021, 2, 7, 16), utc(2021, 2, 7, 17),
     "maq_ch2"),
    ("192.168.0.64_01_20190319093422939_MOTION_DETECTION.mp4", utc(2019, 3, 19, 8, 34, 22), None,
     "192.168.0.64_01"),
    ("FRONT_20240315_093000.mp4", utc(2024, 3, 15, 8, 30), None, "FRONT"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "start", "end", "camera"), SPANS)
def test_names_give_the_start_and_the_end_where_they_have_it(
    name: str, start: datetime, end: datetime | None, camera: str | None
) -> None:
    found = span_from_name(name, BERLIN)
    assert found is not None
    assert (*in_utc(found.start, found.end), found.camera) == (start, end, camera)
    assert found.start.tzinfo is BERLIN  # shown in the site's zone, as recording times are


@pytest.mark.parametrize("name", ["clip.mp4", "09.30.00-09.45.00[M][0@0][0].dav"])
def test_other_names_give_no_span(name: str) -> None:
    assert span_from_name(name, BERLIN) is None


def test_an_end_before_the_start_is_not_believed() -> None:
    found = span_from_name("ch01_20240315093000_20240314094500.mp4", BERLIN)
    assert found is not None and found.end is None  # the duration is probed instead


# 2024-10-27 in Berlin: 03:00 CEST goes back to 02:00 CET, so 02:00-03:00 happens twice:
# first from 00:00 to 01:00 UTC, then from 01:00 to 02:00 UTC.
FALL_BACK = "ch01_20241027023000_20241027024500.mp4"


def test_a_name_inside_the_repeated_hour_is_read_as_the_later_pass() -> None:
    """The later reading is never before the recording was made, so a sweep whose watermark
    has passed the earlier one cannot have skipped a file that did not exist yet."""
    found = span_from_name(FALL_BACK, BERLIN)
    assert found is not None
    assert in_utc(found.start, found.end) == (utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 1, 45))
    assert found.start.fold == 1  # the wall clock shows 02:30 CET


def test_a_file_last_written_before_the_later_pass_is_from_the_earlier_one() -> None:
    written = utc(2024, 10, 27, 0, 45, 2)  # the recorder closed it at 02:45:02 CEST
    found = span_from_name(FALL_BACK, BERLIN, written=written)
    assert found is not None
    assert in_utc(found.start, found.end) == (utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 0, 45))


def test_a_file_that_runs_into_the_repeated_hour_ends_in_its_first_pass() -> None:
    found = span_from_name("2024-10-27/01.50.00-02.10.00[R][0@0][0].dav", BERLIN)
    assert found is not None
    assert in_utc(found.start, found.end) == (utc(2024, 10, 26, 23, 50), utc(2024, 10, 27, 0, 10))


def test_a_file_across_the_fall_back_goes_from_the_first_pass_to_the_second() -> None:
    """02:45 CEST to 02:15 CET: the end's wall clock is before the start's."""
    found = span_from_name("2024-10-27/02.45.00-02.15.00[R][0@0][0].dav", BERLIN)
    assert found is not None
    assert in_utc(found.start, found.end) == (utc(2024, 10, 27, 0, 45), utc(2024, 10, 27, 1, 15))


def test_a_name_in_the_skipped_spring_forward_hour_still_gives_a_span() -> None:
    """02:30 never shows on a clock that follows DST on 2024-03-31; a recorder that does not
    follow it wrote it: read with the offset before the change."""
    found = span_from_name("ch01_20240331023000_20240331024500.mp4", BERLIN)
    assert found is not None
    assert in_utc(found.start, found.end) == (utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 1, 45))


def test_a_clips_recording_time_reads_the_repeated_hour_as_its_name_span_does(
    tmp_path: Path,
) -> None:
    """An inbox clip and a swept file with the same name and mtime get the same time."""
    clip = tmp_path / FALL_BACK
    clip.write_bytes(b"")
    first = utc(2024, 10, 27, 0, 45, 2).timestamp()
    later = utc(2024, 10, 28).timestamp()
    assert recording_time(clip, {}, BERLIN, mtime=first)[0].astimezone(UTC) == utc(
        2024, 10, 27, 0, 30
    )
    assert recording_time(clip, {}, BERLIN, mtime=later)[0].astimezone(UTC) == utc(
        2024, 10, 27, 1, 30
    )
