"""The recording time of a clip, in the site's zone: from the container, a vendor's export
name, or the file's mtime, and which of them it came from; a camera id from such a name."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest

from privmask.adapters.recording import container_metadata
from privmask.daemon.recording import camera_from_name, recording_time
from privmask.rules.match import Facts
from privmask.rules.ruleset import RuleSet

BERLIN = ZoneInfo("Europe/Berlin")


def write_clip(path: Path, creation_time: str | None = None) -> Path:
    """A real, tiny clip; with `creation_time`, the container's tag, as cameras write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    known = path.suffix in (".mp4", ".mkv", ".mov")  # a Dahua .dav: written as Matroska here
    with av.open(str(path), "w", format=None if known else "matroska") as container:
        if creation_time is not None:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def local(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=BERLIN)  # type: ignore[misc]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_the_container_creation_time_is_read_and_shown_in_the_site_zone(
    tmp_path: Path, suffix: str
) -> None:
    clip = write_clip(tmp_path / f"clip{suffix}", "2024-07-15T21:30:00.000000Z")
    when, source = recording_time(clip, container_metadata(clip), BERLIN)
    assert (when, source) == (local(2024, 7, 15, 23, 30), "container")  # summer: UTC+2
    assert when.utcoffset() == timedelta(hours=2)


def test_a_container_time_wins_over_the_name(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "ch01_20240315093000.mp4", "2024-03-15T07:00:00Z")
    assert recording_time(clip, container_metadata(clip), BERLIN) == (
        local(2024, 3, 15, 8, 0),
        "container",
    )


@pytest.mark.parametrize("tag", ["2099-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "not a date"])
def test_an_implausible_container_time_is_passed_over(tmp_path: Path, tag: str) -> None:
    clip = write_clip(tmp_path / "ch01_20240315093000.mp4", tag)
    assert recording_time(clip, container_metadata(clip), BERLIN) == (
        local(2024, 3, 15, 9, 30),
        "file_name",
    )


# Real names, as the search tool found them in public code and manuals; the folders count
# for Dahua, whose file names hold only the time of day.
NAMES = [
    # Hikvision NVR export: channel, start[, end[, part]]
    ("ch01_20190306074318.mp4", (2019, 3, 6, 7, 43, 18), "ch01"),
    ("ch01_20191121000002_20191121015621_0.mp4", (2019, 11, 21, 0, 0, 2), "ch01"),
    ("ch08_20200919000000.mp4", (2020, 9, 19, 0, 0, 0), "ch08"),
    ("cut_ch01_20190602061150.mp4", (2019, 6, 2, 6, 11, 50), "ch01"),
    # Hikvision client / FTP: address_channel_start with milliseconds
    ("192.168.0.64_01_20190319093422939_MOTION_DETECTION.mp4", (2019, 3, 19, 9, 34, 22),
     "192.168.0.64_01"),
    ("10.4.100.111_01_20150619045051383_TIMING.mp4", (2015, 6, 19, 4, 50, 51), "10.4.100.111_01"),
    # Dahua recorder / SD card: date folder, HH.MM.SS-HH.MM.SS[type][..].dav
    ("2026-07-23/001/dav/01/01.16.36-01.17.17[M][0@0][0].dav", (2026, 7, 23, 1, 16, 36), None),
    ("AMC0028V_795UUB/2021-03-06/001/dav/10/10.27.32-10.28.00[M][0@0][0].dav",
     (2021, 3, 6, 10, 27, 32), "AMC0028V_795UUB"),
    ("2024-01-15/08.00.00-08.05.00[M][0@0][0].dav", (2024, 1, 15, 8, 0, 0), None),
    ("2026-05-02/0/dav/01/1/0/627506/01.30.00-02.00.00[R][0@0][0].dav", (2026, 5, 2, 1, 30, 0),
     None),
    ("AMC01848_F01N44/2021-03-06/10hour/mp4/10.22.28-10.22.55[M][0@0][0].mp4",
     (2021, 3, 6, 10, 22, 28), "AMC01848_F01N44"),
    ("2026-07-23/19.00.00-20.00.00[R][0@0][0].dav.mp4", (2026, 7, 23, 19, 0, 0), None),
    # Dahua export: device_channel_stream_start_end
    ("maq_ch2_main_20210207170000_20210207180000.dav", (2021, 2, 7, 17, 0, 0), "maq_ch2"),
    # CAM_YYYYMMDD_HHMMSS
    ("cam1_20231114_100000.mp4", (2023, 11, 14, 10, 0, 0), "cam1"),
    ("201D_CAM1_20231005_085100_02.mp4", (2023, 10, 5, 8, 51, 0), "201D_CAM1"),
    ("FRONT_20240315_093000.mp4", (2024, 3, 15, 9, 30, 0), "FRONT"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fields", "camera"), NAMES)
def test_vendor_export_names_give_the_time_and_the_camera(
    tmp_path: Path, name: str, fields: tuple[int, ...], camera: str | None
) -> None:
    clip = write_clip(tmp_path / name)
    now = datetime(2027, 1, 1, tzinfo=UTC)  # some examples are from 2026
    found = recording_time(clip, container_metadata(clip), BERLIN, now=now)
    assert found == (local(*fields), "file_name")
    assert camera_from_name(name) == camera


@pytest.mark.parametrize(
    "name",
    [
        "clip.mp4",
        "ch01_20241340093000.mp4",  # month 13
        "ch01_20240315256000.mp4",  # hour 25
        "05.13.23-05.30.35[M][0@0][0].dav",  # Dahua without its date folder
        "ch01_2024031509300.mp4",  # 13 digits
        "ch01_19990315093000.mp4",  # before any plausible recording
    ],
)
def test_other_names_fall_back_to_the_mtime(tmp_path: Path, name: str) -> None:
    clip = write_clip(tmp_path / name)
    stamp = local(2024, 12, 24, 18, 5, 7).timestamp()
    os.utime(clip, (stamp, stamp))
    assert recording_time(clip, container_metadata(clip), BERLIN) == (
        local(2024, 12, 24, 18, 5, 7),
        "mtime",
    )


def test_the_mtime_intake_saw_can_be_given(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4")
    seen = local(2025, 1, 2, 3, 4, 5).timestamp()
    assert recording_time(clip, {}, BERLIN, mtime=seen) == (local(2025, 1, 2, 3, 4, 5), "mtime")


def test_names_that_are_not_vendor_exports_give_no_camera() -> None:
    for name in ("clip.mp4", "holiday_2024.mp4", "2024-01-15/readme.txt", "ch01.mp4"):
        assert camera_from_name(name) is None


def test_a_container_that_cannot_be_read_has_no_tags(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    assert container_metadata(junk) == {}
    assert container_metadata(tmp_path / "missing.mp4") == {}


def test_rules_match_on_the_recording_time_in_the_site_zone(tmp_path: Path) -> None:
    """A clip recorded at 23:30 Berlin time (21:30 UTC) is night-shift footage."""
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "version: 1\nrules:\n"
        "  - {name: day, targets: {face: {}}}\n"
        '  - {name: night, match: {times: [{from: "22:00", to: "06:00"}]}, targets: {person: {}}}\n'
    )
    clip = write_clip(tmp_path / "clip.mp4", "2024-07-15T21:30:00Z")
    when, _ = recording_time(clip, container_metadata(clip), BERLIN)
    assert RuleSet.load([rules]).decide(Facts(when=when)).rule.rule.name == "night"
    assert (
        RuleSet.load([rules]).decide(Facts(when=when.astimezone(ZoneInfo("UTC")))).rule.rule.name
        == "day"
    )
