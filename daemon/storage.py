"""The folders the daemon writes to, and whether they can take a job's output now.

A full disk, a read-only mount and a share that is not mounted are conditions a person
fixes, not faults of a clip: while one holds, workers take no job (no try is used), every
check logs why, and work resumes by itself once it is fixed. A share unmounted while the
daemon runs leaves its empty mount point behind, which looks like a folder: so the outbox's
device is remembered at start: an outbox that was a mount point (or must be one, says the
site) and is not one now is missing, as is a plain outbox folder now on another device. A
share mounted again is a mount point again, whatever its new device number: work resumes.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from privmask.adapters.package import PackageError
from privmask.adapters.video import VideoError

# below this much free space a redaction would likely fail half way: wait instead
MIN_FREE_BYTES = 256 << 20
# errors of the folders being written, not of the clip (the source is opened apart, and
# its errors are the clip's): full, read-only, failing, gone, or not ours to write
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOENT, errno.EACCES, errno.EPERM}
)


@dataclass(frozen=True)
class Storage:
    outbox: Path
    outbox_device: int  # st_dev of the outbox when the daemon started
    outbox_mount_point: bool  # it was a mount point at start, or the site says it must be
    others: tuple[Path, ...]  # work and state folders

    @classmethod
    def at_start(cls, outbox: Path, mount_point: bool, others: tuple[Path, ...]) -> Storage:
        mounted = mount_point or os.path.ismount(outbox)
        return cls(outbox, os.stat(outbox).st_dev, mounted, others)

    def problem(self) -> str | None:
        """Why no job can be done now, or None when every folder can take one."""
        outbox = self.outbox
        try:
            info = os.stat(outbox)
        except OSError:
            info = None
        if info is None or not stat.S_ISDIR(info.st_mode):
            return f"outbox {outbox} is missing (is the share mounted?)"
        if self.outbox_mount_point:
            if not os.path.ismount(outbox):
                return f"outbox {outbox} is not a mount point now (is the share mounted?)"
        elif info.st_dev != self.outbox_device:
            return f"outbox {outbox} is on another device than at start (share unmounted?)"
        for folder in (outbox, *self.others):
            why = _cannot_write(folder)
            if why:
                return why
        return None


def _cannot_write(folder: Path) -> str | None:
    try:
        fs = os.statvfs(folder)
    except OSError as exc:
        return f"{folder}: {exc.strerror}"
    if fs.f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only filesystem"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable by this user"
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        return f"{folder} has {free >> 20} MiB free, less than {MIN_FREE_BYTES >> 20} MiB"
    return None


def is_storage_fault(exc: BaseException) -> bool:
    """Whether a job failed because a disk it writes to is full, read-only or gone."""
    if isinstance(exc, VideoError):
        return exc.code == "write_failed"
    if isinstance(exc, PackageError):
        exc = exc.__cause__ or exc
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS
