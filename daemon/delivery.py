"""Delivery: the one path from a rule's decision and a redacted file to a package on a share.

Clips from the inbox (`worker.py`) and live segments (`live/supervisor.py`) both come here,
so both get the same destination rules, the same file-safe names, the same password
lookup, the same escrow of the original and the same signed manifest. A package's name is
fixed by the job (its id and input hash), which is what makes delivery idempotent: a job
retried after a crash finds its package and records it instead of making a second one.

Custody, in order: the original is sealed into the escrow store (`escrow.py`) and recorded
(journal, audit log) before the package that refers to it is written, so no package is
ever published without its escrow copy; the package's manifest is signed with the site key.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from privmask.adapters import age
from privmask.adapters.minisign import SecretKey
from privmask.adapters.models import sha256_of
from privmask.adapters.package import PackageContents, PackageError, check_package, write_package
from privmask.adapters.video import probe
from privmask.daemon import __version__
from privmask.daemon.config import Config
from privmask.daemon.custody import escrow
from privmask.daemon.custody.audit import AuditLog
from privmask.daemon.journal import EscrowCopy, Journal
from privmask.daemon.pipeline.report import Redaction, build_report, video_summary
from privmask.daemon.secrets import read_secret
from privmask.rules.ruleset import Decision


def safe_name(camera: str | None) -> str:
    """A camera id as it may appear in a file name: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", camera or "camera").strip("-") or "camera"


DAY_SECONDS = 86_400.0

log = structlog.get_logger("privmask.delivery")


@dataclass(frozen=True)
class Custody:
    """The site's custody settings and signing key, as every process that delivers needs
    them (plain values: worker processes get it pickled)."""

    store: Path
    recipients: tuple[str, ...]  # the site's; a rule may name its own instead
    retention_days: int | None
    signer: SecretKey
    audit_folder: Path
    checkpoint_every: int

    @classmethod
    def of(cls, config: Config, signer: SecretKey) -> Custody:
        return cls(
            config.escrow_store,
            config.escrow_recipients,
            config.retention_days,
            signer,
            config.audit_folder,
            config.audit_checkpoint_every,
        )

    def audit(self) -> AuditLog:
        return AuditLog(self.audit_folder, self.signer, self.checkpoint_every)

    def recipients_for(self, decision: Decision) -> tuple[str, ...]:
        named = decision.custody.recipients
        return self.recipients if named is None else named

    def seal(
        self,
        journal: Journal,
        job: str,
        original: Path,
        decision: Decision,
        *,
        actor: str,
        expected_sha256: str | None = None,
        recorded: str | None = None,
    ) -> EscrowCopy | None:
        """Escrow the job's original when its rule (or the site) names recipients: sealed
        durably into the store, recorded in the journal, then audited. None: no recipients."""
        sealed = self.sealed_copy(job, original, decision, expected_sha256, recorded)
        if sealed is None:
            return None
        copy, recipients = sealed
        self.record(journal, copy, recipients, actor=actor)
        return copy

    def sealed_copy(
        self,
        job: str,
        original: Path,
        decision: Decision,
        expected_sha256: str | None = None,
        recorded: str | None = None,
    ) -> tuple[EscrowCopy, int] | None:
        """Seal the original durably into the store, not yet recorded (a worker on another
        machine has the daemon record it: `record`): the copy and how many recipients it
        is sealed to. None: no recipients."""
        entries = self.recipients_for(decision)
        if not entries:
            return None
        recipients = age.parse_recipients(entries)
        sealed = escrow.seal(original, self.store, job, recipients, expected_sha256)
        now = time.time()
        days = decision.custody.retention_days or self.retention_days
        copy = EscrowCopy(
            job=job,
            file=escrow.copy_path(self.store, job).name,
            sha256=sealed.sealed_sha256,
            bytes=sealed.sealed_bytes,
            source_sha256=sealed.plain_sha256,
            written=now,
            expires=now + days * DAY_SECONDS if days else None,
            deleted=None,
            rule=decision.rule.rule.name,
            ruleset=decision.ruleset_hash,
            recorded=recorded,
        )
        return copy, len(recipients)

    def record(self, journal: Journal, copy: EscrowCopy, recipients: int, *, actor: str) -> None:
        """An escrow copy in the journal, then in the audit log; the entry names the copy it
        replaced when an earlier try of the job sealed one (one copy per job)."""
        earlier = journal.escrow(copy.job)
        journal.record_escrow(copy)
        details = {
            **copy.manifest_block(),
            "source_sha256": copy.source_sha256,
            "recipients": recipients,
            "rule": copy.rule,
            "rule_set_sha256": copy.ruleset,
        }
        if earlier is not None and earlier.deleted is None and earlier.sha256 != copy.sha256:
            details["replaces"] = earlier.sha256
        self.audit().append("escrow_written", actor=actor, job=copy.job, details=details)


