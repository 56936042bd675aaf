"""A folder archive as a sweep source: real clips under the names and folder layouts that
recorders write, taken by recording time (names read on the site's clock, or the container's
time), each file one chunk, read in place."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from privmask.daemon.sweeps.folder_source import FolderSource
from privmask.daemon.sweeps.source import Chunk, NoData, SourceError, Span
from privmask.daemon.timezones import zone_named

BERLIN = zone_named("Europe/Berlin")  # UTC+1 in March, UTC+2 in summer
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)  # when the test's archive files were closed
FPS = 25


def recorded(
    root: Path,
    relative: str,
    *,
    seconds: float = 0.4,
    creation_time: str | None = None,
    written: datetime | None = LONG_AGO,
) -> Path:
    """A real, tiny H.264 clip at `root/relative` (MP4 whatever its name: FFmpeg reads a
    file by its content); `written`: its mtime (None: just now, as if still being written)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        if creation_time is not None:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    if written is not None:
        os.utime(path, (written.timestamp(), written.timestamp()))
    return path


def berlin(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def window(start: datetime, end: datetime) -> Span:
    return Span(start, end)


def listed(source: FolderSource, span: Span) -> dict[str, tuple[str | None, Span]]:
    """recording -> (camera, its one span)."""
    found = source.list(span).recordings
    assert all(len(r.spans) == 1 for r in found)
    return {r.recording: (r.camera, r.spans[0]) for r in found}


HIK = [
    "ch01_20240315090000_20240315091500.mp4",
    "ch01_20240315091500_20240315093000.mp4",
    "ch01_20240315093000_20240315094500.mp4",
]


def test_hikvision_files_overlapping_the_window_are_listed_whole(tmp_path: Path) -> None:
    for name in HIK:
        recorded(tmp_path, name)
    source = FolderSource("archive", tmp_path, BERLIN)
    assert source.cuts is False
    span = window(berlin(2024, 3, 15, 9, 10), berlin(2024, 3, 15, 9, 30))
    listing = source.list(span)
    # the file overlapping the window's start is listed with its whole span (a file is one
    # chunk: the next window lists it under the same key); the one starting at its end is not
    assert listed(source, span) == {
        HIK[0]: ("ch01", Span(berlin(2024, 3, 15, 9, 0), berlin(2024, 3, 15, 9, 15))),
        HIK[1]: ("ch01", Span(berlin(2024, 3, 15, 9, 15), berlin(2024, 3, 15, 9, 30))),
    }
    assert [r.recording for r in listing.recordings] == HIK[:2]  # in recording order
    assert listing.complete_to == span.end


def test_a_file_that_ends_where_the_window_starts_is_not_listed(tmp_path: Path) -> None:
    for name in HIK:
        recorded(tmp_path, name)
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 9, 15), berlin(2024, 3, 15, 9, 30))
    assert list(listed(source, span)) == [HIK[1]]


def test_dahua_recorder_folders_give_day_time_and_camera(tmp_path: Path) -> None:
    relative = "NVR-hall/2024-03-15/001/dav/09/09.30.00-09.45.00[M][0@0][0].dav"
    recorded(tmp_path, relative)
    recorded(tmp_path, "NVR-hall/2024-03-15/001/dav/09/09.30.00-09.45.00[M][0@0][0].idx")
    recorded(tmp_path, "2024-03-15/001/dav/09/09.31.00-09.46.00[M][0@0][0].dav")
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 9, 40), berlin(2024, 3, 15, 10))
    assert listed(source, span) == {
        relative: ("NVR-hall", Span(berlin(2024, 3, 15, 9, 30), berlin(2024, 3, 15, 9, 45))),
        # no folder above the day folder: no camera (a day is not a camera)
        "2024-03-15/001/dav/09/09.31.00-09.46.00[M][0@0][0].dav": (
            None,
            Span(berlin(2024, 3, 15, 9, 31), berlin(2024, 3, 15, 9, 46)),
        ),
    }


def test_a_name_without_an_end_ends_after_the_probed_duration(tmp_path: Path) -> None:
    recorded(tmp_path, "lobby/FRONT_20240315_093000.mp4", seconds=2)
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 9, 30, 1), berlin(2024, 3, 15, 9, 31))
    assert listed(source, span) == {
        "lobby/FRONT_20240315_093000.mp4": (
            "FRONT",
            Span(berlin(2024, 3, 15, 9, 30), berlin(2024, 3, 15, 9, 30, 2)),
        )
    }
    later = window(berlin(2024, 3, 15, 9, 30, 2), berlin(2024, 3, 15, 9, 31))
    assert listed(source, later) == {}


