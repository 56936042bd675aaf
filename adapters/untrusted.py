"""Opening files in folders that untrusted writers fill (the inboxes): regular files only.

Whoever can drop a clip in an inbox can also drop a symbolic link to `/etc/shadow`, a link
to a folder outside the inbox, or a named pipe that blocks whoever opens it. So a file in
an inbox is opened once, without following a link in any part of its path below the inbox
root (`O_NOFOLLOW` at each step), and the open descriptor is checked with `fstat`: it must
be a regular file. Everything after that (hashing, validation, the quarantine copy, the
redaction) reads that descriptor, or `descriptor_path(fd)`, so swapping the name for a link
after the check changes nothing.

Linux: `descriptor_path` names the file through /proc/self/fd, so that libraries that take
a path (FFmpeg) read the very file that was checked.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

__all__ = [
    "NotRegularFile",
    "descriptor_path",
    "entry_kind",
    "open_regular",
    "sha256_of_descriptor",
]

# O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused just after);
# it changes nothing for a regular file
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_FOLDER_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISREG, "regular file"),
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "device"),
)


class NotRegularFile(OSError):
    """The name is there but is not a regular file (or is reached through a link)."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file (a {kind})", str(path))
        self.kind = kind  # "symbolic link", "folder", "named pipe" ...


def entry_kind(mode: int) -> str:
    """What a stat mode is, in words: "regular file", "symbolic link", "folder" ..."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "special file"


def open_regular(path: Path, root: Path | None = None) -> int:
    """Open `path` read-only; return the descriptor of a regular file, or raise.

    With `root` (a folder that `path` is inside of), no part of the path below `root` may be
    a link: each folder is opened relative to the one before it, without following links.
    Without it, only the last part is checked (for callers that have no root to go by).
    Raises NotRegularFile for a link or anything but a regular file, ValueError when `path`
    is not inside `root`, and OSError when it is gone or unreadable.
    """
    if root is None:
        return _open_file(path, str(path), None)
    parts = path.relative_to(root).parts  # ValueError: outside the root
    if not parts:
        raise NotRegularFile(path, "folder")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts[:-1]):
            below = _open_folder(root.joinpath(*parts[: index + 1]), part, folder)
            os.close(folder)
            folder = below
        return _open_file(path, parts[-1], folder)
    finally:
        os.close(folder)


def _open_folder(path: Path, name: str, parent: int) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotRegularFile(path, _kind_at(name, parent)) from None
        raise


def _open_file(path: Path, name: str, parent: int | None) -> int:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise NotRegularFile(path, "symbolic link") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, entry_kind(mode))
    return fd


def _kind_at(name: str, parent: int) -> str:
    try:
        return entry_kind(os.lstat(name, dir_fd=parent).st_mode)
    except OSError:
        return "symbolic link"


def descriptor_path(fd: int) -> Path:
    """A name that opens exactly the file behind `fd`, whatever its own name points at now."""
    return Path(f"/proc/self/fd/{fd}")


def sha256_of_descriptor(fd: int) -> str:
    """The sha256 of the whole file behind `fd`, read from its start (the descriptor's own
    position is left where it was)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
