"""A worker process: claim a job, redact, package, publish, record; repeat until told to stop.

Exactly once, even across kill -9: a job's package name is fixed by its id, and a retried
job whose package is already in the outbox (published just before a crash) is recognised
by the input hash in its manifest and recorded as done instead of being made again.

A worker heartbeats while it works, records its try's time limit and the package it writes
(`liveness.py`: the service kills a hung worker and cleans up after it), dies with its
daemon, and reports a crash as one log event.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import structlog

from privmask.adapters.models import sha256_of
from privmask.adapters.video import VideoError
from privmask.daemon.config import Config
from privmask.daemon.custody.source_deletion import delete_source
from privmask.daemon.delivery import Custody, plan_delivery
from privmask.daemon.job_steps import Recording, decide, make_package, opened_source
from privmask.daemon.journal import (
    EscrowCopy,
    Job,
    JobState,
    JobStateError,
    Journal,
    RunEndedError,
)
from privmask.daemon.liveness import (
    FLOOR_SECONDS,
    Heartbeat,
    StopSignal,
    clip_duration,
    die_with_parent,
    time_limit,
)
from privmask.daemon.logs import configure, describe
from privmask.daemon.quarantine import quarantine
from privmask.daemon.retry import RetryPolicy, classify
from privmask.daemon.storage import Storage
from privmask.daemon.worker_review import Held, folder_of, prepare, remove_analysis

log = structlog.get_logger("privmask.worker")


@dataclass(frozen=True)
class Outcome:
    package: Path
    ruleset: str


def worker_main(
    config: Config,
    password: bytes,
    custody: Custody,
    name: str,
    run: str,
    parent: int,
    stop_pipe: Connection,
    storage: Storage,
) -> None:
    """The body of one worker process of the daemon `parent` (its journal run `run`); it
    stops taking jobs once `stop_pipe` reads as closed, and takes none while `storage`
    cannot take a job's output."""
    configure(json=True)
    stop = StopSignal(stop_pipe)
    die_with_parent(parent, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when to stop
    signal.signal(signal.SIGTERM, _unwind)
    worker = claim_name(os.getpid(), name)
    try:
        _serve(config, password, custody, worker, run, stop, storage)
    except Exception as exc:  # a bug, or a journal it cannot open: one event, then exit 1
        log.error("worker_crashed", worker=worker, **describe(exc))
        raise SystemExit(1) from None


def _serve(
    config: Config,
    password: bytes,
    custody: Custody,
    worker: str,
    run: str,
    stop: StopSignal,
    storage: Storage,
) -> None:
    policy = RetryPolicy(config.max_attempts, config.backoff_seconds)
    local = True if config.queue is not None else None  # with a broker: what must stay here
    with Journal(config.journal_path) as journal:
        log.info("worker_ready", worker=worker)
        while not stop.is_set():
            problem = storage.problem()
            if problem:  # a full disk, an unmounted share: wait, and use up no try
                log.warning("storage_waiting", reason=problem)
                stop.wait(config.storage_check_seconds)
                continue
            try:  # until it knows the clip's duration, a try gets the shortest time limit
                job = journal.claim(worker, run=run, time_limit=FLOOR_SECONDS, local=local)
            except RunEndedError:
                log.warning("worker_orphaned", worker=worker)  # its daemon is gone
                return
            if job is None:
                stop.wait(0.5)
                continue
            run_job(job, journal, config, password, custody, policy, worker)


def claim_name(pid: int, name: str) -> str:
    """How a worker signs its claims in the journal (the service rebuilds it for recovery)."""
    return f"{socket.gethostname()}:{pid}:{name}"


def _unwind(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # temporary files are removed on the way out


def run_job(
    job: Job,
    journal: Journal,
    config: Config,
    password: bytes,
    custody: Custody,
    policy: RetryPolicy,
    worker: str,
) -> None:
    bound = log.bind(job=job.id, attempt=job.attempts, worker=worker)
    try:
        with opened_source(job) as clip:
            limit = time_limit(clip_duration(clip))
            journal.update_claim(job.id, worker, deadline=time.time() + limit)
            bound.info("job_started", source=job.path, time_limit=round(limit))
            with Heartbeat(journal, job.id, worker):
                outcome = process(
                    job,
                    clip,
                    journal,
                    config,
                    password,
                    custody,
                    lambda package: journal.update_claim(job.id, worker, package=str(package)),
                )
        if isinstance(outcome, Held):  # analysed, waits for a reviewer: nothing to package
            journal.hold_for_review(job.id, worker, str(outcome.analysis), outcome.why)
        else:
            journal.finish(job.id, str(outcome.package), outcome.ruleset, worker=worker)
    except JobStateError as exc:  # judged hung and given to another try: ours counts for nothing
        bound.warning("job_lost", reason=str(exc))
    except Exception as exc:
        _failed(job, exc, journal, config, policy, worker)
    else:
        if isinstance(outcome, Held):
            why = {"why": outcome.why} if outcome.why else {}  # said only when analysed again
            bound.info("job_held_for_review", subjects=outcome.subjects, **why)
        else:
            bound.info("job_done", package=outcome.package.name, rule_set=outcome.ruleset)
    finally:
        shutil.rmtree(config.work / str(job.id), ignore_errors=True)


def _failed(
    job: Job, exc: Exception, journal: Journal, config: Config, policy: RetryPolicy, worker: str
) -> None:
    bound = log.bind(job=job.id, attempt=job.attempts, worker=worker)
    failure = classify(exc)
    if failure is None:  # a bug: the worker dies, and the job counts as interrupted
        raise exc
    try:
        if failure.kind == "wait":
            journal.release(job.id, str(exc), config.storage_check_seconds, worker=worker)
            bound.warning("job_waiting_for_storage", reason=str(exc))
            return
        state = journal.fail(job.id, str(exc), policy, permanent=failure.permanent, worker=worker)
    except JobStateError as lost:
        bound.warning("job_lost", reason=str(lost))
        return
    bound.warning("job_failed", reason=str(exc), state=str(state), code=failure.code)
    if state is JobState.QUARANTINED:
        quarantine(
            Path(job.path),
            config.quarantine,
            job.id,
            failure.code,
            str(exc),
            max_copy_bytes=config.intake_limits.max_bytes,
            group_readable=config.quarantine_group_readable,
            recipients=config.escrow_recipients,
        )


def process(
    job: Job,
    clip: Path,
    journal: Journal,
    config: Config,
    password: bytes,
    custody: Custody,
    writing: Callable[[Path], None],
) -> Outcome | Held:
    """Escrow, redact, package and publish one job from `clip` (its opened source), then
    delete the source if its rule says so; `writing` is told the package's path first.
    A rule saying `review: required`: escrow, then analyse and hold the job for a reviewer
    (Held) until one approves; then redact as the reviewer chose (`worker_review.py`)."""
    source = Path(job.path)
    taken = journal.first_file(job.id)
    swept = journal.swept_recording_time(job.id)
    decision, recorded, recorded_from = decide(job, clip, taken, config, swept)
    job_id = f"{job.id:06d}"
    delivery = plan_delivery(
        decision,
        default_outbox=config.outbox,
        default_password=password,
        camera=job.camera,
        when=recorded,
        job=job_id,
        input_sha256=job.sha256,
    )
    writing(delivery.package)  # a partial of it left by a kill is removed when the job goes back
    earlier = delivery.published(job.sha256, custody.signer)
    if earlier is not None:  # published just before a crash: record it, never make it twice
        log.info("job_found_published", job=job.id, package=delivery.package.name)
        remove_analysis(folder_of(config, job.id))
        if swept is None:  # a sweep's source is a recorder's archive: never deleted
            delete_source(job, taken, decision, delivery, custody, journal.escrow(job_id))
        return Outcome(delivery.package, str(earlier.get("rule_set_sha256", decision.ruleset_hash)))
    review = journal.review_of(job.id)
    # a clip held for review was sealed before its analysis: that copy stays the one
    sealed = journal.escrow(job_id) if review is not None else None
    if sealed is not None and sealed.deleted is None and sealed.source_sha256 == job.sha256:
        escrowed: EscrowCopy | None = sealed
    else:  # the original first: no package is ever published without its escrow copy
        escrowed = custody.seal(
            journal,
            job_id,
            clip,
            decision,
            actor=f"worker {os.getpid()}",
            expected_sha256=job.sha256,
            recorded=recorded.isoformat(),
        )
        if escrowed is not None:
            log.info("escrow_written", job=job.id, file=escrowed.file)
    # sealing just now checked the clip against its hash; otherwise check it here
    if (escrowed is None or escrowed is sealed) and sha256_of(clip) != job.sha256:
        raise VideoError(f"{source.name}: changed since it was taken in; it will be taken in again")
    reviewed = None
    if decision.review or review is not None:  # once held, only as a reviewer decided
        step = prepare(job, clip, decision, review, config)
        if isinstance(step, Held):
            return step
        reviewed, decision = step, step.decision
    found = reviewed.analysis if reviewed else None
    review_block = reviewed.manifest_block() if reviewed else None
    recording = Recording(recorded, recorded_from)
    package = make_package(
        job,
        clip,
        decision,
        recording,
        delivery,
        escrowed,
        config,
        custody.signer,
        found,
        review_block,
    )
    if reviewed is not None:  # the package is durable: the unmasked crops can go
        remove_analysis(reviewed.folder)
    if swept is None:  # a sweep's source is a recorder's archive: never deleted
        delete_source(job, taken, decision, delivery, custody, escrowed)
    return Outcome(package, decision.ruleset_hash)
