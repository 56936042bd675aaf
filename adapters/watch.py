"""Inbox folders: announce candidate files as they appear, and find them again by scanning.

Events come from watchdog: inotify for local folders, polling for network mounts (inotify
sees nothing that another machine writes to an SMB or NFS share). Events are only hints;
`scan()` is the reconciliation that also finds files dropped while the daemon was down or
missed by a watcher, so the daemon calls it on every tick. Announcing a file twice is
harmless: intake's stability tracker de-duplicates.

This module decides nothing about whether a file is complete (that is intake's job) and it
never deletes, moves or opens a candidate.

`watch_folder` is the plainer watch for a folder of settings (the rule files): any change
there means "read it all again", so it only says that something changed.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

# File systems whose changes can come from another machine, where inotify is blind.
# Any type starting with "fuse" (sshfs, rclone, s3fs, vmhgfs ...) counts as well.
NETWORK_FS = frozenset(
    {
        "cifs",
        "smb3",
        "smbfs",
        "nfs",
        "nfs4",
        "fuse",
        "fuse.sshfs",
        "9p",
        "virtiofs",
        "vboxsf",
        "ceph",
        "glusterfs",
        "afs",
        "davfs",
        "lustre",
        "gpfs",
        "ncpfs",
    }
)

# Event kinds that can mean "a file arrived or grew"; opens and no-write closes are left
# out, so that validation reading a clip does not announce it again.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
]

OK, UNREACHABLE, EMPTY_SUSPICIOUS = "ok", "unreachable", "empty-suspicious"

# Hidden files, editor/Office locks, browser and downloader partials, and sabnzbd-style
# unpack folders: names that writers use while a file is still incomplete. The rule lives
# here, in the lowest layer that needs it; daemon.intake re-exports it (adapters never
# import daemon).
TEMP_PATTERNS = (".*", "~*", "*.part", "*.partial", "*.tmp", "*.crdownload", "_UNPACK_*")
_TEMP_PATTERNS_LOWER = tuple(pattern.lower() for pattern in TEMP_PATTERNS)


def is_temporary(name: str) -> bool:
    """True if the base name of `name` matches a temporary pattern (case-insensitive,
    because Windows clients write `CLIP.PART` as readily as `clip.part`)."""
    base = PurePath(name).name.lower()
    if not base:
        return False
    return any(fnmatchcase(base, pattern) for pattern in _TEMP_PATTERNS_LOWER)


def _unescape_mount_field(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in paths as octal escapes."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def _mount_points(mounts_file: Path) -> list[tuple[Path, str]]:
    points = []
    for line in mounts_file.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3:
            points.append((Path(_unescape_mount_field(fields[1])), fields[2]))
    return points


def mount_type(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str:
    """The file-system type of the longest mount point that contains `path`; "" when the
    mounts file cannot be read or lists nothing that contains it."""
    target = Path(os.path.abspath(path))
    try:
        points = _mount_points(mounts_file)
    except OSError:
        return ""
    best, best_type = -1, ""
    for point, fs_type in points:
        # the last mount of a point wins (it hides earlier ones), hence >=
        if (target == point or point in target.parents) and len(point.parts) >= best:
            best, best_type = len(point.parts), fs_type
    return best_type


def is_network_fs(fs_type: str) -> bool:
    return fs_type in NETWORK_FS or fs_type.startswith("fuse")


def needs_polling(
    path: Path, force: bool | None = None, mounts_file: Path = Path("/proc/mounts")
) -> bool:
    """Whether `path` must be polled: `force` when given (True or False), else whether it
    is on a network file system. An unknown type gets the native watcher: scan() still
    reconciles on every tick, so a blind watcher delays files but never loses them."""
    if force is not None:
        return force
    return is_network_fs(mount_type(path, mounts_file))


class _Announcer(FileSystemEventHandler):
    """Turns watchdog events into candidate paths (called on watchdog's threads)."""

    def __init__(self, root: Path, announce: Callable[[Path], None]):
        self._root = root
        self._announce = announce

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or type(event) not in _EVENTS:
            return
        # a move is announced at its destination: that is where the file is now
        raw = event.dest_path if isinstance(event, FileMovedEvent) else event.src_path
        path = Path(os.fsdecode(raw))
        if _is_candidate_name(self._root, path):
            self._announce(path)


def _is_candidate_name(root: Path, path: Path) -> bool:
    """No temporary name anywhere below the root (`_UNPACK_x/clip.mp4` is not ready)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False  # moved out of the watched tree
    return bool(parts) and not any(is_temporary(part) for part in parts)


def _root_identity(root: Path) -> tuple[int, int] | None:
    """(device, inode) of a reachable root folder, None when it is not one."""
    try:
        info = root.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _walk(root: Path, recursive: bool, others: list[Path] | None = None) -> Iterator[Path]:
    """Regular, non-temporary files below `root`; temporary folders are not entered, nor
    linked ones. Entries that are neither (links, pipes) are added to `others`.
    Raises OSError when the root itself cannot be listed."""
    pending = [root]
    first = True
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            if first:
                raise
            continue  # a subfolder vanished or is unreadable: the next scan tries again
        first = False
        for entry in entries:
            if is_temporary(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    yield Path(entry.path)
                elif others is not None:
                    others.append(Path(entry.path))
            except OSError:
                continue


class FolderWatcher:
    """Watch inbox roots and announce candidate files through `on_candidate`.

    `on_candidate` is called on watchdog's threads, possibly more than once per file; it
    should only hand the path over (e.g. to a queue). One observer runs per root, so that
    a root can be re-armed alone when it disappears and comes back.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        on_candidate: Callable[[Path], None],
        poll: bool | None = None,
        poll_interval: float = 2.0,
        recursive: bool = True,
        mounts_file: Path = Path("/proc/mounts"),
    ):
        self.roots = tuple(Path(os.path.abspath(root)) for root in roots)
        self._on_candidate = on_candidate
        self._poll = poll
        self._poll_interval = poll_interval
        self._recursive = recursive
        self._mounts_file = mounts_file
        self._lock = threading.Lock()
        self._observers: dict[Path, BaseObserver] = {}
        self._retired: list[BaseObserver] = []  # stopped by a re-arm, joined by stop()
        self._armed_identity: dict[Path, tuple[int, int]] = {}
        self._status: dict[Path, str] = {}
        self._had_files: dict[Path, bool] = {}
        self._left_alone: list[Path] = []
        self._running = False

    def uses_polling(self, root: Path) -> bool:
        return needs_polling(root, self._poll, self._mounts_file)

    def start(self) -> None:
        """Start watching every reachable root; unreachable ones are armed by a later
        scan() once they are back."""
        with self._lock:
            self._running = True
            for root in self.roots:
                self._arm(root)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            observers = [*self._observers.values(), *self._retired]
            self._observers.clear()
            self._retired.clear()
            self._armed_identity.clear()
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join(timeout=5)

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _arm(self, root: Path) -> None:
        """(Re)start the observer of one root; called with the lock held."""
        self._disarm(root)
        identity = _root_identity(root)
        if identity is None:
            return
        observer: BaseObserver
        if self.uses_polling(root):
            observer = PollingObserver(timeout=self._poll_interval)
        else:
            observer = Observer()
        handler = _Announcer(root, self._on_candidate)
        try:
            observer.schedule(handler, str(root), recursive=self._recursive, event_filter=_EVENTS)
            observer.start()
        except OSError:
            observer.stop()
            return  # vanished between stat() and schedule(); the next scan re-arms it
        self._observers[root] = observer
        self._armed_identity[root] = identity

    def _disarm(self, root: Path) -> None:
        """Stop a root's observer; called with the lock held."""
        old = self._observers.pop(root, None)
        self._armed_identity.pop(root, None)
        if old is not None:
            old.stop()  # its watch died with the old folder; not joined under the lock
            self._retired.append(old)

    def scan(self) -> list[Path]:
        """Every regular, non-temporary file under the reachable roots, sorted. Updates
        root_status(); while running, re-arms the watcher of a root that came back (or was
        replaced by a new folder of the same name)."""
        found: list[Path] = []
        others: list[Path] = []
        for root in self.roots:
            files = self._scan_root(root, others)
            if files is not None:
                found.extend(files)
        with self._lock:
            self._left_alone = sorted(others)
        return sorted(found)

    def left_alone(self) -> list[Path]:
        """What the last scan found that is neither a folder nor a regular file (links,
        named pipes): never announced, for the caller to say why."""
        with self._lock:
            return list(self._left_alone)

    def _scan_root(self, root: Path, others: list[Path]) -> list[Path] | None:
        identity = _root_identity(root)
        files: list[Path] | None = None
        if identity is not None:
            try:
                files = list(_walk(root, self._recursive, others))
            except OSError:
                files = None
        with self._lock:
            if files is None:
                self._status[root] = UNREACHABLE
                self._disarm(root)  # whatever comes back there is a new folder
                return None
            if files:
                self._status[root] = OK
                self._had_files[root] = True
            elif self._had_files.get(root):
                # a share that drops out often shows as an empty folder: pause, never
                # read it as "everything was deleted"; stays so until files are back
                self._status[root] = EMPTY_SUSPICIOUS
            else:
                self._status[root] = OK
            if self._running and not self._watching(root, identity):
                self._arm(root)
        return files

    def _watching(self, root: Path, identity: tuple[int, int] | None) -> bool:
        """Whether the root's watch is live: armed on this very folder, its emitter alive
        (inotify's emitter ends itself when the watched folder is deleted, and a new
        folder of the same name may even reuse the old inode number)."""
        observer = self._observers.get(root)
        if observer is None or self._armed_identity.get(root) != identity:
            return False
        return bool(observer.emitters) and all(e.is_alive() for e in observer.emitters)

    def watching(self, root: Path) -> bool:
        """Whether events from `root` are being received now (scan() re-arms it if not)."""
        root = Path(os.path.abspath(root))
        with self._lock:
            return self._running and self._watching(root, _root_identity(root))

    def root_status(self) -> dict[Path, str]:
        """Each root's state as of the last scan ("ok", "unreachable", "empty-suspicious");
        roots not scanned yet are only checked for reachability."""
        with self._lock:
            status = dict(self._status)
        for root in self.roots:
            if root not in status:
                status[root] = OK if _root_identity(root) is not None else UNREACHABLE
        return status


# ---------------------------------------------------------------- folders of settings

_CHANGES = ("created", "modified", "deleted", "moved")


class _AnyChange(FileSystemEventHandler):
    """Calls back on every change of an entry (opens and closes are not changes)."""

    def __init__(self, on_change: Callable[[], None]):
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _CHANGES:
            self._on_change()


def watch_folder(folder: Path, on_change: Callable[[], None]) -> Callable[[], None]:
    """Call `on_change()` whenever an entry of `folder` (not below it) is created, modified,
    deleted or moved, until the returned function is called.

    `on_change` runs on watchdog's thread, often several times for one save (editors write
    in bursts), so it should only note the change (e.g. restart a settle timer). Raises
    OSError when `folder` cannot be watched.
    """
    observer = Observer()
    observer.daemon = True
    try:
        observer.schedule(_AnyChange(on_change), str(folder), recursive=False)
        observer.start()
    except OSError:
        observer.stop()
        raise

    def stop() -> None:
        observer.stop()
        observer.join(timeout=5)

    return stop