def test_a_file_with_only_a_container_time_is_placed_by_it(tmp_path: Path) -> None:
    recorded(tmp_path, "gate/export 7.mp4", seconds=2, creation_time="2024-03-15T08:30:00Z")
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(utc(2024, 3, 15, 8), utc(2024, 3, 15, 9))
    # no camera in the name: the first folder below the root names it
    assert listed(source, span) == {
        "gate/export 7.mp4": ("gate", Span(utc(2024, 3, 15, 8, 30), utc(2024, 3, 15, 8, 30, 2)))
    }


def test_a_file_with_no_time_but_its_mtime_ends_there(tmp_path: Path) -> None:
    recorded(tmp_path, "gate/clip.mp4", seconds=2, written=utc(2024, 3, 15, 8, 30, 2))
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(utc(2024, 3, 15, 8), utc(2024, 3, 15, 9))
    assert listed(source, span) == {
        "gate/clip.mp4": ("gate", Span(utc(2024, 3, 15, 8, 30), utc(2024, 3, 15, 8, 30, 2)))
    }


def test_a_file_that_cannot_be_read_is_still_listed_for_validation_to_report(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "ch01_20240315093000.mp4"
    junk.write_bytes(b"not a video")
    os.utime(junk, (LONG_AGO.timestamp(), LONG_AGO.timestamp()))
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))
    assert listed(source, span) == {
        junk.name: ("ch01", Span(berlin(2024, 3, 15, 9, 30), berlin(2024, 3, 15, 9, 30, 1)))
    }


MILESTONE = r"(?P<camera>[^/]+)_(?P<start>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\.mkv$"


def test_a_site_pattern_reads_names_no_built_in_pattern_knows(tmp_path: Path) -> None:
    recorded(tmp_path, "exports/Front Door_2024-03-15_09-30-00.mkv", seconds=1)
    recorded(tmp_path, "exports/ch02_20240315093000_20240315094500.mp4")  # built-in still read
    source = FolderSource("archive", tmp_path, BERLIN, pattern=MILESTONE)
    span = window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))
    assert listed(source, span) == {
        "exports/Front Door_2024-03-15_09-30-00.mkv": (
            "Front Door",
            Span(berlin(2024, 3, 15, 9, 30), berlin(2024, 3, 15, 9, 30, 1)),
        ),
        "exports/ch02_20240315093000_20240315094500.mp4": (
            "ch02",
            Span(berlin(2024, 3, 15, 9, 30), berlin(2024, 3, 15, 9, 45)),
        ),
    }


def test_a_site_pattern_can_take_the_day_from_a_folder_and_an_end_time(tmp_path: Path) -> None:
    pattern = r"(?P<start>\d{8}/\d{6})-(?P<end>\d{6})\.avi$"
    recorded(tmp_path, "cam3/20240315/093000-094500.avi")
    source = FolderSource("archive", tmp_path, BERLIN, pattern=pattern)
    span = window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))
    assert listed(source, span) == {
        "cam3/20240315/093000-094500.avi": (
            "cam3",
            Span(berlin(2024, 3, 15, 9, 30), berlin(2024, 3, 15, 9, 45)),
        )
    }


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(?P<start>\d{14}", "not a regular expression"),
        (r"cam_\d{14}\.mp4", "(?P<start>"),
        (r"(?P<start>\d{14})_(?P<stop>\d{14})", "stop"),
    ],
)
def test_a_bad_site_pattern_is_refused_when_the_source_is_made(
    tmp_path: Path, pattern: str, says: str
) -> None:
    with pytest.raises(ValueError, match="pattern") as refused:
        FolderSource("archive", tmp_path, BERLIN, pattern=pattern)
    assert says in str(refused.value)


def test_a_file_still_being_written_is_not_listed_yet(tmp_path: Path) -> None:
    recorded(tmp_path, HIK[0])
    recorded(tmp_path, HIK[1], written=None)  # its mtime is now: the recorder is writing it
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))
    listing = source.list(span)
    assert [r.recording for r in listing.recordings] == [HIK[0]]
    # the sweep may cover only up to where that file starts, or it would pass it by
    assert listing.complete_to == berlin(2024, 3, 15, 9, 15)
    stamp = LONG_AGO.timestamp()
    os.utime(tmp_path / HIK[1], (stamp, stamp))  # closed, quiet
    assert [r.recording for r in source.list(span).recordings] == HIK[:2]


