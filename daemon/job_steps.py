"""The steps of one job that every worker takes, on the daemon host or on another machine:
open the source safely, decide its rule, and redact and package it."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from privmask.adapters.minisign import SecretKey
from privmask.adapters.recording import container_metadata
from privmask.adapters.untrusted import descriptor_path, open_regular
from privmask.adapters.video import VideoError
from privmask.daemon.config import Config
from privmask.daemon.delivery import Delivery, manifest
from privmask.daemon.journal import EscrowCopy, FileIdentity, Job
from privmask.daemon.pipeline.analysis import Analysis
from privmask.daemon.pipeline.offline import redact
from privmask.daemon.pipeline.report import video_summary
from privmask.daemon.recording import recording_time
from privmask.daemon.rulebook import current_snapshot
from privmask.rules.match import Facts
from privmask.rules.ruleset import Decision, RuleSet


@contextmanager
def opened_source(job: Job) -> Iterator[Path]:
    """The job's source, opened once without following a link and checked to be a regular
    file: everything reads it through the yielded descriptor path, so a name swapped for a
    link meanwhile reads nothing else. Messages name the file, never the descriptor."""
    source = Path(job.path)
    try:
        fd = open_regular(source)
    except OSError as exc:  # gone, unreadable, or no longer a plain file: the clip's fault
        raise VideoError(f"{source.name}: {exc.strerror or exc}", "unreadable") from None
    clip = descriptor_path(fd)
    try:
        yield clip
    except VideoError as exc:
        raise VideoError(str(exc).replace(str(clip), source.name), exc.code) from None
    finally:
        os.close(fd)


def decide(
    job: Job,
    clip: Path,
    taken: FileIdentity,
    config: Config,
    swept: datetime | None = None,
    ruleset: RuleSet | None = None,
) -> tuple[Decision, datetime, str]:
    """The rule for `job` (read from `clip`, its opened source) in `ruleset` (default: the
    set now in force), its recording time and where that time came from. Rules match, and
    packages are named, on the recording time: the one a sweep took the clip by (`swept`:
    its source's reading, so a clip is named as it was chosen), else from the container,
    the vendor's file name, or the mtime intake saw when it took the file in."""
    source = Path(job.path)
    ruleset = ruleset or current_snapshot(config.state / "rulesets")
    if swept is not None:
        recorded, recorded_from = swept.astimezone(config.timezone), "sweep"
    else:
        recorded, recorded_from = recording_time(
            source, container_metadata(clip), config.timezone, mtime=taken.mtime_ns / 1e9
        )
    facts = Facts(camera=job.camera, folder=job.folder, file_name=source.name, when=recorded)
    return ruleset.decide(facts), recorded, recorded_from


@dataclass(frozen=True)
class Recording:
    """When a clip was recorded, and where that time was read."""

    time: datetime
    source: str  # "sweep", "container", "file name", "mtime"


def make_package(
    job: Job,
    clip: Path,
    decision: Decision,
    recording: Recording,
    delivery: Delivery,
    escrowed: EscrowCopy | None,
    config: Config,
    signer: SecretKey,
    analysis: Analysis | None = None,
    review: dict[str, Any] | None = None,
) -> Path:
    """Redact `clip` (from `analysis` when a reviewer chose on one) into the job's work
    folder, describe it, and publish the package; returns its path. The one packaging step
    of the daemon's workers and of `privmask worker` on other machines."""
    work = config.work / str(job.id)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    video = work / "redacted.mp4"
    started = time.time()
    result = redact(clip, video, decision.plan, models_dir=config.models, analysis=analysis)
    times = {
        "recorded": recording.time.timestamp(),
        "received": job.created,
        "started": started,
        "finished": time.time(),
    }
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
        escrowed=escrowed,
    )
    contents["recorded"] = {
        "time": recording.time.isoformat(),
        "source": recording.source,
        "timezone": str(config.timezone),
    }
    if review is not None:
        contents["review"] = review
    return delivery.publish(video, contents, signer)
