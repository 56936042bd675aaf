"""Quarantine: a copy of a rejected clip and `reason.json`, for a person to look at.

The source is copied, never moved: intake must not modify or delete what the NVR exported.
The folder is built under a hidden temporary name and published whole and durably
(`adapters.files`), so a person or a crash never finds half a quarantine.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from privmask.adapters import files


def quarantine(source: Path, folder: Path, job_id: int, code: str, reason: str) -> Path:
    """Copy `source` to `folder/<job id>/` beside a reason.json; return that folder.

    An older copy of the same job's folder is replaced."""
    target = folder / f"{job_id:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    with files.staging(target) as scratch:
        scratch.mkdir()
        copied = None
        try:
            shutil.copy2(source, scratch / source.name)
            copied = source.name
        except OSError as exc:  # the source may be gone or unreadable: the reason still matters
            reason = f"{reason} (the clip could not be copied: {exc.strerror})"
        record = {
            "code": code,
            "reason": reason,
            "source": str(source),
            "copy": copied,
            "job": job_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (scratch / "reason.json").write_text(json.dumps(record, indent=2) + "\n")
        _set_aside(target)
        files.publish(scratch, target)
    return target


def _set_aside(target: Path) -> None:
    """Move an older copy out of the way under a temporary name (swept like any other
    leftover if we crash now), then remove it."""
    aside = files.temporary_name(target)
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        return
    files.remove(aside)
