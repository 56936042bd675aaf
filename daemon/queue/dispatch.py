"""The daemon's side of many machines: send due jobs to the broker, apply what workers say.

Two threads, each with its own broker connection:
- the sender claims due jobs from the journal (never those marked local) while fewer than
  `queue.backlog` orders wait in the queue, and sends each as an order with the rule set in
  force, its time limits from the clip's duration, and a publisher confirm; a job whose
  rule needs review is kept on the daemon host instead. A broker that cannot be reached
  gives the job back to the journal, without using a try, and is tried again.
- the listener applies reports and dead letters to the journal, in order, acknowledging
  each only once applied: a daemon killed meanwhile gets it again, and applying it twice
  changes nothing the second time (the journal refuses transitions from the wrong state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from celery import Celery
from kombu import Connection, Message

from privmask.adapters.minisign import PublicKey, SignatureError
from privmask.adapters.video import probe
from privmask.daemon.config import Config
from privmask.daemon.custody.source_deletion import delete_source
from privmask.daemon.delivery import Custody, plan_delivery
from privmask.daemon.job_steps import decide, opened_source
from privmask.daemon.journal import EscrowCopy, Job, JobState, JobStateError, Journal
from privmask.daemon.journal_queue import QUEUE_PREFIX, SENT
from privmask.daemon.queue.app import HEARTBEAT_SECONDS, make_app
from privmask.daemon.queue.protocol import TASK_NAME, Order, Report, Topology, signed, verified
from privmask.daemon.queue.settings import QueueSpec, broker_url, shown
from privmask.daemon.retry import RetryPolicy
from privmask.daemon.rulebook import current_snapshot
from privmask.daemon.secrets import read_secret
from privmask.rules.ruleset import RuleSet

log = structlog.get_logger("privmask.queue")

RECONNECT_SECONDS = 5.0  # a broker that cannot be reached is tried again this often
IDLE_SECONDS = 0.5  # how often the journal is looked at when nothing was due

Quarantine = Callable[[str, int, str, str], None]  # source, job, code, reason


@dataclass(frozen=True)
class DeadLetter:
    order: Order
    reason: str


class QueueLink:
    def __init__(
        self,
        config: Config,
        journal: Journal,
        custody: Custody,
        policy: RetryPolicy,
        run: str,
        password: bytes,
        quarantine: Quarantine,
    ) -> None:
        spec = config.queue
        assert spec is not None
        self._config, self._journal, self._custody = config, journal, custody
        self._policy, self._run, self._quarantine = policy, run, quarantine
        self._password = password  # the site's package password: checks a package
        self._spec: QueueSpec = spec
        self._topology = Topology(spec.name, spec.delivery_limit)
        password = spec.password_source
        self._url = broker_url(spec.broker, read_secret(password) if password else None)
        self._app: Celery = make_app(spec, self._url)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send_loop, name="queue-send", daemon=True),
            threading.Thread(target=self._listen_loop, name="queue-listen", daemon=True),
        ]

    def start(self) -> QueueLink:
        log.info("queue_started", broker=shown(self._spec.broker), queue=self._spec.name)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop sending and listening; orders already sent stay with the broker."""
        self._stop.set()
        for thread in self._threads:
            thread.join(HEARTBEAT_SECONDS)

    # -- sending ------------------------------------------------------------------------

    def _send_loop(self) -> None:
        down = _Outage("send")
        while not self._stop.is_set():
            try:
                # the app's connection: with its transport options (publisher confirms)
                with self._app.connection_for_write() as connection:
                    self._declare(connection)
                    down.over()
                    self._send_due(connection)
            except Exception as exc:  # the broker down or refusing: tried again, nothing lost
                down.began(exc)
                self._stop.wait(RECONNECT_SECONDS)

    def _declare(self, connection: Connection) -> None:
        channel = connection.default_channel
        for queue in (self._topology.jobs, self._topology.dead, self._topology.reports):
            queue(channel).declare()

    def _send_due(self, connection: Connection) -> None:
        jobs_queue = self._topology.jobs(connection.default_channel)
        while not self._stop.is_set():
            waiting = jobs_queue.queue_declare(passive=True).message_count
            if waiting >= self._spec.backlog:
                self._stop.wait(IDLE_SECONDS)
                continue
            job = self._journal.claim(SENT, run=self._run, local=False)
            if job is None:
                self._stop.wait(IDLE_SECONDS)
                continue
            try:
                order = self._order(job)
            except Exception as exc:  # the rules or the journal unreadable now: later
                self._journal.release(job.id, f"not sent: {_reason(exc)}", RECONNECT_SECONDS)
                log.error("job_not_sent", job=job.id, error=_reason(exc))
                self._stop.wait(RECONNECT_SECONDS)
                continue
            if order is None:
                continue
            try:
                self._app.send_task(
                    TASK_NAME,
                    args=[signed(order.to_message(), self._custody.signer)],
                    task_id=order.task_id,
                    soft_time_limit=order.soft_limit,
                    time_limit=order.hard_limit,
                    connection=connection,
                    retry=False,
                )
            except Exception:
                # not confirmed: back to the journal, its try given back, sent again later
                self._journal.release(job.id, "the broker did not take it", RECONNECT_SECONDS)
                raise
            log.info(
                "job_sent", job=job.id, attempt=job.attempts, time_limit=round(order.hard_limit)
            )

    def _order(self, job: Job) -> Order | None:
        """The order for `job`, or None when it must stay on the daemon host (held for
        review, or a recorder's chunk only this host holds) and was marked so."""
        fetched = self._config.state / "sweeps"
        if self._spec.recorder_chunks == "local" and fetched in Path(job.path).parents:
            self._journal.mark_local(job.id, "fetched from a recorder onto this host")
            log.info("job_kept_local", job=job.id, reason="fetched from a recorder")
            return None
        ruleset = current_snapshot(self._config.state / "rulesets")
        taken = self._journal.first_file(job.id)
        swept = self._journal.swept_recording_time(job.id)
        duration = 0.0
        try:
            with opened_source(job) as clip:
                duration = probe(clip).duration_s
                decision = decide(job, clip, taken, self._config, swept, ruleset)[0]
                review = decision.review
        except Exception:  # a clip that cannot be read: the worker's try says why
            review = False
        if review or self._journal.review_of(job.id) is not None:
            self._journal.mark_local(job.id, "held for review")
            log.info("job_kept_local", job=job.id, reason="held for review")
            return None
        return Order(
            job=job.id,
            attempt=job.attempts,
            path=job.path,
            sha256=job.sha256,
            size=job.size,
            camera=job.camera,
            folder=job.folder,
            taken=tuple(taken),  # type: ignore[arg-type]
            swept=swept.isoformat() if swept else None,
            duration=duration,
            ruleset=ruleset.digest,
            rules=ruleset.sources,
            created=job.created,
        )

    # -- listening ----------------------------------------------------------------------

    def _listen_loop(self) -> None:
        down = _Outage("listen")
        while not self._stop.is_set():
            try:
                with self._app.connection_for_read(heartbeat=HEARTBEAT_SECONDS) as connection:
                    self._declare(connection)
                    down.over()
                    queues = [self._topology.reports, self._topology.dead]
                    with connection.Consumer(
                        queues, callbacks=[self._on_message], accept=["json"], prefetch_count=8
                    ):
                        while not self._stop.is_set():
                            try:
                                connection.drain_events(timeout=1)
                            except TimeoutError:
                                connection.heartbeat_check()
            except Exception as exc:
                down.began(exc)
                self._stop.wait(RECONNECT_SECONDS)

    def _on_message(self, body: Any, message: Message) -> None:
        try:
            public = self._custody.signer.public
            if message.delivery_info.get("routing_key") == self._topology.dead.routing_key:
                self._dead(_dead_letter(body, message, public))
            else:
                self.apply(Report.from_message(verified(body, public)))
        except JobStateError as exc:  # the job moved on meanwhile: the report is stale
            log.info("report_stale", error=str(exc))
        except (SignatureError, KeyError, TypeError, ValueError) as exc:  # not ours: dropped
            log.error("queue_message_dropped", error=str(exc))
        message.ack()

    def apply(self, report: Report) -> None:
        """One worker's report, into the journal (and the audit log, the quarantine)."""
        journal = self._journal
        try:
            job = journal.get(report.job)
        except KeyError:
            log.error("report_for_unknown_job", job=report.job, worker=report.worker)
            return
        with_queue = job.state is JobState.PROCESSING and _held_by_queue(journal, job.id)
        current = with_queue and job.attempts == report.attempt
        bound = log.bind(job=job.id, attempt=report.attempt, worker=report.worker)
        if report.kind == "started":
            journal.queue_started(job.id, report.attempt, report.worker)
        elif report.kind == "sealed":
            copy = EscrowCopy(**report.detail["copy"])
            self._custody.record(
                journal, copy, int(report.detail["recipients"]), actor=f"worker {report.worker}"
            )
            bound.info("escrow_written", file=copy.file)
        elif report.kind == "done" and with_queue:
            journal.finish(job.id, report.detail["package"], report.detail["ruleset"])
            bound.info("job_done", package=Path(report.detail["package"]).name)
            if report.detail.get("delete_source"):
                self._delete_source(journal.get(job.id), report.detail["ruleset"])
        elif report.kind == "failed" and current:
            self._failed(job, report.detail, report.worker)
        elif report.kind == "local" and current:
            journal.mark_local(job.id, report.detail.get("reason", "held for review"))
            bound.info("job_kept_local", reason=report.detail.get("reason"))
        else:  # a late or repeated report of a try that is over: it changes nothing
            bound.info("report_stale", kind=report.kind, state=str(job.state))

    def _failed(self, job: Job, detail: dict[str, Any], worker: str) -> None:
        error, failure = str(detail.get("error", "failed")), detail.get("failure")
        bound = log.bind(job=job.id, attempt=job.attempts, worker=worker)
        if failure == "wait":
            self._journal.release(job.id, error, self._config.storage_check_seconds)
            bound.warning("job_waiting_for_storage", reason=error)
            return
        state = self._journal.fail(job.id, error, self._policy, permanent=failure == "permanent")
        bound.warning("job_failed", reason=error, state=str(state), code=detail.get("code"))
        if state is JobState.QUARANTINED:
            self._quarantine(job.path, job.id, str(detail.get("code", "failed")), error)

    def _dead(self, letter: DeadLetter) -> None:
        """RabbitMQ gave up on an order: a failed try, unless that try is already over."""
        order = letter.order
        try:
            job = self._journal.get(order.job)
        except KeyError:
            return
        if not (
            job.state is JobState.PROCESSING
            and job.attempts == order.attempt
            and _held_by_queue(self._journal, job.id)
        ):
            log.info("dead_letter_stale", job=order.job, attempt=order.attempt)
            return
        self._failed(job, {"failure": "retry", "code": "worker_lost", "error": letter.reason}, "")

    def _delete_source(self, job: Job, digest: str) -> None:
        """The rule said `source: delete`: checked and done here, where the inbox is, with
        the rule set the worker used; when anything is in doubt, the file stays."""
        try:
            ruleset = RuleSet.from_paths([self._config.state / "rulesets" / digest])
            taken = self._journal.first_file(job.id)
            with opened_source(job) as clip:
                decision, recorded, _ = decide(job, clip, taken, self._config, None, ruleset)
            delivery = plan_delivery(
                decision,
                default_outbox=self._config.outbox,
                default_password=self._password,
                camera=job.camera,
                when=recorded,
                job=f"{job.id:06d}",
                input_sha256=job.sha256,
            )
            escrowed = self._journal.escrow(f"{job.id:06d}")
            delete_source(job, taken, decision, delivery, self._custody, escrowed)
        except Exception as exc:  # the source stays: a person can delete it
            log.warning("source_kept", job=job.id, reason=_reason(exc))


class _Outage:
    """One log line when the broker cannot be reached, one when it is back (not one per retry)."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.since: float | None = None

    def began(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("broker_unreachable", side=self.side, error=_reason(exc))

    def over(self) -> None:
        if self.since is not None:
            down = round(time.monotonic() - self.since)
            log.info("broker_reachable", side=self.side, after_seconds=down)
            self.since = None


def _held_by_queue(journal: Journal, job_id: int) -> bool:
    return any(c.job == job_id and c.worker.startswith(QUEUE_PREFIX) for c in journal.claims())


def _dead_letter(body: Any, message: Message, public: PublicKey) -> DeadLetter:
    """The order inside a dead-lettered Celery message (protocol 2: args, kwargs, embed),
    and why RabbitMQ gave up on it (its x-death header)."""
    args = body[0]
    order = Order.from_message(verified(args[0], public))
    deaths = (message.headers or {}).get("x-death") or [{}]
    reason = deaths[0].get("reason", "")
    if reason == "delivery_limit":
        why = "its workers were lost on it again and again (the queue's delivery limit)"
    else:
        why = "its worker gave up without a report (a crash, or its hard time limit)"
    return DeadLetter(order, why)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reply_text", None) or str(exc) or type(exc).__name__
