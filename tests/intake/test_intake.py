"""Intake decisions: temporary names, the quiet window, marker mode."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from privmask.daemon.intake import (
    TEMP_PATTERNS,
    Observation,
    StabilityTracker,
    done_marker_ready,
    is_stable,
    is_temporary,
)
from privmask.daemon.journal import FileIdentity


@pytest.mark.parametrize(
    "name",
    [
        ".clip.mp4",  # hidden (rsync writes .clip.mp4.XXXXXX)
        ".~lock.clip.mp4#",
        "~clip.mp4",
        "clip.mp4.part",
        "clip.mp4.partial",
        "clip.tmp",
        "clip.mp4.crdownload",
        "_UNPACK_clip",
        "CLIP.MP4.PART",  # Windows clients shout
        "/srv/inbox/cam1/clip.mp4.part",  # a whole path: its base name decides
    ],
)
def test_temporary_names(name: str) -> None:
    assert is_temporary(name)


@pytest.mark.parametrize(
    "name", ["clip.mp4", "cam1_2024-05-01.dav", "part.mp4", "tmp.mkv", "a~b.mp4", "/x/.y/z.mp4"]
)
def test_final_names(name: str) -> None:
    assert not is_temporary(name)


def test_every_pattern_is_exercised() -> None:
    examples = ["._x", "~x", "x.part", "x.partial", "x.tmp", "x.crdownload", "_UNPACK_x"]
    assert len(examples) == len(TEMP_PATTERNS)
    assert all(is_temporary(example) for example in examples)


def look(at: float, size: int = 100, mtime_ns: int = 1, inode: int = 7) -> Observation:
    return Observation(FileIdentity("/in/a.mp4", size, mtime_ns, inode), at=at)


def test_stable_after_quiet_window() -> None:
    history = [look(0.0), look(1.0), look(2.0)]
    assert not is_stable(history, quiet_seconds=5, now=4.9)
    assert is_stable(history, quiet_seconds=5, now=5.0)


def test_window_restarts_when_size_mtime_or_inode_changes() -> None:
    for changed in (look(3.0, size=200), look(3.0, mtime_ns=2), look(3.0, inode=8)):
        history = [
            look(0.0),
            look(1.0),
            changed,
            look(4.0, changed.size, changed.identity.mtime_ns, changed.identity.inode),
        ]
        assert not is_stable(history, quiet_seconds=5, now=7.9)
        assert is_stable(history, quiet_seconds=5, now=8.0)


def test_not_stable_with_a_single_look_or_no_history() -> None:
    assert not is_stable([], quiet_seconds=0, now=100)
    # one stat() says nothing about what happened after it
    assert not is_stable([look(0.0)], quiet_seconds=1, now=100)
    assert not is_stable([look(0.0, size=0)], quiet_seconds=1, now=100)


def test_an_empty_file_is_stable_by_the_same_rule() -> None:
    """It is then quarantined as `empty`; filled later, it is a new identity."""
    empty = [look(0.0, size=0), look(3.0, size=0)]
    assert not is_stable(empty, quiet_seconds=5, now=4.9)
    assert is_stable(empty, quiet_seconds=5, now=5.0)
    filled = [*empty, look(6.0, size=100, mtime_ns=2)]
    assert not is_stable(filled, quiet_seconds=5, now=100)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tracker_with_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = StabilityTracker(quiet_seconds=10, clock=clock)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x" * 10)
    tracker.observe(clip)
    clock.now += 9
    assert tracker.ready() == []
    with clip.open("ab") as file:  # the writer is still at it: the window starts again
        file.write(b"more")
    tracker.observe(clip)
    clock.now += 9
    assert tracker.ready() == []
    clock.now += 1
    (judged,) = tracker.ready()
    assert (judged.path, judged.size) == (str(clip), 14)  # the identity that was quiet
    assert clip not in tracker  # handed over once, not again
    assert tracker.ready() == []


def test_tracker_forgets_vanished_and_temporary_files_and_links(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = StabilityTracker(quiet_seconds=1, clock=clock)
    gone, part = tmp_path / "gone.mp4", tmp_path / "clip.mp4.part"
    gone.write_bytes(b"x")
    part.write_bytes(b"x")
    tracker.observe(gone)
    tracker.observe(part)
    assert gone in tracker and part not in tracker
    gone.unlink()
    clock.now += 5
    assert tracker.ready() == []
    assert len(tracker) == 0
    # a folder is never a candidate, nor a link, whatever it points at
    assert tracker.observe(tmp_path) == "folder"
    link = tmp_path / "link.mp4"
    link.symlink_to(part)
    assert tracker.observe(link) == "symbolic link"
    assert len(tracker) == 0
    kept = tmp_path / "kept.mp4"
    kept.write_bytes(b"x")
    tracker.observe(kept)
    tracker.forget(kept)
    assert kept not in tracker


def test_tracker_with_a_file_written_slowly(tmp_path: Path) -> None:
    """A real writer appends chunks with pauses shorter than the quiet window: the file is
    not ready until the writer has stopped for the whole window."""
    quiet = 0.4
    clip = tmp_path / "slow.mp4"
    last_write: list[float] = []

    def writer() -> None:
        with clip.open("wb") as file:
            for _ in range(6):
                last_write[:] = [time.monotonic()]  # taken before the change it bounds
                file.write(b"\0" * 4096)
                file.flush()
                time.sleep(0.15)

    tracker = StabilityTracker(quiet_seconds=quiet)
    thread = threading.Thread(target=writer)
    thread.start()
    ready_at = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if clip.exists():
            tracker.observe(clip)
        if tracker.ready():
            ready_at = time.monotonic()
            break
        time.sleep(0.05)
    thread.join()
    assert ready_at is not None, "a finished file never became ready"
    # never while the writer was still writing: only a full quiet window after its last write
    assert ready_at >= last_write[0] + quiet
    assert clip.stat().st_size == 6 * 4096


def test_done_marker(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    assert not done_marker_ready(clip)
    (tmp_path / "clip.mp4.done").touch()
    assert done_marker_ready(clip)
    assert not done_marker_ready(clip, ".ok")
    (tmp_path / "clip.mp4.ok").touch()
    assert done_marker_ready(clip, ".ok")
    # a marker without its clip is not a ready clip
    (tmp_path / "other.mp4.done").touch()
    assert not done_marker_ready(tmp_path / "other.mp4")
