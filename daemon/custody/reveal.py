"""Revealing an original: a custodian's access to a job's escrow copy, recorded first.

The order is the point. Everything that can be checked without the plaintext is checked
first (the output name is free, the identity file loads, the job has an escrow copy that
retention has not deleted, the copy in the store is the one recorded, the time range and
the tracks make sense), so a refusal costs nothing and records nothing. Then the access is
written to the audit log and fsynced; if it cannot be, nothing is revealed. Only then is
the copy decrypted, into a private folder beside the output (mode 700, files 600), checked
against the original's recorded sha256, optionally masked again except for some tracks and
cut to a time range, and published under the output name (mode 600, never replacing a
file). A wrong identity is audited as refused, any other failure as failed; either way
nothing is left behind.

A selective reveal (`keep_visible`) redacts the original again with the job's own rule from
the rule-set snapshot it was redacted with, masking every track except the named ones: the
same plan on the same clip gives the same track ids, so the ids mean what the package's
manifest `tracks` says. The cut comes last, by stream copy (`adapters.cut`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privmask.adapters import age, files
from privmask.adapters.cut import cut
from privmask.adapters.minisign import SecretKey
from privmask.daemon.config import Config, ConfigError
from privmask.daemon.custody import escrow
from privmask.daemon.custody.audit import AuditError, AuditLog, actor_name
from privmask.daemon.custody.reveal_span import Span
from privmask.daemon.custody.sitekey import site_key
from privmask.daemon.journal import EscrowCopy, Journal
from privmask.daemon.secrets import SecretError
from privmask.rules.plan import RedactionPlan, TrackSelection
from privmask.rules.ruleset import RuleSet, compile_plan

_FILE_JOB = re.compile(r"\d{1,12}")
_LIVE_JOB = re.compile(r"live-\d{8}T\d{6}-[0-9a-f]{6}")
# containers a masked or cut reveal can be written in (a plain reveal is the bytes as they were)
REMUX_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".ts")


class RevealError(Exception):
    """A reveal is refused or failed; one line, never key material."""


@dataclass(frozen=True)
class RevealRequest:
    target: str  # a job id or a package path
    identity: Path
    reason: str
    out: Path
    requester: str | None = None
    span: Span = Span()
    keep_visible: frozenset[int] | None = None
    models: str | None = None


@dataclass(frozen=True)
class Revealed:
    job: str
    out: Path
    entry: int  # the audit entry's seq
    sha256: str  # of the original decrypted
    start: float | None  # where a cut starts (the keyframe at or before the asked start)


def reveal(config: Config, request: RevealRequest) -> Revealed:
    """Check, audit, then decrypt (and mask, and cut) a job's original into `request.out`."""
    out = _free_output(request)
    identities = age.load_identities(request.identity)
    copy = _escrow_copy(config, request.target)
    plan = _selective_plan(config, copy, request.keep_visible) if request.keep_visible else None
    try:
        start, end = request.span.resolve(copy.recorded)
    except ValueError as exc:
        raise RevealError(f"job {copy.job}: {exc}") from None
    log = AuditLog(config.audit_folder, _signer(config), config.audit_checkpoint_every)
    actor = actor_name(request.requester)
    entry = log.append(
        "reveal",
        actor=actor,
        job=copy.job,
        reason=request.reason,
        details=_details(copy, request, start, end, out),
    )
    try:
        with _workspace(out) as work:
            sha256 = _decrypt(config, copy, identities, work / f"original{out.suffix}")
            result = work / f"original{out.suffix}"
            if plan is not None:
                models = request.models or config.models
                result = _mask(result, work / f"masked{out.suffix}", plan, models)
            cut_from = None
            if start is not None or end is not None:
                done = cut(result, work / f"cut{out.suffix}", start, end, name=out.name)
                result, cut_from = work / f"cut{out.suffix}", done.start
            os.chmod(result, 0o600)
            files.publish(result, out)
    except BaseException as exc:
        _record_failure(log, actor, copy.job, request.reason, exc)
        if isinstance(exc, age.WrongIdentity):
            raise RevealError(
                f"job {copy.job}: the identity does not open this escrow copy "
                f"({request.identity} is not one of its custodians' keys); the refusal is recorded"
            ) from None
        if isinstance(exc, FileExistsError):
            raise RevealError(f"{out} appeared meanwhile; nothing was written") from None
        raise
    return Revealed(copy.job, out, entry["seq"], sha256, cut_from)


# --- before the audit: everything checked that needs no plaintext ---


def _free_output(request: RevealRequest) -> Path:
    out = request.out.absolute()
    if out.exists() or out.is_symlink():
        raise RevealError(f"{request.out} already exists; give a new file name for the reveal")
    if not out.parent.is_dir():
        raise RevealError(f"{out.parent} is not a folder; --out must name a file in one")
    remuxed = request.keep_visible is not None or not request.span.whole
    if remuxed and out.suffix.lower() not in REMUX_SUFFIXES:
        raise RevealError(
            f"--out {request.out.name}: a masked or cut reveal is written as a video file; "
            f"end its name in one of {', '.join(REMUX_SUFFIXES)}"
        )
    return out


