"""Intake taking real files from real inboxes into a real journal and quarantine folder.

The inbox is written by people and programs that are not trusted: only regular files inside
it are ever opened, limits are checked before any work, and every rejection is recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from privmask.daemon.config import load_config
from privmask.daemon.intake import Intake
from privmask.daemon.journal import Job, JobState, Journal

from clips import write_clip

SECRET = b"root:$6$not-for-your-eyes:19000:0:99999:7:::\n"


class Site:
    """An inbox (or several), a journal and a quarantine folder, with intake over them."""

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.inbox, self.quarantine = root / "inbox", root / "quarantine"
        self.inbox.mkdir()
        self.outside = root / "outside"  # somewhere the inbox writer must not reach through
        self.outside.mkdir()
        config = {
            "inboxes": [str(self.inbox)],
            "outbox": str(root / "outbox"),
            "quarantine": str(self.quarantine),
            "state": str(root / "state"),
            "quiet_seconds": 0,
            "network_quiet_seconds": 0,
            **settings,
        }
        (root / "privmask.yaml").write_text(yaml.safe_dump(config))
        self.config = load_config(root / "privmask.yaml")
        self.config.state.mkdir()
        self.journal = Journal(self.config.journal_path)
        self.intake = Intake(self.config, self.journal)

    def take_in(self, *paths: Path) -> None:
        """What the service does for a watcher event: announce, then a tick (the quiet
        window is 0, so one tick's two looks make a file stable)."""
        for path in paths:
            self.intake.announce(path)
        self.intake.tick()

    def jobs(self) -> list[Job]:
        return self.journal.jobs(limit=1000)

    def quarantined(self) -> list[Path]:
        """Every file in the quarantine folder, at any depth."""
        if not self.quarantine.exists():
            return []
        return sorted(p for p in self.quarantine.rglob("*") if p.is_file())

    def reasons(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.quarantine.glob("*/reason.json"))]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path)
    yield made
    made.journal.close()