def test_temporary_names_are_not_listed_and_hold_the_sweep_only_while_written(
    tmp_path: Path,
) -> None:
    recorded(tmp_path, HIK[0])
    part = recorded(tmp_path, HIK[1] + ".part", written=None)
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))
    listing = source.list(span)
    assert [r.recording for r in listing.recordings] == [HIK[0]]
    assert listing.complete_to == berlin(2024, 3, 15, 9, 15)
    stamp = LONG_AGO.timestamp()
    os.utime(part, (stamp, stamp))  # an abandoned partial file holds nothing back
    listing = source.list(span)
    assert [r.recording for r in listing.recordings] == [HIK[0]]
    assert listing.complete_to == span.end


def test_hidden_files_links_and_other_files_are_skipped(tmp_path: Path) -> None:
    root, outside = tmp_path / "archive", tmp_path / "outside"
    recorded(root, HIK[0])
    recorded(root, ".ch02_20240315090000_20240315091500.mp4")
    recorded(root, ".hidden/ch03_20240315090000_20240315091500.mp4")
    recorded(root, "ch04_20240315090000_20240315091500.jpg")
    secret = recorded(outside, "ch05_20240315090000_20240315091500.mp4")
    (root / "ch05_20240315090000_20240315091500.mp4").symlink_to(secret)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    source = FolderSource("archive", root, BERLIN)
    span = window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))
    with capture_logs() as logs:
        assert list(listed(source, span)) == [HIK[0]]
        assert list(listed(source, span)) == [HIK[0]]
    # the operator is told once about each link left alone (not about hidden files)
    ignored = [e for e in logs if e["event"] == "sweep_entry_ignored"]
    assert sorted((e["path"], e["kind"]) for e in ignored) == [
        ("ch05_20240315090000_20240315091500.mp4", "symbolic link"),
        ("linked", "symbolic link"),
    ]
    assert all(e["source"] == "archive" for e in ignored)


def test_a_name_inside_the_fall_back_hour_is_read_by_when_it_was_written(
    tmp_path: Path,
) -> None:
    """2024-10-27, Berlin: 02:00-03:00 is shown twice (00:00-01:00 UTC, then 01:00-02:00)."""
    first = "cam1/ch01_20241027021500_20241027023000.mp4"
    second = "cam2/ch01_20241027021500_20241027023000.mp4"
    recorded(tmp_path, first, written=utc(2024, 10, 27, 0, 30, 2))  # closed in the first pass
    recorded(tmp_path, second, written=utc(2024, 10, 27, 1, 30, 2))
    source = FolderSource("archive", tmp_path, BERLIN)
    early = window(utc(2024, 10, 27, 0), utc(2024, 10, 27, 1))
    late = window(utc(2024, 10, 27, 1), utc(2024, 10, 27, 2))
    assert listed(source, early) == {
        first: ("ch01", Span(utc(2024, 10, 27, 0, 15), utc(2024, 10, 27, 0, 30)))
    }
    assert listed(source, late) == {
        second: ("ch01", Span(utc(2024, 10, 27, 1, 15), utc(2024, 10, 27, 1, 30)))
    }


def test_a_copy_whose_write_time_cannot_tell_is_read_as_the_later_pass(tmp_path: Path) -> None:
    """Taken late, a file is swept late, never passed by before it existed."""
    recorded(tmp_path, "ch01_20241027021500_20241027023000.mp4")  # copied here later
    source = FolderSource("archive", tmp_path, BERLIN)
    day = window(utc(2024, 10, 26, 22), utc(2024, 10, 27, 23))
    assert listed(source, day) == {
        "ch01_20241027021500_20241027023000.mp4": (
            "ch01",
            Span(utc(2024, 10, 27, 1, 15), utc(2024, 10, 27, 1, 30)),
        )
    }


def test_only_day_folders_that_can_overlap_the_window_are_walked(tmp_path: Path) -> None:
    # a file started the day before runs into the window: that day's folder is walked
    recorded(tmp_path, "NVR/2024-03-14/001/dav/23/23.50.00-00.10.00[R][0@0][0].dav")
    # a misfiled name in a day folder far from the window: that folder is never opened
    recorded(tmp_path, "NVR/2024-03-01/001/dav/00/00.00.00-00.10.00[R][0@0][0].dav")
    recorded(tmp_path, "other/20240301/ch01_20240315000000_20240315001000.mp4")
    source = FolderSource("archive", tmp_path, BERLIN)
    span = window(berlin(2024, 3, 15, 0), berlin(2024, 3, 15, 1))
    assert list(listed(source, span)) == [
        "NVR/2024-03-14/001/dav/23/23.50.00-00.10.00[R][0@0][0].dav"
    ]


