"""Quarantine: a copy of a rejected clip and `reason.json`, for a person to look at.

The source is copied, never moved: intake must not modify or delete what the NVR exported.
The folder is built under a hidden temporary name and published whole and durably
(`adapters.files`), so a person or a crash never finds half a quarantine.

What is copied is unredacted video, and the inbox is written by people who are not
trusted: so the folder is 700 and its files 600 (750/640 when a group of reviewers is
configured); only a regular file is copied, never what a link points to; a file over the
copy limit is referenced (path, size, device, inode, mtime) rather than copied; and when the
copy fails (a full disk) the reason is still kept, with its own code.

A quarantine copy is an original like an escrowed one: when the site names escrow
recipients, the copy is age-encrypted to them (`<name>.age`; `reason.json` stays plain),
and when those recipients cannot be used, no copy is kept rather than a plain one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privmask.adapters import age, files
from privmask.adapters.untrusted import open_regular

REASON = "reason.json"
SEALED_SUFFIX = ".age"  # a copy encrypted to the escrow recipients
# where a copy goes whose own name is REASON's: both are kept
RENAMED_COPY = Path("original")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Modes:
    folder: int
    file: int

    @classmethod
    def of(cls, group_readable: bool) -> _Modes:
        return cls(0o750, 0o640) if group_readable else cls(0o700, 0o600)


def quarantine(
    source: Path,
    folder: Path,
    job_id: int,
    code: str,
    reason: str,
    *,
    fd: int | None = None,
    max_copy_bytes: int | None = None,
    group_readable: bool = False,
    recipients: Sequence[str] = (),
) -> Path:
    """Copy `source` to `folder/<job id>/` beside a reason.json; return that folder.

    `fd`: an open descriptor of the very file to copy (intake passes the one it judged);
    without it `source` is opened here, and a link or anything but a regular file is not
    copied. A file over `max_copy_bytes` is referenced in reason.json, not copied. With
    `recipients` (escrow recipient entries) the copy is age-encrypted to them. An older copy
    of the same job's folder is replaced.
    """
    modes = _Modes.of(group_readable)
    target = folder / f"{job_id:06d}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    own: int | None = None
    note = ""
    if fd is None:
        try:
            own = fd = open_regular(source)
        except OSError as exc:  # gone, unreadable, a link: the reason still matters
            note = _not_copied(exc)
    try:
        with files.staging(target) as scratch:
            os.mkdir(scratch, modes.folder)
            os.chmod(scratch, modes.folder)  # whatever the umask says
            info, copied = None, None
            if fd is not None:
                info = os.fstat(fd)
                if max_copy_bytes is not None and info.st_size > max_copy_bytes:
                    note = f" (not copied: over the copy limit of {max_copy_bytes} bytes)"
                else:
                    copied, note = _copy_into(scratch, source.name, fd, modes, recipients)
            record = {
                "code": code,
                "reason": reason + note,
                "source": str(source),
                "copy": None if copied is None else str(copied),
                "file": _reference(source, info),
                "job": job_id,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            _write_reason(scratch / REASON, record, modes.file)
            files.discard(target)
            files.publish(scratch, target)
    finally:
        if own is not None:
            os.close(own)
    return target


def _not_copied(exc: OSError) -> str:
    return f" (the clip could not be copied: {exc.strerror})"


def _reference(source: Path, info: os.stat_result | None) -> dict[str, Any] | None:
    """Where the source is, and which file it was, for a person to find it again."""
    if info is None:
        return None
    return {
        "path": str(source),
        "size": info.st_size,
        "device": info.st_dev,
        "inode": info.st_ino,
        "mtime_ns": info.st_mtime_ns,
    }


def _copy_into(
    scratch: Path, name: str, fd: int, modes: _Modes, recipients: Sequence[str]
) -> tuple[Path | None, str]:
    """Copy the file behind `fd` into `scratch` (sealed to `recipients` when there are any);
    (its name there, "") or (None, why not). A failed copy is removed at once: on a full
    disk, that is the room reason.json needs."""
    sealed_to: list[age.Recipient] = []
    if recipients:
        try:
            sealed_to = age.parse_recipients(recipients)
        except age.AgeError as exc:  # never a plain copy when it should be sealed
            return None, f" (not copied: the escrow recipients cannot be used: {exc})"
        name += SEALED_SUFFIX
    relative = Path(name)
    if name.casefold() == REASON.casefold():
        relative = RENAMED_COPY / name
        os.mkdir(scratch / RENAMED_COPY, modes.folder)
        os.chmod(scratch / RENAMED_COPY, modes.folder)
    destination = scratch / relative
    try:
        _copy(fd, destination, modes.file, sealed_to)
    except (OSError, age.AgeError) as exc:
        destination.unlink(missing_ok=True)
        return None, _not_copied(exc)
    return relative, ""


def _copy(fd: int, destination: Path, mode: int, recipients: Sequence[age.Recipient]) -> None:
    out = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(out, mode)  # the source's own mode (often 644) is not copied
        if recipients:
            with open(os.dup(fd), "rb") as plain, open(os.dup(out), "wb") as sealed:
                plain.seek(0)
                age.encrypt(plain, sealed, recipients)
        else:
            offset = 0
            while chunk := os.pread(fd, _CHUNK, offset):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
                offset += len(chunk)
        info = os.fstat(fd)
        os.utime(out, ns=(info.st_atime_ns, info.st_mtime_ns))  # when it was recorded
    finally:
        os.close(out)


def _write_reason(path: Path, record: dict[str, Any], mode: int) -> None:
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(out, "w", encoding="utf-8") as handle:
        os.fchmod(out, mode)
        handle.write(json.dumps(record, indent=2) + "\n")
