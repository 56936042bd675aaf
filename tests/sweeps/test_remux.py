"""A recorder's own files as one MP4 by stream copy: Hikvision program streams (with and
without the IMKH header) and Dahua DHAV, joined at their recording times, stamped with
`creation_time`; a file that is not video leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from vendor_media import FPS, frame_number, numbered_frames, write_dav, write_ps

from privmask.adapters.remux import Part, RemuxError, remux

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def shown(path: Path) -> list[tuple[int, int]]:
    """(frame number, time in frames) of every decoded frame."""
    with av.open(str(path)) as clip:
        return [(frame_number(f), round(float(f.time or 0) * FPS)) for f in clip.decode(video=0)]


def test_files_are_joined_at_their_recording_times(tmp_path: Path) -> None:
    plain = write_ps(tmp_path / "a.ps", numbered_frames(FPS), imkh=False)
    hikvision = write_ps(tmp_path / "b.ps", numbered_frames(FPS, first=FPS))
    dahua = write_dav(tmp_path / "c.dav", numbered_frames(FPS, first=3 * FPS), START)
    parts = [
        Part(plain, START),
        Part(hikvision, START + timedelta(seconds=1)),
        Part(dahua, START + timedelta(seconds=3)),  # a second with no recording before it
    ]

    made = remux(parts, tmp_path / "joined.mp4")

    assert made.frames == 3 * FPS and made.start == START
    expected = [(n, n) for n in range(2 * FPS)] + [(n, n) for n in range(3 * FPS, 4 * FPS)]
    assert shown(tmp_path / "joined.mp4") == expected
    with av.open(str(tmp_path / "joined.mp4")) as clip:
        assert clip.metadata["creation_time"] == "2026-03-01T09:00:00.000000Z"


def test_a_file_that_is_not_video_leaves_nothing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dav"
    junk.write_bytes(b"<html>Error</html>" * 100)

    with pytest.raises(RemuxError) as raised:
        remux([Part(junk, START)], tmp_path / "out.mp4", name="chunk.mp4")

    assert "chunk.mp4" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.dav"]