def test_day_folders_of_the_day_after_the_window_are_walked_too(tmp_path: Path) -> None:
    """Some exports name day folders by the UTC day: 20:30 in Los Angeles is the next day."""
    recorded(tmp_path, "vms/20240316/lobby_20240315_203000.mp4", seconds=1)
    source = FolderSource("archive", tmp_path, zone_named("America/Los_Angeles"))
    span = window(utc(2024, 3, 16, 3), utc(2024, 3, 16, 4))  # 20:00-21:00 on the 15th there
    assert list(listed(source, span)) == ["vms/20240316/lobby_20240315_203000.mp4"]


def test_a_missing_root_is_a_permanent_error_naming_the_folder(tmp_path: Path) -> None:
    source = FolderSource("archive", tmp_path / "nvr-archive", BERLIN)
    with pytest.raises(SourceError, match="nvr-archive") as failed:
        source.list(window(utc(2024, 3, 15), utc(2024, 3, 16)))
    assert failed.value.permanent


def test_a_root_that_is_not_a_folder_is_a_permanent_error(tmp_path: Path) -> None:
    (tmp_path / "nvr-archive").write_text("not a folder")
    source = FolderSource("archive", tmp_path / "nvr-archive", BERLIN)
    with pytest.raises(SourceError, match="nvr-archive") as failed:
        source.list(window(utc(2024, 3, 15), utc(2024, 3, 16)))
    assert failed.value.permanent


def test_an_empty_root_is_an_error_to_retry(tmp_path: Path) -> None:
    """An unmounted share shows an empty folder; taking it as "no recordings" would move the
    watermark past everything the share holds."""
    source = FolderSource("archive", tmp_path, BERLIN)
    with pytest.raises(SourceError, match="empty") as failed:
        source.list(window(utc(2024, 3, 15), utc(2024, 3, 16)))
    assert not failed.value.permanent


def chunk_of(source: FolderSource, recording: str, span: Span) -> Chunk:
    return Chunk(source.name, recording, "ch01", span.start, span.end)


def test_fetch_gives_the_file_itself_read_in_place(tmp_path: Path) -> None:
    root, staging = tmp_path / "archive", tmp_path / "staging"
    staging.mkdir()
    clip = recorded(root, HIK[0])
    before = (clip.read_bytes(), clip.stat().st_mtime_ns)
    source = FolderSource("archive", root, BERLIN)
    (found,) = source.list(window(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 10))).recordings
    fetched = source.fetch(chunk_of(source, found.recording, found.spans[0]), staging)
    assert (fetched.path, fetched.own_copy) == (clip, False)
    assert fetched.start == berlin(2024, 3, 15, 9)
    assert (clip.read_bytes(), clip.stat().st_mtime_ns) == before
    assert list(staging.iterdir()) == []


def test_a_file_gone_since_it_was_listed_is_no_data(tmp_path: Path) -> None:
    """The recorder's retention deleted it: a gap, not an error to retry forever."""
    recorded(tmp_path, HIK[1])
    source = FolderSource("archive", tmp_path, BERLIN)
    span = Span(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 9, 15))
    with pytest.raises(NoData):
        source.fetch(chunk_of(source, HIK[0], span), tmp_path)


@pytest.mark.parametrize("recording", ["../outside.mp4", "/etc/hostname", "linked.mp4"])
def test_fetch_opens_nothing_outside_the_root_nor_through_a_link(
    tmp_path: Path, recording: str
) -> None:
    root = tmp_path / "archive"
    recorded(root, HIK[0])
    (root / "linked.mp4").symlink_to(recorded(tmp_path, "outside.mp4"))
    source = FolderSource("archive", root, BERLIN)
    span = Span(berlin(2024, 3, 15, 9), berlin(2024, 3, 15, 9, 15))
    with pytest.raises(SourceError) as refused:
        source.fetch(chunk_of(source, recording, span), tmp_path)
    assert refused.value.permanent


def test_a_negative_quiet_time_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quiet_seconds"):
        FolderSource("archive", tmp_path, BERLIN, quiet_seconds=-1)
