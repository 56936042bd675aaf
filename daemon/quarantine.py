"""Quarantine: a copy of a rejected clip and `reason.json`, for a person to look at.

The source is copied, never moved: intake must not modify or delete what the NVR exported.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path


def quarantine(source: Path, folder: Path, job_id: int, code: str, reason: str) -> Path:
    """Copy `source` to `folder/<job id>/` beside a reason.json; return that folder."""
    target = folder / f"{job_id:06d}"
    scratch = folder / f".{job_id:06d}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
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
    shutil.rmtree(target, ignore_errors=True)
    os.replace(scratch, target)
    return target