def test_a_link_to_a_secret_file_is_logged_and_left_alone(site: Site) -> None:
    secret = site.outside / "shadow"
    secret.write_bytes(SECRET)
    link = site.inbox / "x.mp4"
    link.symlink_to(secret)
    with capture_logs() as logs:
        site.take_in(link)
    assert site.jobs() == []
    assert site.quarantined() == []  # no copy of the secret, not even a reason
    copies = [p for p in site.root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert [p for p in copies if p.read_bytes() == SECRET] == [secret]
    ignored = [e for e in logs if e["event"] == "inbox_entry_ignored"]
    assert [(e["source"], e["kind"]) for e in ignored] == [(str(link), "symbolic link")]
    assert link.is_symlink() and secret.read_bytes() == SECRET  # left as it was


def test_a_link_to_a_clip_outside_the_inbox_is_not_taken(site: Site) -> None:
    clip = write_clip(site.outside / "clip.mp4", frames=10)
    link = site.inbox / "clip.mp4"
    link.symlink_to(clip)
    folder_link = site.inbox / "cam2"  # a linked folder: nothing below it is taken either
    folder_link.symlink_to(site.outside)
    with capture_logs() as logs:
        site.take_in(link, folder_link / "clip.mp4")
        site.take_in(link)  # announced again: logged once
    assert site.jobs() == []
    assert site.quarantined() == []
    ignored = [(e["source"], e["kind"]) for e in logs if e["event"] == "inbox_entry_ignored"]
    assert ignored == [(str(link), "symbolic link"), (str(folder_link), "symbolic link")]


def test_a_clip_swapped_for_a_link_after_it_was_judged_complete_is_not_read(
    site: Site,
) -> None:
    """The quiet window was judged on the real file; by the time intake opens it, the name
    points elsewhere. Whatever it points to is never read."""
    secret = site.outside / "shadow"
    secret.write_bytes(SECRET)
    clip = write_clip(site.inbox / "clip.mp4", frames=10)
    (judged,) = _judged(site, clip)
    clip.unlink()
    clip.symlink_to(secret)
    with capture_logs() as logs:
        site.intake.take(judged)
    assert site.jobs() == [] and site.quarantined() == []
    assert [e["kind"] for e in logs if e["event"] == "inbox_entry_ignored"] == ["symbolic link"]


def test_a_folder_swapped_for_a_link_after_the_clip_was_judged_is_not_entered(
    site: Site,
) -> None:
    folder = site.inbox / "cam1"
    folder.mkdir()
    clip = write_clip(folder / "clip.mp4", frames=10)
    (judged,) = _judged(site, clip)
    folder.rename(site.outside / "cam1")
    folder.symlink_to(site.outside / "cam1")  # same name, same file, but now through a link
    site.intake.take(judged)
    assert site.jobs() == [] and site.quarantined() == []


def test_a_clip_replaced_after_it_was_judged_complete_is_judged_again(site: Site) -> None:
    clip = write_clip(site.inbox / "clip.mp4", frames=10)
    (judged,) = _judged(site, clip)
    replacement = write_clip(site.root / "other.mp4", frames=12)
    replacement.rename(clip)  # another file under the name: its quiet window starts now
    site.intake.take(judged)
    assert site.jobs() == []
    site.take_in(clip)
    (job,) = site.jobs()
    assert job.state is JobState.QUEUED and job.size == clip.stat().st_size


def _judged(site: Site, clip: Path) -> list[Any]:
    """The identities intake's stability tracker judged complete (two looks, window 0)."""
    site.intake.tracker.observe(clip)
    return site.intake.tracker.ready()


def test_an_empty_file_is_quarantined_as_empty_once_stable(site: Site) -> None:
    empty = site.inbox / "export.mp4"
    empty.touch()
    with capture_logs() as logs:
        site.take_in(empty)
    (job,) = site.jobs()
    assert job.state is JobState.QUARANTINED
    (reason,) = site.reasons()
    assert reason["code"] == "empty" and "export.mp4" in reason["reason"]
    assert [e["code"] for e in logs if e["event"] == "clip_rejected"] == ["empty"]
    site.take_in(empty)  # once is enough
    assert len(site.jobs()) == 1


def test_an_empty_file_filled_later_is_taken_as_a_new_file(site: Site) -> None:
    """An early "empty" verdict loses nothing: a writer that fills the file afterwards makes
    a new identity (size, mtime), which is taken in like any new file."""
    target = site.inbox / "clip.mp4"
    target.touch()
    site.take_in(target)
    write_clip(site.root / "clip.mp4", frames=10).rename(target)
    site.take_in(target)
    states = sorted(job.state for job in site.jobs())
    assert states == [JobState.QUARANTINED, JobState.QUEUED]


def test_an_oversize_file_is_referenced_not_hashed_or_copied(tmp_path: Path) -> None:
    site = Site(tmp_path, limits={"max_gigabytes": 1 / 1024 / 1024})  # 1 KiB
    big = site.inbox / "huge.mp4"
    with big.open("wb") as file:
        file.truncate(8 << 20)  # sparse: 8 MiB of nothing
    site.take_in(big)
    (job,) = site.jobs()
    assert job.state is JobState.QUARANTINED
    (reason,) = site.reasons()
    assert reason["code"] == "too_large"
    assert reason["copy"] is None
    info = big.stat()
    assert reason["file"] == {
        "path": str(big),
        "size": info.st_size,
        "device": info.st_dev,
        "inode": info.st_ino,
        "mtime_ns": info.st_mtime_ns,
    }
    assert [p.name for p in site.quarantined()] == ["reason.json"]
    # the journal holds no content hash it never computed, and it is unique per file
    assert not job.sha256.startswith("e3b0")  # not the hash of the empty string either
    assert len(job.sha256) != 64
    other = site.inbox / "huge2.mp4"
    with other.open("wb") as file:
        file.truncate(8 << 20)
    site.take_in(other)
    assert [j.state for j in site.jobs()] == [JobState.QUARANTINED] * 2  # not a "duplicate"
    site.journal.close()


def test_the_most_specific_inbox_gives_the_camera(tmp_path: Path) -> None:
    outer, inner = tmp_path / "inbox", tmp_path / "inbox" / "lobby"
    site = Site(
        tmp_path,
        inboxes=[
            {"path": str(outer), "camera": "SITE"},
            {"path": str(inner), "camera": "LOBBY"},
        ],
    )
    inner.mkdir()
    deeper = inner / "2024" / "05"
    deeper.mkdir(parents=True)
    site.take_in(
        write_clip(inner / "a.mp4", frames=10),
        write_clip(deeper / "b.mp4", frames=11),
        write_clip(outer / "c.mp4", frames=12),
    )
    cameras = {Path(job.path).name: job.camera for job in site.jobs()}
    assert cameras == {"a.mp4": "LOBBY", "b.mp4": "LOBBY", "c.mp4": "SITE"}
    site.journal.close()


def test_a_rejected_clip_is_copied_from_the_file_that_was_judged(site: Site) -> None:
    notes = site.inbox / "notes.mp4"
    notes.write_text("camera 3 was offline on Tuesday\n" * 20)
    site.take_in(notes)
    (job,) = site.jobs()
    assert job.state is JobState.QUARANTINED
    (reason,) = site.reasons()
    assert reason["code"] == "not_a_video"
    copy = site.quarantine / f"{job.id:06d}" / reason["copy"]
    assert copy.read_bytes() == notes.read_bytes()
    assert os.stat(copy).st_mode & 0o777 == 0o600


def test_a_link_planted_while_the_daemon_was_down_is_logged_by_the_scan(site: Site) -> None:
    """No watcher event announces it: the reconciling scan finds it (and says so once)."""
    secret = site.outside / "shadow"
    secret.write_bytes(SECRET)
    (site.inbox / "old").mkdir()
    link = site.inbox / "old" / "x.mp4"
    link.symlink_to(secret)
    with capture_logs() as logs:
        for _ in range(3):
            site.intake.reconcile()
            site.intake.tick()
    ignored = [(e["source"], e["kind"]) for e in logs if e["event"] == "inbox_entry_ignored"]
    assert ignored == [(str(link), "symbolic link")]
    assert site.jobs() == [] and site.quarantined() == []
