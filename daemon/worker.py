"""A worker process: claim a job, redact, package, publish, record; repeat until told to stop.

Exactly once, even across kill -9: a job's package name is fixed by its id, and a retried
job whose package is already in the outbox (published just before a crash) is recognised
by the input hash in its manifest and recorded as done instead of being made again.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path

import structlog

from privmask.adapters.models import ModelError, sha256_of
from privmask.adapters.package import PackageContents, PackageError, read_package, write_package
from privmask.adapters.video import VideoError
from privmask.daemon import __version__
from privmask.daemon.config import Config
from privmask.daemon.journal import Job, Journal, RetryPolicy
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.pipeline.report import build_report
from privmask.daemon.quarantine import quarantine
from privmask.daemon.rulebook import current_snapshot
from privmask.daemon.secrets import SecretError, SecretSource, read_secret
from privmask.rules.files import RuleFileError
from privmask.rules.match import Job as RuleJob
from privmask.rules.plan import PlanError
from privmask.rules.ruleset import NoRuleApplies

log = structlog.get_logger("privmask.worker")

# a clip that will fail the same way however often it is tried
PERMANENT = (VideoError, PlanError, NoRuleApplies)


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
    except PERMANENT as exc:
        state = journal.fail(job.id, str(exc), policy, permanent=True)
        quarantine(Path(job.path), config.quarantine, job.id, _code(exc), str(exc))
        bound.warning("job_quarantined", reason=str(exc), state=str(state))
    except (PackageError, ModelError, RuleFileError, SecretError, OSError) as exc:
        state = journal.fail(job.id, str(exc), policy)
        bound.warning("job_failed", reason=str(exc), state=str(state))
        if state.value == "quarantined":
            quarantine(Path(job.path), config.quarantine, job.id, "retries_exhausted", str(exc))
    else:
        journal.finish(job.id, str(outcome.package), outcome.ruleset)
        bound.info("job_done", package=outcome.package.name, rule_set=outcome.ruleset)
    finally:
        shutil.rmtree(config.work / str(job.id), ignore_errors=True)


def _code(exc: Exception) -> str:
    return {VideoError: "invalid_video", PlanError: "rule_not_applicable"}.get(type(exc), "no_rule")


def process(job: Job, config: Config, password: bytes) -> Outcome:
    source = Path(job.path)
    ruleset = current_snapshot(config.state / "rulesets")
    received = datetime.fromtimestamp(job.created, tz=UTC)
    decision = ruleset.decide(
        RuleJob(camera=job.camera, folder=job.folder, file_name=source.name, when=received)
    )
    outbox = Path(decision.output.destination) if decision.output.destination else config.outbox
    if decision.output.password is not None:  # the rule names its own package password
        password = read_secret(SecretSource(*decision.output.password))
    name = package_name(decision.output.name_template, job, received)
    existing = outbox / f"{name}.zip"
    if existing.exists():
        return _already_published(existing, job, password, decision.ruleset_hash)
    if sha256_of(source) != job.sha256:
        raise VideoError(f"{source}: changed since it was taken in; it will be taken in again")
    work = config.work / str(job.id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    video = work / "redacted.mp4"
    started = time.time()
    result = redact(source, video, decision.plan, models_dir=config.models)
    report = build_report(result, decision.plan)
    manifest = {
        "privmask_version": __version__,
        "job": job.id,
        "camera": job.camera,
        "input": {"sha256": job.sha256, "bytes": job.size, **report["input"]},
        "output": {"sha256": sha256_of(video), "bytes": video.stat().st_size, **report["output"]},
        "rule": decision.rule.rule.name,
        "rule_set_sha256": decision.ruleset_hash,
        "models": report["models"],
        "masked": report["totals"],
        "tracks": [
            {k: t[k] for k in ("id", "class", "masked_from", "masked_to", "masked")}
            for t in report["tracks"]
        ],  # fmt: skip
        "times": {"received": job.created, "started": started, "finished": time.time()},
    }
    del manifest["input"]["file"]  # file names may hold personal data
    del manifest["output"]["file"]
    package = write_package(PackageContents(video, manifest), outbox, name, password)
    return Outcome(package, decision.ruleset_hash)


def _already_published(package: Path, job: Job, password: bytes, ruleset: str) -> Outcome:
    _, manifest = read_package(package, password)
    if manifest.get("input", {}).get("sha256") != job.sha256:
        raise PackageError(f"{package.name}: a different package already has this name")
    log.info("job_found_published", job=job.id, package=package.name)
    return Outcome(package, str(manifest.get("rule_set_sha256", ruleset)))


def package_name(template: str, job: Job, when: datetime) -> str:
    camera = re.sub(r"[^A-Za-z0-9_-]+", "-", job.camera or "camera").strip("-") or "camera"
    return template.format(
        camera=camera,
        date=when.strftime("%Y%m%d"),
        time=when.strftime("%H%M%S"),
        id=f"{job.id:06d}",
        hash=job.sha256[:12],
    )
