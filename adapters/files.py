"""The one way privmask makes a file or folder appear: atomically and durably.

Outboxes, quarantine folders and state folders are read by other programs (upload agents,
VMS import jobs, a person, another privmask process), so nothing may ever be seen half
written, and nothing reported as published may be lost in a power cut. Every writer stages
under a hidden temporary name beside its target (`temporary_name`), then `publish` fsyncs
it, gives it its final name (a rename, or a hard link that never replaces an existing
file), and fsyncs the folder so that the new name itself is durable.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# what privmask's own temporary names look like: `.<stem>.<hex>.partial[.suffix]`
OWN_PARTIAL = re.compile(r"\..+\.[0-9a-f]{8,}\.partial(\.\w+)?")

# errors of filesystems that cannot hard-link (some SMB and FAT mounts)
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


def temporary_name(target: Path) -> Path:
    """A hidden, unique name beside `target` that keeps its suffix (PyAV picks the container
    format from it) and that `OWN_PARTIAL` recognises, so a crash's leftovers can be swept."""
    return target.with_name(f".{target.stem}.{secrets.token_hex(6)}.partial{target.suffix}")


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A temporary name for `target`, removed on the way out unless it was published."""
    path = temporary_name(target)
    try:
        yield path
    finally:
        remove(path)


def publish(staged: Path, target: Path, *, overwrite: bool = False) -> None:
    """Give `staged` (a file or a folder) its final name; durable once this returns.

    `overwrite=False` never replaces an existing `target` (FileExistsError): evidence must
    not be silently lost. Files are linked, which fails atomically when the name is taken;
    folders and filesystems without hard links are renamed after one more existence check.
    """
    _fsync_tree(staged)
    if overwrite:
        os.replace(staged, target)
    elif staged.is_dir():
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "already exists", str(target))
        os.rename(staged, target)
    else:
        _link_no_replace(staged, target)
    fsync_folder(target.parent)


def write_file(target: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Write `data` to `target` through a temporary name: whole or not at all."""
    with staging(target) as path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        publish(path, target, overwrite=overwrite)


def fsync_folder(folder: Path) -> None:
    """Make the names in `folder` durable; some filesystems cannot, which is fine."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    """Remove a published file or folder so that it is whole or gone, never half removed:
    renamed aside under a temporary name first (swept like any other leftover after a
    crash), then removed."""
    aside = temporary_name(path)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    remove(aside)


def remove(path: Path) -> None:
    """Remove a file or a staged folder if it is there; a failure here changes nothing."""
    try:
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                remove(child)
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _fsync_tree(child)
        fsync_folder(path)
        return
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _link_no_replace(staged: Path, target: Path) -> None:
    try:
        os.link(staged, target)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "already exists", str(target)) from exc
        os.rename(staged, target)
        return
    try:
        os.unlink(staged)
    except OSError:
        remove(target)  # both names would be left: report the error, publish nothing
        raise