def _escrow_copy(config: Config, target: str) -> EscrowCopy:
    """The job's escrow row, its copy still there and unchanged."""
    if not config.journal_path.is_file():
        raise RevealError(
            f"no journal at {config.journal_path}: give the daemon's --config or --state"
        )
    with Journal(config.journal_path, upgrade=False) as journal:
        job = job_id(journal, target)
        copy = journal.escrow(job)
    if copy is None:
        raise RevealError(
            f"job {job} has no escrow copy: its rule named no custodians, or it was never escrowed"
        )
    if copy.deleted is not None:
        raise RevealError(
            f"the escrow copy of job {job} was deleted by retention on {_day(copy.deleted)}; "
            "it cannot be revealed"
        )
    problem = escrow.problem(config.escrow_store, copy.job, copy.sha256)
    if problem is not None:
        raise RevealError(f"job {job}: {problem}; nothing was revealed")
    return copy


def job_id(journal: Journal, target: str) -> str:
    """The escrow job id of `target`: a job id as a manifest gives it, or a package path."""
    text = target.strip()
    if _FILE_JOB.fullmatch(text):
        return f"{int(text):06d}"
    if _LIVE_JOB.fullmatch(text):
        return text
    job = journal.job_of_package(Path(text))
    if job is not None:
        return f"{job.id:06d}"
    raise RevealError(
        f"{target} is not a job id nor a package this journal recorded; give the job id "
        "(the `job` in the package's manifest.json)"
    )


def _selective_plan(config: Config, copy: EscrowCopy, keep: frozenset[int]) -> RedactionPlan:
    """The job's own rule, from the snapshot it was redacted with, masking all but `keep`."""
    if copy.job.startswith("live-"):
        raise RevealError(
            f"job {copy.job} is a live segment: its track ids come from the live tracker, which "
            "a redaction of the file would not give again; reveal it whole or cut it instead"
        )
    folder = config.state / "rulesets" / copy.ruleset
    if not folder.is_dir():
        raise RevealError(
            f"the rule set job {copy.job} was redacted with ({copy.ruleset[:12]}...) is no "
            f"longer in {folder.parent}; --keep-visible needs it"
        )
    ruleset = RuleSet.from_paths([folder])
    if ruleset.digest != copy.ruleset:
        raise RevealError(f"the rule-set snapshot {folder} was altered; --keep-visible refused")
    rule = next((p.rule for p in ruleset.rules if p.rule.name == copy.rule), None)
    if rule is None:
        raise RevealError(f"rule {copy.rule} is not in the rule-set snapshot {folder}")
    plan = compile_plan(rule)
    return dataclasses.replace(plan, selection=TrackSelection("except", keep))


def _signer(config: Config) -> SecretKey | None:
    """The site key, to sign a checkpoint if this entry falls on one; None when it cannot
    be read here (the daemon's next checkpoint covers the entry). Never makes a key."""
    if config.signing_key is None and not config.signing_key_path.is_file():
        return None
    try:
        return site_key(config)
    except (ConfigError, SecretError):  # no checkpoint from here, nothing worse
        return None


def _details(
    copy: EscrowCopy, request: RevealRequest, start: float | None, end: float | None, out: Path
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "escrow": copy.file,
        "escrow_sha256": copy.sha256,
        "source_sha256": copy.source_sha256,
        "out": out.name,
    }
    if start is not None or end is not None:
        details["from"] = {"asked": request.span.start, "seconds": start}
        details["to"] = {"asked": request.span.end, "seconds": end}
    if request.keep_visible is not None:
        details["keep_visible"] = sorted(request.keep_visible)
    return details


# --- after the audit: the plaintext ---


@contextmanager
def _workspace(out: Path) -> Iterator[Path]:
    """A private folder beside `out` (same filesystem: the result is linked into place),
    removed with everything in it on the way out."""
    with files.staging(out) as folder:
        folder.mkdir(mode=0o700)
        yield folder


def _decrypt(config: Config, copy: EscrowCopy, identities: list[age.Identity], target: Path) -> str:
    source_path = escrow.copy_path(config.escrow_store, copy.job)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with open(source_path, "rb") as source, os.fdopen(fd, "wb") as sink:
        sha256, _ = age.decrypt(source, sink, identities)
    if sha256 != copy.source_sha256:
        raise RevealError(
            f"job {copy.job}: the escrow copy opened, but does not hold the original recorded "
            "(its sha256 differs); nothing was revealed"
        )
    return sha256


def _mask(source: Path, target: Path, plan: RedactionPlan, models: str | None) -> Path:
    """Redact `source` again, all but the kept subjects; a kept id the redaction did not
    find fails the reveal (an id from another job, or a manifest that does not fit)."""
    from privmask.daemon.pipeline.offline import redact  # the engine: only when masking

    result = redact(source, target, plan, models_dir=models)
    found = {subject.subject_id for subject in result.subjects}
    unknown = sorted(plan.selection.subjects - found)
    if unknown:
        raise RevealError(
            f"--keep-visible: subject {', '.join(map(str, unknown))} is not among this job's "
            f"subjects ({', '.join(map(str, sorted(found))) or 'none'}); nothing was revealed"
        )
    return target


def _record_failure(log: AuditLog, actor: str, job: str, reason: str, exc: BaseException) -> None:
    """Audit a reveal that revealed nothing; a failure to do so must not hide the cause."""
    refused = isinstance(exc, age.WrongIdentity)
    action = "reveal_refused" if refused else "reveal_failed"
    why = "the identity does not open the escrow copy" if refused else _one_line(exc)
    # the entry `reveal` is written; if this one cannot be, the cause is what to show
    with contextlib.suppress(AuditError):
        log.append(action, actor=actor, job=job, reason=reason, details={"error": why})


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted"
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _day(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")
