"""`source: delete`: the inbox file goes once its package and escrow copy are safe.

Sources are never deleted unless a rule says so and the result is verified: the escrow copy
in the store is the one recorded (sha256), the package verifies with the site key and names
that copy, and the inbox file is still the one taken in (inode, size, mtime). The deletion
is audited before it is done, so the log never misses one; when in doubt, the file stays and
the reason is logged. A rule that says delete while no escrow recipients are set keeps the
file: deleting it would lose the original.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from privmask.adapters import files
from privmask.adapters.package import PackageError, check_package
from privmask.daemon.custody import escrow
from privmask.daemon.delivery import Custody, Delivery
from privmask.daemon.journal import EscrowCopy, FileIdentity, Job
from privmask.rules.ruleset import Decision

log = structlog.get_logger("privmask.worker")


def delete_source(
    job: Job,
    taken: FileIdentity,
    decision: Decision,
    delivery: Delivery,
    custody: Custody,
    escrowed: EscrowCopy | None,
) -> None:
    """Delete the inbox file when the job's rule says `source: delete`, and only once the
    package and the escrow copy are durable and check out, and the file is still the one
    taken in. The deletion is audited before it is done; when in doubt, the file stays."""
    if not decision.custody.delete_source:
        return
    source = Path(job.path)
    bound = log.bind(job=job.id)
    why = _not_deletable(job, taken, delivery, custody, escrowed)
    if why is not None:
        bound.warning("source_kept", reason=why)
        return
    assert escrowed is not None  # _not_deletable says so
    custody.audit().append(
        "source_deleted",
        actor=f"worker {os.getpid()}",
        job=escrowed.job,
        details={
            "source_sha256": job.sha256,
            "escrow": escrowed.file,
            "package": delivery.package.name,
        },
    )
    try:
        source.unlink()
        files.fsync_folder(source.parent)
    except OSError as exc:
        bound.error("source_not_deleted", error=exc.strerror)
        custody.audit().append(
            "source_delete_failed",
            actor=f"worker {os.getpid()}",
            job=escrowed.job,
            reason=exc.strerror,
        )
        return
    bound.info("source_deleted", escrow=escrowed.file)


def _not_deletable(
    job: Job,
    taken: FileIdentity,
    delivery: Delivery,
    custody: Custody,
    escrowed: EscrowCopy | None,
) -> str | None:
    """Why the source must stay, or None when package and escrow copy both check out."""
    if escrowed is None:
        return "the rule says delete, but no escrow recipients are set: it would be lost"
    problem = escrow.problem(custody.store, escrowed.job, escrowed.sha256)
    if problem:
        return problem
    try:
        check = check_package(delivery.package, delivery.password, custody.signer.public)
    except PackageError as exc:
        return str(exc)
    named = check.manifest.get("escrow") or {}
    if named.get("sha256") != escrowed.sha256 or escrowed.source_sha256 != job.sha256:
        return "the package does not name this escrow copy"
    try:
        info = os.lstat(job.path)
    except OSError as exc:
        return f"the source cannot be looked at: {exc.strerror}"
    if (info.st_ino, info.st_size, info.st_mtime_ns) != (taken.inode, taken.size, taken.mtime_ns):
        return "the source changed since it was taken in"
    return None
