"""The daemon's review queue: `ReviewQueue` (queue.py) on the journal, for the review page
and the `privmask review` commands.

A decision is checked before anything is written (the job waits, the analysis is of this
clip, every kept id is one of its subjects, a reason is given), then recorded in the audit
log (who, when, why, what) and in the journal, which sends the job on: the daemon's workers
claim an approved job, running or started later. A rejected job's analysis (unmasked
crops) is removed at once; its source is never touched. Every view of unmasked pictures is
recorded in the audit log before it is shown, and in the journal.

Each call opens the journal for itself: the page calls from its own threads, and a command
may run beside the daemon.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from privmask.adapters.minisign import SecretKey
from privmask.adapters.video import VideoError
from privmask.daemon.config import Config
from privmask.daemon.custody.audit import AuditError, AuditLog
from privmask.daemon.job_steps import decide, opened_source
from privmask.daemon.journal import (
    Job,
    JobState,
    JobStateError,
    Journal,
    JournalError,
    Review,
    ReviewDecision,
)
from privmask.daemon.pipeline import analysis
from privmask.daemon.review.queue import ClipUnderReview, Decision, ReviewError, WaitingClip
from privmask.daemon.worker_review import region_to, remove_analysis
from privmask.rules.ruleset import NoRuleApplies

MAX_REASON = 1000  # characters: a reason is a sentence or two, kept in every record


class JournalReviewQueue:
    """The clips the daemon of `config` holds for review. `signer`: the site key, to sign
    an audit checkpoint when an entry falls on one (the daemon passes it; a command reads
    it where it may, else the daemon's next checkpoint covers the entry)."""

    def __init__(self, config: Config, signer: SecretKey | None = None) -> None:
        self.config = config
        self._audit = AuditLog(config.audit_folder, signer, config.audit_checkpoint_every)

    def waiting(self) -> Sequence[WaitingClip]:
        if not self.config.journal_path.exists():
            return ()
        with self._journal() as journal:
            return [_waiting(job, review) for job, review in journal.waiting_for_review()]

    def get(self, job: str) -> ClipUnderReview | None:
        if not self.config.journal_path.exists():
            return None
        with self._journal() as journal:
            found = _held(journal, job)
            if found is None:
                return None
            held, review = found
            try:  # the rule as the worker will decide it now
                with opened_source(held) as clip:
                    taken, swept = (
                        journal.first_file(held.id),
                        journal.swept_recording_time(held.id),
                    )
                    decision = decide(held, clip, taken, self.config, swept)[0]
            except NoRuleApplies:
                raise ReviewError(f"job {job}: no rule applies to it any more") from None
            except VideoError as exc:  # the source gone or replaced meanwhile
                raise ReviewError(f"job {job}: {exc}") from None
        return ClipUnderReview(
            _waiting(held, review), Path(held.path), Path(review.analysis), decision.plan
        )

    def decide(self, job: str, decision: Decision) -> None:
        with self._journal() as journal:
            held, review = _waiting_or_refuse(journal, job)
            _check(held, review, decision)
            record = ReviewDecision(
                decision.approve,
                tuple(sorted(decision.keep_visible)),
                tuple(region_to(r) for r in decision.regions),
                decision.reason.strip(),
                decision.reviewer,
            )
            self._record(
                "review_decided",
                decision.reviewer,
                held,
                record.reason,
                {
                    "decision": "approve" if record.approve else "reject",
                    "kept_visible": list(record.keep_visible),
                    "regions": [r["points"] for r in record.regions],
                    "source_sha256": held.sha256,
                },
            )
            try:
                journal.decide(held.id, record)
            except JobStateError:  # decided by someone else a moment ago
                raise ReviewError(f"job {job} is not waiting for review") from None
        if not record.approve:  # no package will be made from it: the crops go now
            remove_analysis(Path(review.analysis))

    def viewed(self, job: str, reviewer: str, what: str) -> None:
        with self._journal() as journal:
            held, _ = _waiting_or_refuse(journal, job)
            self._record("review_viewed", reviewer, held, None, {"what": what})
            journal.note(held.id, f"{what} viewed by {reviewer}")

    def _record(
        self, action: str, reviewer: str, job: Job, reason: str | None, details: dict[str, object]
    ) -> None:
        """The audit entry first: if it cannot be written, nothing is decided or shown."""
        try:
            self._audit.append(
                action, actor=reviewer, job=f"{job.id:06d}", reason=reason, details=details
            )
        except AuditError as exc:
            raise ReviewError(f"not recorded, so not done: {exc}") from None

    @contextmanager
    def _journal(self) -> Iterator[Journal]:
        path = self.config.journal_path
        if not path.exists():  # never make a journal where no daemon has run
            raise ReviewError(f"no journal at {path}: the daemon has not run with this state")
        try:
            journal = Journal(path, upgrade=False)  # the daemon upgrades it, never the page
        except JournalError as exc:
            raise ReviewError(str(exc)) from None
        with journal:
            yield journal


def readable_signer(config: Config) -> SecretKey | None:
    """The site key where this user may read it (a command run beside the daemon), to sign
    a checkpoint falling on its entry; None otherwise, never a new key."""
    from privmask.daemon.config import ConfigError
    from privmask.daemon.custody.sitekey import site_key
    from privmask.rules.secret import SecretError

    if config.signing_key is None and not config.signing_key_path.is_file():
        return None
    try:
        return site_key(config)
    except (ConfigError, SecretError, OSError):
        return None


def job_number(job: str) -> int | None:
    """A job as the page and the commands name it ("12", "000012"); None if not one."""
    text = job.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _held(journal: Journal, job: str) -> tuple[Job, Review] | None:
    number = job_number(job)
    if number is None:
        return None
    try:
        found = journal.get(number)
    except KeyError:
        return None
    review = journal.review_of(number)
    if found.state is not JobState.REVIEW or review is None:
        return None
    return found, review


def _waiting_or_refuse(journal: Journal, job: str) -> tuple[Job, Review]:
    found = _held(journal, job)
    if found is None:
        raise ReviewError(f"job {job} is not waiting for review")
    return found


def _waiting(job: Job, review: Review) -> WaitingClip:
    return WaitingClip(
        f"{job.id:06d}",
        Path(job.path).name,
        job.camera,
        datetime.fromtimestamp(review.held, UTC),
    )


def _check(job: Job, review: Review, decision: Decision) -> None:
    """Refuse, before anything is written, a decision that cannot stand."""
    reason = decision.reason.strip()
    if not reason:
        raise ReviewError("a reason is required")
    if "\n" in reason or "\r" in reason or len(reason) > MAX_REASON:
        raise ReviewError(f"the reason must be one line of at most {MAX_REASON} characters")
    if not decision.reviewer.strip():
        raise ReviewError("the reviewer's name is missing")
    folder = Path(review.analysis)
    try:
        found = analysis.read(folder)
        if found.clip.get("sha256") != job.sha256:
            raise analysis.AnalysisError(f"{folder}: the analysis is of another clip")
        analysis.check_ids(found, frozenset(decision.keep_visible), folder)
    except analysis.AnalysisError as exc:
        raise ReviewError(f"job {job.id}: {exc}") from None