@dataclass(frozen=True)
class Delivery:
    """Where one result goes, under which name, and with which password."""

    outbox: Path
    name: str
    password: bytes

    @property
    def package(self) -> Path:
        return self.outbox / f"{self.name}.zip"

    def published(self, input_sha256: str, signer: SecretKey) -> dict[str, Any] | None:
        """The manifest of this same input's package, if an earlier try already delivered
        it; raises PackageError when a package of another input holds the name."""
        if not self.package.exists():
            return None
        manifest = check_package(self.package, self.password, signer.public).manifest
        if manifest.get("input", {}).get("sha256") != input_sha256:
            raise PackageError(f"{self.package.name}: a different package already has this name")
        return manifest

    def publish(self, video: Path, manifest: dict[str, Any], signer: SecretKey) -> Path:
        contents = PackageContents(video, manifest)
        return write_package(contents, self.outbox, self.name, self.password, signer)


def plan_delivery(
    decision: Decision,
    *,
    default_outbox: Path,
    default_password: bytes,
    camera: str | None,
    when: datetime,
    job: str,
    input_sha256: str,
) -> Delivery:
    """The rule's destination, name template and password, or the site's defaults."""
    output = decision.output
    outbox = Path(output.destination) if output.destination else default_outbox
    password = default_password if output.password is None else read_secret(output.password)
    name = output.name_template.format(
        camera=safe_name(camera),
        date=when.strftime("%Y%m%d"),
        time=when.strftime("%H%M%S"),
        id=job,
        hash=input_sha256[:12],
    )
    return Delivery(outbox, name, password)


def manifest(
    decision: Decision,
    *,
    job: int | str,
    camera: str | None,
    source: dict[str, Any],
    redacted: Path,
    redaction: Redaction | None,
    times: dict[str, float],
    models: list[dict[str, str]] | None = None,
    escrowed: EscrowCopy | None = None,
    tracks: list[dict[str, Any]] | None = None,
    masked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a package says about itself. `source` describes the input (sha256 and size of
    the file, or of a live segment's unmasked copy, plus the stream). `redaction` is None
    for live segments, whose masks were drawn frame by frame by `models`: their `tracks`
    and `masked` totals come from the camera, counted within the segment. `escrowed`: the
    original's escrow copy, None when the rule and site name no recipients."""
    plan = decision.plan
    report = build_report(redaction, plan) if redaction is not None else None
    output = report["output"] if report else video_summary(probe(redacted))
    output = {"sha256": sha256_of(redacted), "bytes": redacted.stat().st_size, **output}
    output.pop("file")  # file names may hold personal data
    return {
        "privmask_version": __version__,
        "job": job,
        "camera": camera,
        "live": redaction is None,
        "input": source,
        "output": output,
        "escrow": escrowed.manifest_block() if escrowed else None,
        "rule": decision.rule.rule.name,
        "rule_set_sha256": decision.ruleset_hash,
        "models": report["models"] if report else (models or []),
        "masked": report["totals"] if report else (masked or {"frames": None}),
        "tracks": [
            {k: t[k] for k in ("id", "subject", "class", "masked_from", "masked_to", "masked")}
            for t in report["tracks"]
        ]
        if report
        else tracks,
        "times": {**times, "packaged": time.time()},
    }


def remove_partials(package: Path) -> None:
    """The hidden temporary files of `package` (named by files.temporary_name, with or
    without the package's suffix) that a killed worker left beside it (a package in an
    outbox, an escrow copy in the store). Only while no other try can be writing them."""
    stem, suffix = re.escape(f".{package.stem}."), re.escape(package.suffix)
    own = re.compile(stem + r"[0-9a-f]{8,}\.partial(" + suffix + ")?")
    try:
        stale = [p for p in package.parent.iterdir() if own.fullmatch(p.name) and p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
            log.info("partial_removed", file=path.name)
    except OSError as exc:  # an outbox gone meanwhile: the next start sweeps it
        log.warning("partial_not_removed", outbox=str(package.parent), error=exc.strerror)
