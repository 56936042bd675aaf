"""Inbox watching with real inotify and polling observers, real files, real renames."""

from __future__ import annotations

import os
import queue
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from privmask.adapters.watch import FolderWatcher, mount_type, needs_polling, watch_folder

WAIT = 5.0  # seconds an event may take; inotify needs milliseconds, polling one interval


class Announced:
    """Collects announced paths from watchdog's threads."""

    def __init__(self) -> None:
        self.paths: queue.Queue[Path] = queue.Queue()
        self.seen: list[Path] = []

    def __call__(self, path: Path) -> None:
        self.paths.put(path)

    def wait_for(self, path: Path, timeout: float = WAIT) -> list[Path]:
        """Everything announced until `path` was (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        while path not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{path.name} was not announced (saw {[p.name for p in self.seen]})")
            try:
                self.seen.append(self.paths.get(timeout=left))
            except queue.Empty:
                continue
        return self.seen


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def announced() -> Announced:
    return Announced()


@pytest.fixture
def watcher(inbox: Path, announced: Announced) -> Iterator[FolderWatcher]:
    with FolderWatcher([inbox], announced, poll=False) as running:
        yield running


def test_inotify_announces_created_and_moved_in_files(
    watcher: FolderWatcher, inbox: Path, tmp_path: Path, announced: Announced
) -> None:
    assert not watcher.uses_polling(inbox)
    created = inbox / "created.mp4"
    created.write_bytes(b"clip")
    announced.wait_for(created)

    outside = tmp_path / "staging.mp4"  # written elsewhere, then moved in whole
    outside.write_bytes(b"clip")
    moved_in = inbox / "moved_in.mp4"
    os.rename(outside, moved_in)
    announced.wait_for(moved_in)

    # the usual NVR pattern: write under a temporary name, rename when done
    part = inbox / "renamed.mp4.part"
    part.write_bytes(b"clip")
    renamed = inbox / "renamed.mp4"
    os.rename(part, renamed)
    (inbox / "cam2").mkdir()
    nested = inbox / "cam2" / "nested.mp4"
    nested.write_bytes(b"clip")
    seen = announced.wait_for(nested)
    assert renamed in seen
    assert part not in seen
    assert all(path.is_relative_to(inbox) for path in seen)
    assert inbox / "cam2" not in seen  # folders are never candidates


def test_temporary_names_are_not_announced(
    watcher: FolderWatcher, inbox: Path, announced: Announced
) -> None:
    temporaries = [".hidden.mp4", "~lock.mp4", "a.part", "b.partial", "c.tmp", "d.crdownload"]
    for name in temporaries:
        (inbox / name).write_bytes(b"x")
    (inbox / "_UNPACK_job").mkdir()
    (inbox / "_UNPACK_job" / "inside.mp4").write_bytes(b"x")
    sentinel = inbox / "sentinel.mp4"  # events arrive in order: once this is seen, all were
    sentinel.write_bytes(b"x")
    seen = announced.wait_for(sentinel)
    assert set(seen) == {sentinel}


def test_polling_observer_announces(inbox: Path, announced: Announced) -> None:
    with FolderWatcher([inbox], announced, poll=True, poll_interval=0.2) as watcher:
        assert watcher.uses_polling(inbox)
        clip = inbox / "polled.mp4"
        clip.write_bytes(b"clip")
        announced.wait_for(clip)


def test_network_mount_is_polled(tmp_path: Path, inbox: Path, announced: Announced) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\n//nas/cctv {inbox} cifs rw 0 0\n")
    with FolderWatcher([inbox], announced, poll_interval=0.2, mounts_file=mounts) as watcher:
        assert watcher.uses_polling(inbox)
        clip = inbox / "from_nas.mp4"
        clip.write_bytes(b"clip")
        announced.wait_for(clip)


def test_scan_finds_files_dropped_before_start(inbox: Path, announced: Announced) -> None:
    (inbox / "cam1").mkdir()
    old = [inbox / "a.mp4", inbox / "cam1" / "b.dav"]
    for path in old:
        path.write_bytes(b"x")
    (inbox / "c.mp4.part").write_bytes(b"x")
    (inbox / ".sync").mkdir()
    (inbox / ".sync" / "d.mp4").write_bytes(b"x")
    (inbox / "link.mp4").symlink_to(old[0])  # not a regular file of the inbox itself
    watcher = FolderWatcher([inbox], announced)
    assert watcher.scan() == sorted(old)
    assert watcher.left_alone() == [inbox / "link.mp4"]  # for intake to say why
    assert FolderWatcher([inbox], announced, recursive=False).scan() == [inbox / "a.mp4"]


def test_root_status_unreachable_and_empty(tmp_path: Path, announced: Announced) -> None:
    roots = [tmp_path / "a", tmp_path / "b", tmp_path / "never"]
    for root in roots[:2]:
        root.mkdir()
        (root / "clip.mp4").write_bytes(b"x")
    watcher = FolderWatcher(roots, announced)
    assert watcher.root_status()[roots[2]] == "unreachable"  # before any scan, too
    assert len(watcher.scan()) == 2
    assert watcher.root_status() == {roots[0]: "ok", roots[1]: "ok", roots[2]: "unreachable"}

    shutil.rmtree(roots[0])  # a share that went away
    (roots[1] / "clip.mp4").unlink()  # a share that suddenly shows nothing
    assert watcher.scan() == []
    status = watcher.root_status()
    assert status[roots[0]] == "unreachable"
    assert status[roots[1]] == "empty-suspicious"
    assert watcher.scan() == []
    assert watcher.root_status()[roots[1]] == "empty-suspicious"  # until files are back

    (roots[1] / "new.mp4").write_bytes(b"x")
    roots[0].mkdir()
    assert watcher.scan() == [roots[1] / "new.mp4"]
    status = watcher.root_status()
    assert status[roots[0]] == "empty-suspicious"  # back, but without the files it had
    assert status[roots[1]] == "ok"

    a_file = tmp_path / "file"
    a_file.write_bytes(b"x")
    assert FolderWatcher([a_file], announced).root_status() == {a_file: "unreachable"}


def test_a_root_that_comes_back_is_watched_again(tmp_path: Path, announced: Announced) -> None:
    root = tmp_path / "share"
    with FolderWatcher([root], announced, poll=False) as watcher:
        assert watcher.scan() == []  # not there at start: skipped, not fatal
        assert not watcher.watching(root)
        root.mkdir()
        watcher.scan()  # the daemon's tick re-arms the watcher
        assert watcher.watching(root)
        first = root / "first.mp4"
        first.write_bytes(b"x")
        announced.wait_for(first)

        shutil.rmtree(root)  # replaced by a new folder of the same name
        assert watcher.scan() == []
        assert watcher.root_status()[root] == "unreachable"
        root.mkdir()
        watcher.scan()
        assert watcher.watching(root)
        second = root / "second.mp4"
        second.write_bytes(b"x")
        announced.wait_for(second)


MOUNTS = r"""sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
//nas/cctv /mnt/nvr cifs rw,vers=3.0 0 0
nas:/export /mnt/nfs nfs4 rw 0 0
u@host: /mnt/ssh fuse.sshfs rw 0 0
rclone: /mnt/cloud fuse.rclone rw 0 0
/dev/sdb1 /mnt/nvr/local ext4 rw 0 0
/dev/sdc1 /mnt/with\040space xfs rw 0 0
"""


@pytest.fixture
def mounts(tmp_path: Path) -> Path:
    path = tmp_path / "mounts"
    path.write_text(MOUNTS)
    return path


@pytest.mark.parametrize(
    ("path", "fs_type", "polled"),
    [
        ("/mnt/nvr/cam1/clip.mp4", "cifs", True),
        ("/mnt/nvr", "cifs", True),
        ("/mnt/nvr/local/clip.mp4", "ext4", False),  # the longest mount point wins
        ("/mnt/nvrx/clip.mp4", "ext4", False),  # a prefix of the name is not a parent
        ("/mnt/nfs/x", "nfs4", True),
        ("/mnt/ssh/x", "fuse.sshfs", True),
        ("/mnt/cloud/x", "fuse.rclone", True),  # any fuse counts
        ("/mnt/with space/x", "xfs", False),
        ("/srv/inbox", "ext4", False),
    ],
)
def test_mount_type_and_polling(mounts: Path, path: str, fs_type: str, polled: bool) -> None:
    assert mount_type(Path(path), mounts) == fs_type
    assert needs_polling(Path(path), mounts_file=mounts) is polled


def test_forced_polling_and_unknown_mounts(mounts: Path, tmp_path: Path) -> None:
    assert needs_polling(Path("/mnt/nvr/x"), force=False, mounts_file=mounts) is False
    assert needs_polling(Path("/srv/inbox"), force=True, mounts_file=mounts) is True
    missing = tmp_path / "no-mounts"
    assert mount_type(Path("/srv"), missing) == ""
    assert needs_polling(Path("/srv"), mounts_file=missing) is False


def test_watch_folder_reports_changes_until_stopped(tmp_path: Path) -> None:
    changes: queue.Queue[None] = queue.Queue()
    (tmp_path / "a.yaml").write_text("x")
    stop = watch_folder(tmp_path, lambda: changes.put(None))
    try:
        (tmp_path / "a.yaml").read_text()  # reading is no change
        time.sleep(0.3)
        assert changes.empty()
        (tmp_path / "b.yaml").write_text("y")
        changes.get(timeout=WAIT)
        (tmp_path / "a.yaml").unlink()
        changes.get(timeout=WAIT)
    finally:
        stop()
    time.sleep(0.3)
    while not changes.empty():  # the tail of the last burst may still be queued
        changes.get_nowait()
    (tmp_path / "c.yaml").write_text("z")
    time.sleep(0.3)
    assert changes.empty()


def test_watch_folder_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        watch_folder(tmp_path / "missing", lambda: None)
