"""A worker process: claim a job, redact, package, publish, record; repeat until told to stop.

Exactly once, even across kill -9: a job's package name is fixed by its id, and a retried
job whose package is already in the outbox (published just before a crash) is recognised
by the input hash in its manifest and recorded as done instead of being made again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path

import structlog

from privmask.adapters.models import sha256_of
from privmask.adapters.video import VideoError
from privmask.daemon.config import Config
from privmask.daemon.delivery import manifest, plan_delivery
from privmask.daemon.journal import Job, JobState, Journal
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.pipeline.report import video_summary
from privmask.daemon.quarantine import quarantine
from privmask.daemon.retry import RetryPolicy, classify
from privmask.daemon.rulebook import current_snapshot
from privmask.rules.match import Facts

log = structlog.get_logger("privmask.worker")

@dataclass(frozen=True)
class Outcome:
    package: Path
    ruleset: str


def worker_main(config: Config, password: bytes, name: str, stop: Event) -> None:
    """The body of one worker process."""
    from privmask.daemon.logs import configure

    configure(json=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when to stop
    signal.signal(signal.SIGTERM, _unwind)
    worker = claim_name(os.getpid(), name)
    policy = RetryPolicy(config.max_attempts, config.backoff_seconds)
    with Journal(config.journal_path) as journal:
        while not stop.is_set():
            if not config.outbox.is_dir():  # the share is not mounted: do not use up tries
                log.warning("outbox_unreachable", outbox=str(config.outbox))
                stop.wait(5)
                continue
            job = journal.claim(worker)
            if job is None:
                stop.wait(0.5)
                continue
            run_job(job, journal, config, password, policy, worker)


def claim_name(pid: int, name: str) -> str:
    """How a worker signs its claims in the journal (the service rebuilds it for recovery)."""
    return f"{socket.gethostname()}:{pid}:{name}"


def _unwind(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # temporary files are removed on the way out


def run_job(
    job: Job, journal: Journal, config: Config, password: bytes, policy: RetryPolicy, worker: str
) -> None:
    bound = log.bind(job=job.id, attempt=job.attempts, worker=worker)
    bound.info("job_started", source=job.path)
    try:
        outcome = process(job, config, password)
    except Exception as exc:
        failure = classify(exc)
        if failure is None:  # a bug: the worker dies, and the job counts as interrupted
            raise
        state = journal.fail(job.id, str(exc), policy, permanent=failure.permanent)
        bound.warning("job_failed", reason=str(exc), state=str(state), code=failure.code)
        if state is JobState.QUARANTINED:
            quarantine(Path(job.path), config.quarantine, job.id, failure.code, str(exc))
    else:
        journal.finish(job.id, str(outcome.package), outcome.ruleset)
        bound.info("job_done", package=outcome.package.name, rule_set=outcome.ruleset)
    finally:
        shutil.rmtree(config.work / str(job.id), ignore_errors=True)


def process(job: Job, config: Config, password: bytes) -> Outcome:
    source = Path(job.path)
    ruleset = current_snapshot(config.state / "rulesets")
    received = datetime.fromtimestamp(job.created, tz=UTC)
    decision = ruleset.decide(
        Facts(camera=job.camera, folder=job.folder, file_name=source.name, when=received)
    )
    delivery = plan_delivery(
        decision,
        default_outbox=config.outbox,
        default_password=password,
        camera=job.camera,
        when=received,
        job=f"{job.id:06d}",
        input_sha256=job.sha256,
    )
    earlier = delivery.published(job.sha256)
    if earlier is not None:  # published just before a crash: record it, never make it twice
        log.info("job_found_published", job=job.id, package=delivery.package.name)
        return Outcome(delivery.package, str(earlier.get("rule_set_sha256", decision.ruleset_hash)))
    if sha256_of(source) != job.sha256:
        raise VideoError(f"{source}: changed since it was taken in; it will be taken in again")
    work = config.work / str(job.id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    video = work / "redacted.mp4"
    started = time.time()
    result = redact(source, video, decision.plan, models_dir=config.models)
    times = {"received": job.created, "started": started, "finished": time.time()}
    source_summary = {"sha256": job.sha256, "bytes": job.size, **video_summary(result.source)}
    del source_summary["file"]  # file names may hold personal data
    contents = manifest(
        decision,
        job=job.id,
        camera=job.camera,
        source=source_summary,
        redacted=video,
        redaction=result,
        times=times,
    )
    return Outcome(delivery.publish(video, contents), decision.ruleset_hash)
