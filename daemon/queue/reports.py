"""What workers say, applied to the journal on the daemon host, checked before it counts.

A report is applied only when it names the job's current try (the try id the order carried):
a report of an earlier try, of a sibling daemon's job with the same number, or replayed by
someone with the broker's password changes nothing. What it claims is checked here too:
`sealed` only for the job's own copy, in the store, with the sha256 it says; `done` only for
the package this daemon plans for the job, opened with its password, signed with the site
key, of the job's input; the journal records the rule set the package itself names. Source
deletion is checked and done here, where the inbox is; when in doubt, the file stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from kombu import Message

from privmask.adapters.minisign import PublicKey
from privmask.daemon.config import Config
from privmask.daemon.custody import escrow
from privmask.daemon.custody.source_deletion import delete_source
from privmask.daemon.delivery import Custody, Delivery, plan_delivery
from privmask.daemon.job_steps import decide, opened_source
from privmask.daemon.journal import EscrowCopy, Job, JobState, Journal
from privmask.daemon.queue.protocol import Order, Report, verified
from privmask.daemon.retry import RetryPolicy
from privmask.daemon.rulebook import snapshot
from privmask.rules.ruleset import Decision

log = structlog.get_logger("privmask.queue")

_DIGEST = re.compile(r"[0-9a-f]{64}")
REFUSED_SECONDS = 10.0  # a job a worker refused is sent again after this long

Quarantine = Callable[[str, int, str, str], None]  # source, job, code, reason


class ReportRefused(Exception):
    """A report of the current try that does not check out: the try counts as failed."""


@dataclass(frozen=True)
class DeadLetter:
    order: Order
    reason: str


class Reports:
    def __init__(
        self,
        config: Config,
        journal: Journal,
        custody: Custody,
        policy: RetryPolicy,
        password: bytes,
        quarantine: Quarantine,
    ) -> None:
        self._config, self._journal, self._custody = config, journal, custody
        self._policy, self._password, self._quarantine = policy, password, quarantine

    def apply(self, report: Report) -> None:
        """One worker's report, into the journal (and the audit log, the quarantine)."""
        journal = self._journal
        if report.kind == "alive":  # of the worker, not of a job
            detail = report.detail
            concurrency = detail.get("concurrency")
            journal.worker_heard(
                report.worker,
                str(detail.get("host", ""))[:255] or None,
                int(concurrency) if isinstance(concurrency, int) else None,
                stopped=bool(detail.get("stopping")),
            )
            return
        bound = log.bind(job=report.job, attempt=report.attempt, worker=report.worker)
        if journal.current_try(report.job) != report.try_id:  # over, or never ours
            bound.info("report_stale", kind=report.kind)
            return
        job = journal.get(report.job)
        try:
            if report.kind == "started":
                journal.queue_started(job.id, report.try_id, report.worker)
            elif report.kind == "sealed":
                self._sealed(job, report.detail, report.worker)
                bound.info("escrow_written", file=report.detail["copy"]["file"])
            elif report.kind == "done":
                self._done(job, report.detail, report.worker)
            elif report.kind == "failed":
                self.failed(job, report.detail, report.worker)
            elif report.kind == "local":
                journal.mark_local(job.id, str(report.detail.get("reason", "held for review")))
                bound.info("job_kept_local", reason=report.detail.get("reason"))
        except ReportRefused as exc:
            bound.error("report_refused", kind=report.kind, reason=str(exc))
            detail = {"failure": "retry", "code": "report_refused", "error": str(exc)}
            self.failed(job, detail, report.worker)

    def refused(self, report: Report) -> None:
        """A worker could not verify the order of the job's current try (its site key is
        not this daemon's): the job goes back without using a try, for any worker. It is
        not signed (that worker's key is the problem), so the most a forgery does is send
        a job again."""
        if self._journal.current_try(report.job) != report.try_id:
            return
        reason = str(report.detail.get("reason", "refused"))[:500]
        self._journal.release(
            report.job, f"{report.worker}: {reason}", REFUSED_SECONDS, why="refused by a worker"
        )
        log.error("order_refused_by_worker", job=report.job, worker=report.worker, reason=reason)

    def _sealed(self, job: Job, detail: dict[str, Any], worker: str) -> None:
        copy = EscrowCopy(**detail["copy"])
        name = f"{job.id:06d}"
        store = self._custody.store
        if copy.job != name or copy.file != escrow.copy_path(store, name).name:
            raise ReportRefused(f"escrow copy {copy.file!r} is not job {name}'s")
        problem = escrow.problem(store, name, copy.sha256)
        if problem is not None or copy.source_sha256 != job.sha256:
            raise ReportRefused(problem or "the escrow copy holds another original")
        self._custody.record(
            self._journal, copy, int(detail["recipients"]), actor=f"worker {worker}"
        )

    def _done(self, job: Job, detail: dict[str, Any], worker: str) -> None:
        digest = str(detail.get("ruleset", ""))
        if not _DIGEST.fullmatch(digest):
            raise ReportRefused("the report names no rule set")
        decision, delivery, swept = self._planned(job, digest)
        if str(delivery.package) != str(detail.get("package")):
            raise ReportRefused(
                f"{Path(str(detail.get('package'))).name} is not this job's package"
            )
        try:
            manifest = delivery.published(job.sha256, self._custody.signer)
        except Exception as exc:  # unreadable, wrong password or signature, other input
            raise ReportRefused(
                f"{delivery.package.name}: {exc} (a worker with another password or key? "
                f"remove it, then privmask retry {job.id})"
            ) from None
        if manifest is None or manifest.get("job") != job.id:
            raise ReportRefused(f"{delivery.package.name} is not there, or not this job's")
        if self._custody.recipients_for(decision):  # no package without its escrow copy
            copy = self._journal.escrow(f"{job.id:06d}")
            block = manifest.get("escrow") or {}
            if (
                copy is None
                or copy.source_sha256 != job.sha256
                or block.get("sha256") != copy.sha256
            ):
                raise ReportRefused(
                    f"{delivery.package.name} names no escrow copy recorded for it, which its "
                    f"rule requires: remove it, then privmask retry {job.id}"
                )
        ruleset = str(manifest.get("rule_set_sha256", digest))
        self._journal.finish(job.id, str(delivery.package), ruleset)
        log.info(
            "job_done", job=job.id, worker=worker, package=delivery.package.name, rule_set=ruleset
        )
        if decision.custody.delete_source and not swept:  # never a recorder's archive
            taken = self._journal.first_file(job.id)
            escrowed = self._journal.escrow(f"{job.id:06d}")
            try:
                delete_source(job, taken, decision, delivery, self._custody, escrowed)
            except Exception as exc:  # the source stays: a person can delete it
                log.warning("source_kept", job=job.id, reason=str(exc))

    def _planned(self, job: Job, digest: str) -> tuple[Decision, Delivery, bool]:
        """The decision and the package this daemon plans for `job` under the rule set the
        worker used (a snapshot this daemon published)."""
        try:
            ruleset = snapshot(self._config.state / "rulesets", digest)
            taken = self._journal.first_file(job.id)
            swept = self._journal.swept_recording_time(job.id)
            with opened_source(job) as clip:
                decision, recorded, _ = decide(job, clip, taken, self._config, swept, ruleset)
        except Exception as exc:  # no such snapshot, the source gone or changed
            raise ReportRefused(f"cannot check the package: {exc}") from None
        delivery = plan_delivery(
            decision,
            default_outbox=self._config.outbox,
            default_password=self._password,
            camera=job.camera,
            when=recorded,
            job=f"{job.id:06d}",
            input_sha256=job.sha256,
        )
        return decision, delivery, swept is not None

    def failed(self, job: Job, detail: dict[str, Any], worker: str) -> None:
        error, failure = str(detail.get("error", "failed")), detail.get("failure")
        bound = log.bind(job=job.id, attempt=job.attempts, worker=worker)
        if failure == "wait":  # the site's storage, or what this worker lacks: no try used
            storage = detail.get("code") == "storage"
            why = "waiting for storage" if storage else f"left to another worker by {worker}"
            self._journal.release(job.id, error, self._config.storage_check_seconds, why=why)
            bound.warning(
                "job_waiting_for_storage" if storage else "job_left_by_worker", reason=error
            )
            return
        state = self._journal.fail(job.id, error, self._policy, permanent=failure == "permanent")
        bound.warning("job_failed", reason=error, state=str(state), code=detail.get("code"))
        if state is JobState.QUARANTINED:
            self._quarantine(job.path, job.id, str(detail.get("code", "failed")), error)

    def dead(self, letter: DeadLetter) -> None:
        """RabbitMQ gave up on an order (or a worker refused it): a failed try, unless that
        try is already over."""
        order = letter.order
        if self._journal.current_try(order.job) != order.try_id:
            log.info("dead_letter_stale", job=order.job, attempt=order.attempt)
            return
        job = self._journal.get(order.job)
        detail = {"failure": "retry", "code": "worker_lost", "error": letter.reason}
        self.failed(job, detail, "unknown (no report)")


def dead_letter(body: Any, message: Message, public: PublicKey) -> DeadLetter:
    """The order inside a dead-lettered Celery message (protocol 2: args, kwargs, embed),
    and why RabbitMQ gave up on it (its x-death header)."""
    args = body[0]
    order = Order.from_message(verified(args[0], public))
    deaths = (message.headers or {}).get("x-death") or [{}]
    reason = deaths[0].get("reason", "")
    if reason == "delivery_limit":
        why = "its workers were lost on it again and again (the queue's delivery limit)"
    else:
        why = (
            "its worker gave up or refused it without a report (a crash, its hard time "
            "limit, or a worker with another site key)"
        )
    return DeadLetter(order, why)
