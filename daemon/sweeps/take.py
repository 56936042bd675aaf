"""A fetched chunk taken in as intake takes an inbox clip: opened without following a link,
size limit, hash, validation, then queued as a job (or a duplicate of one) or quarantined
with its reason. The recorder is no more trusted than an inbox."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from privmask.adapters.untrusted import open_regular, sha256_of_descriptor
from privmask.adapters.validate import ValidationError, check_size, validate
from privmask.daemon.config import Config
from privmask.daemon.journal import FileIdentity, Journal
from privmask.daemon.quarantine import quarantine

log = structlog.get_logger("privmask.sweeps")


def take_clip(config: Config, journal: Journal, path: Path, root: Path, camera: str | None) -> int:
    """The job of the clip at `path` (inside `root`): a new or found job id. OSError when
    it cannot be read (the chunk is fetched again later)."""
    fd = open_regular(path, root)
    try:
        info = os.fstat(fd)
        identity = FileIdentity(str(path), info.st_size, info.st_mtime_ns, info.st_ino)
        limits = config.intake_limits
        try:
            check_size(path.name, info.st_size, limits)
            digest = sha256_of_descriptor(fd)
            validate(path, limits, fd=fd)
        except ValidationError as exc:
            digest = digest if "digest" in locals() else f"unhashed:{info.st_ino}:{info.st_size}"
            return _reject(config, journal, path, fd, identity, digest, camera, exc)
        job, created = journal.enqueue(identity, digest, str(path.parent), camera)
        event = "chunk_queued" if created else "chunk_duplicate"
        log.info(event, job=job.id, source=str(path), bytes=info.st_size)
        return job.id
    finally:
        os.close(fd)


def _reject(
    config: Config,
    journal: Journal,
    path: Path,
    fd: int,
    identity: FileIdentity,
    digest: str,
    camera: str | None,
    exc: ValidationError,
) -> int:
    rejection = exc.rejection
    job = journal.quarantine_file(identity, digest, str(path.parent), rejection.reason, camera)
    try:
        quarantine(
            path,
            config.quarantine,
            job.id,
            rejection.code,
            rejection.reason,
            fd=fd,
            max_copy_bytes=config.intake_limits.max_bytes,
            group_readable=config.quarantine_group_readable,
            recipients=config.escrow_recipients,
        )
    except OSError as exc_copy:  # recorded; the daemon copies it at its next start
        log.error("quarantine_copy_failed", job=job.id, error=str(exc_copy))
    log.warning("chunk_rejected", job=job.id, code=rejection.code, reason=rejection.reason)
    return job.id
