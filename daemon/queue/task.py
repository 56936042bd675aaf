"""A `privmask worker`'s try at one job: from an order to a package, told in reports.

The steps are the daemon's own workers' (`job_steps.py`), with what needs the daemon host
left to it: the escrow copy is sealed here into the shared store, then recorded and audited
by the daemon when its `sealed` report arrives (before the package is written, so the
record is on its way before anything refers to it); the source is deleted, where a rule
says so, by the daemon once the package is recorded; a clip held for review goes back to
the daemon host (`local`), where its unmasked analysis stays.

Exactly once: the lease (`lease.py`) lets one worker at a time work on a job; a package
already published for the same input (a try that died after publishing) is reported, not
made again; publication never overwrites.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from celery import Celery
from celery.exceptions import Reject, SoftTimeLimitExceeded

from privmask.adapters.minisign import SignatureError
from privmask.adapters.models import ModelError, sha256_of
from privmask.adapters.video import VideoError
from privmask.daemon.config import Config
from privmask.daemon.custody import escrow
from privmask.daemon.delivery import Custody, Delivery, plan_delivery, remove_partials
from privmask.daemon.job_steps import Recording, decide, make_package, opened_source
from privmask.daemon.journal import EscrowCopy, FileIdentity, Job, JobState
from privmask.daemon.logs import describe
from privmask.daemon.queue.lease import Lease
from privmask.daemon.queue.protocol import (
    SIGNATURE,
    Order,
    Report,
    ReportKind,
    Topology,
    daemon_path,
    local_path,
    signed,
    verified,
)
from privmask.daemon.retry import classify
from privmask.daemon.secrets import SecretError
from privmask.daemon.timezones import zone_named
from privmask.rules.ruleset import Decision, RuleSet

log = structlog.get_logger("privmask.worker")

LEASE_POLL_SECONDS = 5.0  # how often a second delivery of a running job looks again


@dataclass(frozen=True)
class WorkerSetup:
    """What every try on this machine needs, read once at start from this machine's own
    config, files and credentials (never from the broker)."""

    config: Config
    password: bytes
    custody: Custody
    url: str  # the broker's, with its password: never logged
    topology: Topology
    paths: dict[str, str]


class Reporter:
    """Sends one try's reports; each returns once the broker has confirmed it."""

    def __init__(self, app: Celery, setup: WorkerSetup, order: Order, worker: str) -> None:
        self._app, self._topology, self._order, self._worker = app, setup.topology, order, worker
        self._signer = setup.custody.signer

    def send(self, kind: ReportKind, **detail: Any) -> None:
        order = self._order
        report = Report(kind, order.job, order.attempt, order.try_id, self._worker, detail)
        self.publish(signed(report.to_message(), self._signer))

    def publish(self, message: dict[str, Any]) -> None:
        publish_report(self._app, self._topology, message)


def publish_report(
    app: Celery, topology: Topology, message: dict[str, Any], retries: int | None = None
) -> None:
    """One report on the daemon's report queue, confirmed; a broker away is waited for
    (`retries` times, or for as long as it takes)."""
    with app.producer_pool.acquire(block=True) as producer:
        producer.publish(
            message,
            exchange=topology.exchange,
            routing_key=topology.reports.routing_key,
            declare=[topology.reports],
            serializer="json",
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": retries, "interval_start": 1, "interval_max": 10},
        )


def take(message: dict[str, Any], setup: WorkerSetup, app: Celery, worker: str) -> None:
    """An order as it came from the broker: checked against the site key and the queue,
    then tried. One that does not verify is refused (`_refuse`)."""
    try:
        order = Order.from_message(verified(message, setup.custody.signer.public))
        if order.queue != setup.topology.name:
            raise ValueError(f"an order of queue {order.queue}, not {setup.topology.name}")
    except SignatureError as exc:  # this worker's site key is not the daemon's, or a forgery
        reason = f"this worker cannot verify its orders (is its site key the daemon's?): {exc}"
        log.error("order_refused", worker=worker, reason=reason)
        _refuse(message, reason, setup, app, worker)
        return
    except (KeyError, TypeError, ValueError) as exc:
        log.error("order_refused", worker=worker, reason=str(exc))
        raise Reject(str(exc), requeue=False) from None  # dead-lettered: the daemon hears
    run_order(order, setup, Reporter(app, setup, order, worker), worker)


def _refuse(message: Any, reason: str, setup: WorkerSetup, app: Celery, worker: str) -> None:
    """Tell the daemon, unsigned (this worker's key is not one it trusts), that the order
    could not be verified here: it sends the job again, to any worker, without using a try
    (the clip is not at fault). An order that does not even parse is dead-lettered."""
    try:
        order = Order.from_message({k: v for k, v in message.items() if k != SIGNATURE})
    except (AttributeError, KeyError, TypeError, ValueError):
        raise Reject(reason, requeue=False) from None
    refused = Report("refused", order.job, order.attempt, order.try_id, worker, {"reason": reason})
    Reporter(app, setup, order, worker).publish(refused.to_message())


