"""Retention: originals are deleted once the site's or their rule's time is up.

Escrow copies carry their own expiry, fixed when they were written (the rule's
`retention_days`, else the site's), in the journal's escrow table; quarantine copies expire
after the site's `escrow.retention_days`, counted from when they were quarantined. Each
deletion is audited before it is done. Packages, the product, are never deleted here, and
neither is a quarantine folder's `reason.json`, which holds no video and tells a person
what happened (the journal still lists the job as quarantined).
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from privmask.adapters import files
from privmask.daemon.custody import escrow
from privmask.daemon.delivery import DAY_SECONDS, Custody
from privmask.daemon.journal import Journal
from privmask.daemon.quarantine import REASON

log = structlog.get_logger("privmask.retention")

ACTOR = "retention"


def sweep(journal: Journal, custody: Custody, quarantine: Path, now: float | None = None) -> int:
    """Delete every original past its time; returns how many were deleted."""
    now = time.time() if now is None else now
    deleted = 0
    for copy in journal.expired_escrows(now):
        custody.audit().append(
            "retention_deleted",
            actor=ACTOR,
            job=copy.job,
            details={"escrow": copy.file, "sha256": copy.sha256, "expired": copy.expires},
        )
        files.discard(escrow.copy_path(custody.store, copy.job))
        journal.escrow_deleted(copy.job, now)
        log.info("escrow_copy_expired", job=copy.job, file=copy.file)
        deleted += 1
    if custody.retention_days:
        cutoff = now - custody.retention_days * DAY_SECONDS
        for folder in _quarantined_before(quarantine, cutoff):
            copies = [p for p in folder.iterdir() if p.name != REASON]
            if not copies:
                continue
            custody.audit().append(
                "retention_deleted",
                actor=ACTOR,
                job=folder.name,
                details={"quarantine_copy": True, "files": len(copies)},
            )
            for path in copies:
                files.discard(path)
            log.info("quarantine_copy_expired", job=folder.name)
            deleted += 1
    return deleted


def _quarantined_before(quarantine: Path, cutoff: float) -> list[Path]:
    """Quarantine folders (not hidden, so never one being built) older than `cutoff`, by
    the time their reason.json was written."""
    found = []
    for folder in sorted(quarantine.iterdir()) if quarantine.is_dir() else ():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            written = (folder / REASON).stat().st_mtime
        except OSError:
            continue
        if written < cutoff:
            found.append(folder)
    return found
