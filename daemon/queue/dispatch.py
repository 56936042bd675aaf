"""The daemon's side of many machines: send due jobs to the broker, apply what workers say.

Two threads, each with its own broker connection:
- the sender claims due jobs from the journal (never those marked local) while fewer than
  `queue.backlog` orders wait in the queue, and sends each as an order with the rule set in
  force, its time limits from the clip's duration, and a publisher confirm; a job whose
  rule needs review is kept on the daemon host instead. A broker that cannot be reached
  gives the job back to the journal, without using a try, and is tried again.
- the listener applies reports and dead letters (`reports.py`: checked, and only for the
  job's current try) to the journal, in order, acknowledging each only once applied: a
  daemon killed meanwhile gets it again, and applying it twice changes nothing the second
  time (the try is over by then).
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import structlog
from celery import Celery
from kombu import Connection, Message

from privmask.adapters.minisign import SignatureError
from privmask.daemon.config import Config
from privmask.daemon.delivery import Custody
from privmask.daemon.job_steps import decide, opened_source
from privmask.daemon.journal import Job, JobStateError, Journal
from privmask.daemon.journal_queue import SENT
from privmask.daemon.liveness import clip_duration
from privmask.daemon.queue.app import HEARTBEAT_SECONDS, make_app
from privmask.daemon.queue.protocol import TASK_NAME, Order, Report, Topology, signed, verified
from privmask.daemon.queue.reports import Quarantine, Reports, dead_letter
from privmask.daemon.queue.settings import QueueSpec, error_text, shown
from privmask.daemon.retry import RetryPolicy
from privmask.daemon.rulebook import current_snapshot

log = structlog.get_logger("privmask.queue")

RECONNECT_SECONDS = 5.0  # a broker that cannot be reached is tried again this often
IDLE_SECONDS = 0.5  # how often the journal is looked at when nothing was due


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
        self._config, self._journal, self._custody, self._run = config, journal, custody, run
        self._reports = Reports(config, journal, custody, policy, password, quarantine)
        self._spec: QueueSpec = spec
        self._topology = Topology(spec.name, spec.delivery_limit)
        self._url = spec.connection_url()
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
            try_id = secrets.token_hex(8)
            job = self._journal.claim(SENT, run=self._run, local=False, try_id=try_id)
            if job is None:
                self._stop.wait(IDLE_SECONDS)
                continue
            try:
                order = self._order(job, try_id)
            except Exception as exc:  # the rules or the journal unreadable now: later
                self._journal.release(job.id, error_text(exc), RECONNECT_SECONDS, why="not sent")
                log.error("job_not_sent", job=job.id, error=error_text(exc))
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
                self._journal.release(
                    job.id, "the broker did not take it", RECONNECT_SECONDS, why="not sent"
                )
                raise
            log.info(
                "job_sent", job=job.id, attempt=job.attempts, time_limit=round(order.hard_limit)
            )

    def _order(self, job: Job, try_id: str) -> Order | None:
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
                duration = clip_duration(clip)
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
            try_id=try_id,
            queue=self._topology.name,
            path=job.path,
            sha256=job.sha256,
            size=job.size,
            camera=job.camera,
            folder=job.folder,
            taken=tuple(taken),  # type: ignore[arg-type]
            swept=swept.isoformat() if swept else None,
            timezone=str(self._config.timezone),
            recipients=self._custody.recipients,
            retention_days=self._custody.retention_days,
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
                self._reports.dead(dead_letter(body, message, public))
            elif isinstance(body, dict) and body.get("kind") == "refused":  # unsigned
                self._reports.refused(Report.from_message(body))
            else:
                self._reports.apply(Report.from_message(verified(body, public)))
        except JobStateError as exc:  # the job moved on meanwhile: the report is stale
            log.info("report_stale", error=str(exc))
        except (SignatureError, KeyError, TypeError, ValueError) as exc:  # not ours: dropped
            log.error("queue_message_dropped", error=str(exc))
        message.ack()


class _Outage:
    """One log line when the broker cannot be reached, one when it is back (not one per retry)."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.since: float | None = None

    def began(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("broker_unreachable", side=self.side, error=error_text(exc))

    def over(self) -> None:
        if self.since is not None:
            down = round(time.monotonic() - self.since)
            log.info("broker_reachable", side=self.side, after_seconds=down)
            self.since = None