def run_order(order: Order, setup: WorkerSetup, reporter: Reporter, worker: str) -> None:
    """One try; every outcome a user cares about is reported. A bug is raised: Celery then
    rejects the order, it is dead-lettered, and the daemon counts a failed try."""
    bound = log.bind(job=order.job, attempt=order.attempt, worker=worker)
    with Lease(setup.url, setup.topology.name, order.job) as lease:
        while not lease.acquire():  # another worker is on this job right now
            bound.info("job_running_elsewhere")
            time.sleep(LEASE_POLL_SECONDS)
        reporter.send("started")
        bound.info("job_started", time_limit=round(order.hard_limit))
        try:
            _try(order, setup, reporter, bound)
        except SoftTimeLimitExceeded:
            reporter.send("failed", failure="retry", code="time_limit", error="over its time limit")
            bound.warning("job_failed", reason="over its time limit")
        except (NotMounted, ModelError, SecretError) as exc:
            # this machine's fault (a share, a model, a password file missing here), not the
            # clip's: no try used, and another worker may take it meanwhile
            reporter.send("failed", failure="wait", code="worker_setup", error=str(exc))
            bound.warning("job_waiting_for_this_worker", reason=str(exc))
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                bound.error("job_crashed", **describe(exc))
                raise
            reporter.send("failed", failure=failure.kind, code=failure.code, error=str(exc))
            bound.warning("job_failed", reason=str(exc), code=failure.code)
        finally:
            shutil.rmtree(setup.config.work / str(order.job), ignore_errors=True)


def _try(order: Order, setup: WorkerSetup, reporter: Reporter, bound: Any) -> None:
    # the site's settings as the daemon has them, not this machine's config: the clock the
    # package is named on, the custodians each original is sealed to
    config, paths = replace(setup.config, timezone=zone_named(order.timezone)), setup.paths
    custody = replace(
        setup.custody, recipients=order.recipients, retention_days=order.retention_days
    )
    job = _job(order, paths)
    swept = datetime.fromisoformat(order.swept) if order.swept else None
    _check_mounted(Path(job.path), order.path)
    with opened_source(job) as clip:
        ruleset = _ruleset(order, config.work)
        taken = FileIdentity(*order.taken)
        decision, recorded, recorded_from = decide(job, clip, taken, config, swept, ruleset)
        if decision.review:  # its unmasked analysis must stay on the daemon host
            reporter.send("local", reason="held for review")
            bound.info("job_sent_back", reason="held for review")
            return
        planned = plan_delivery(
            decision,
            default_outbox=config.outbox,
            default_password=setup.password,
            camera=job.camera,
            when=recorded,
            job=f"{job.id:06d}",
            input_sha256=job.sha256,
        )
        delivery = Delivery(local_path(planned.outbox, paths), planned.name, planned.password)
        digest = decision.ruleset_hash
        earlier = delivery.published(job.sha256, setup.custody.signer)
        if earlier is None:
            # what a killed try left; the lease says no other try is writing them now
            remove_partials(delivery.package)
            remove_partials(escrow.copy_path(setup.custody.store, f"{job.id:06d}"))
            escrowed = _seal(job, clip, decision, recorded, custody, reporter)
            try:
                package = make_package(
                    job,
                    clip,
                    decision,
                    Recording(recorded, recorded_from),
                    delivery,
                    escrowed,
                    config,
                    setup.custody.signer,
                )
            except FileExistsError:  # another try published it meanwhile: the same input?
                if delivery.published(job.sha256, setup.custody.signer) is None:
                    raise
                package = delivery.package
            bound.info("job_done", package=package.name, rule_set=decision.ruleset_hash)
        else:  # an earlier try published it and did not live to report it: as it says
            package = delivery.package
            digest = str(earlier.get("rule_set_sha256", digest))
            bound.info("job_found_published", package=package.name)
    reporter.send("done", package=str(daemon_path(package, paths)), ruleset=digest)


def _seal(
    job: Job,
    clip: Path,
    decision: Decision,
    recorded: datetime,
    custody: Custody,
    reporter: Reporter,
) -> EscrowCopy | None:
    """The original into the shared escrow store; the daemon records it (its `sealed`
    report is confirmed before any package is written)."""
    sealed = custody.sealed_copy(f"{job.id:06d}", clip, decision, job.sha256, recorded.isoformat())
    if sealed is None:  # nothing sealed checked the clip against its hash: check it here
        if sha256_of(clip) != job.sha256:
            raise VideoError(
                f"{Path(job.path).name}: changed since it was taken in; it will be taken in again"
            )
        return None
    copy, recipients = sealed
    reporter.send("sealed", copy=asdict(copy), recipients=recipients)
    return copy


def _job(order: Order, paths: dict[str, str]) -> Job:
    now = time.time()
    return Job(
        id=order.job,
        path=str(local_path(order.path, paths)),
        sha256=order.sha256,
        size=order.size,
        state=JobState.PROCESSING,
        attempts=order.attempt,
        camera=order.camera,
        folder=order.folder,
        error=None,
        output=None,
        ruleset=order.ruleset,
        created=order.created,
        updated=now,
    )


class NotMounted(Exception):
    """A source's folder is not where this worker looks for it."""


def _check_mounted(source: Path, named: str) -> None:
    """A source whose folder is missing here is a share not mounted (or `queue.paths` not
    set): the clip is not at fault, so the job waits instead of being quarantined."""
    if not source.parent.is_dir():
        raise NotMounted(
            f"the folder of {Path(named).name} is not at {source.parent} on this worker "
            "(is the share mounted? see queue.paths)"
        )


def _ruleset(order: Order, work: Path) -> RuleSet:
    """The order's rule set, written out and read back as any rules folder is; refused if
    its digest is not the one the order names."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=".rules-") as scratch:
        for name, text in order.rules:
            if Path(name).name != name or name.startswith("."):
                raise ValueError(f"order for job {order.job}: bad rule file name {name!r}")
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        ruleset = RuleSet.from_paths([Path(scratch)])
    if ruleset.digest != order.ruleset:
        raise ValueError(f"order for job {order.job}: its rules do not match their digest")
    return ruleset
