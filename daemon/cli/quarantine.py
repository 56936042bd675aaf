"""`privmask quarantine list` and `privmask retry JOB`: the clips set aside, and putting one
back in the queue once its cause is fixed (a model installed, a limit raised, a share back).

Both use the journal directly: it is SQLite in WAL mode, safe to read and write while the
daemon runs, and a job put back is QUEUED like any other, for the daemon's workers to take
(now, or when the daemon next runs).

A retry redoes the job the clip was taken in as, so it is refused when that cannot be: the
job is not quarantined; its source is gone, is now a link or anything but a regular file,
or no longer has the content that was taken in (sha256 of the descriptor opened without
following links); the clip was over the size limit and so never hashed; or it fails
intake's checks under today's configuration (a retry is no way around the limits). The
old quarantine copy, unredacted video the source still holds, is removed: if the job fails
again it is quarantined again, with a new copy.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:  # imported where used: other commands need none of it
    from privmask.adapters.validate import Limits
    from privmask.daemon.config import Config
    from privmask.daemon.journal import Job, Journal

# intake's content key for a clip over the size limit, which it never reads (not a sha256)
UNHASHED = "unhashed:"
_ALL = 1 << 62  # every quarantined job


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    quarantine = commands.add_parser("quarantine", help="the clips set aside, and why")
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="every quarantined job: when, why, its source, whether a copy is kept",
        description="List the quarantined jobs from the journal and their reason.json files. "
        "Works whether or not the daemon runs.",
    )
    listing.set_defaults(run=run_list)
    options.add_config(listing)
    listing.add_argument("--json", action="store_true", help="a JSON array, one object a job")

    retry = commands.add_parser(
        "retry",
        help="put a quarantined job back in the queue",
        description="Queue a quarantined job again with its tries reset, once its cause is "
        "fixed, and remove its old quarantine copy. Refused when its source is gone, a link "
        "or changed, when it was never hashed (over the size limit), or when it still fails "
        "intake's checks. The daemon takes it up now, or when it next runs.",
    )
    retry.set_defaults(run=run_retry)
    retry.add_argument("job", type=int, metavar="JOB", help="job id (privmask quarantine list)")
    options.add_config(retry)


@dataclass(frozen=True)
class Entry:
    """One quarantined job, as the journal and its reason.json tell it."""

    job: int
    quarantined: str | None  # ISO time, UTC
    code: str | None  # reason.json's reason code
    reason: str  # the journal's
    detail: str | None  # reason.json's reason (with what became of the copy)
    source: str
    copy: str | None  # the copy kept in quarantine, if there is one
    folder: str | None  # the job's quarantine folder, if there is one


def run_list(args: argparse.Namespace) -> int:
    from privmask.daemon.journal import JobState, Journal, JournalError

    config = _config(args)
    if not config.journal_path.exists():
        print("[]" if args.json else f"no journal at {config.journal_path}: nothing quarantined")
        return EXIT_OK
    try:
        with Journal(config.journal_path, upgrade=False) as journal:
            jobs = journal.jobs(JobState.QUARANTINED, limit=_ALL)
            entries = [_entry(job, journal.events(job.id), config.quarantine) for job in jobs]
    except (JournalError, sqlite3.Error) as exc:
        return _error(f"{config.journal_path}: {exc}")
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=2))
        return EXIT_OK
    for entry in entries:
        print("\n".join(_lines(entry)))
    hint = "; privmask retry JOB queues one again" if entries else ""
    print(f"{len(entries)} quarantined job(s){hint}")
    return EXIT_OK


def run_retry(args: argparse.Namespace) -> int:
    from privmask.daemon.journal import Journal, JournalError

    config = _config(args)
    if not config.journal_path.exists():
        return _error(f"no journal at {config.journal_path}: no job {args.job} to retry")
    try:
        with Journal(config.journal_path, upgrade=False) as journal:
            return _retry(journal, args.job, config)
    except (JournalError, sqlite3.Error) as exc:
        return _error(f"{config.journal_path}: {exc}")


def _retry(journal: Journal, job_id: int, config: Config) -> int:
    from privmask.adapters import files
    from privmask.daemon.journal import JobStateError

    try:
        job = journal.get(job_id)
    except KeyError:
        return _error(f"there is no job {job_id} in {config.journal_path}")
    refusal = _refusal(job, config)
    if refusal is not None:
        return _error(f"job {job.id} cannot be retried: {refusal}")
    folder = config.quarantine / f"{job.id:06d}"
    try:
        files.discard(folder)
    except OSError as exc:
        return _error(f"job {job.id} was not retried: cannot remove {folder} ({exc.strerror})")
    try:
        journal.requeue(job.id)
    except JobStateError as exc:  # retried or changed meanwhile
        return _error(f"job {job.id} cannot be retried: {exc}")
    print(f"job {job.id} queued again with its tries reset: {job.path}")
    return EXIT_OK


def _refusal(job: Job, config: Config) -> str | None:
    """Why `job` cannot be queued again, or None when it can."""
    from privmask.adapters.untrusted import NotRegularFile, open_regular
    from privmask.daemon.journal import JobState

    if job.state is not JobState.QUARANTINED:
        return f"it is {job.state.value}, not quarantined"
    if job.sha256.startswith(UNHASHED):
        return (
            f"{job.path} was over the size limit when it arrived, so it was never read or "
            "hashed, and nothing can tell whether the file there now is that clip; raise "
            "limits.max_gigabytes and copy it into the inbox again"
        )
    source = Path(job.path)
    try:
        fd = open_regular(source, _inbox_of(source, config))
    except NotRegularFile as exc:
        return f"its source {source} is now a {exc.kind}, not the clip (links are never followed)"
    except FileNotFoundError:
        return f"its source {source} is gone"
    except OSError as exc:
        return f"its source {source} cannot be read ({exc.strerror})"
    try:
        return _content_refusal(source, fd, job, config.intake_limits)
    finally:
        os.close(fd)


def _content_refusal(source: Path, fd: int, job: Job, limits: Limits) -> str | None:
    """The file behind `fd` must be the clip taken in, and pass intake's checks today."""
    from privmask.adapters.untrusted import sha256_of_descriptor
    from privmask.adapters.validate import ValidationError, check_size, validate

    changed = f"its source {source} has changed since it was taken in (its sha256 differs)"
    try:
        if os.fstat(fd).st_size != job.size:
            return changed
        check_size(source.name, job.size, limits)  # before a byte is read
        if sha256_of_descriptor(fd) != job.sha256:
            return changed
        validate(source, limits, fd=fd)
    except ValidationError as exc:
        return f"it still fails intake's checks: {exc.rejection.reason}"
    except OSError as exc:
        return f"its source {source} cannot be read ({exc.strerror})"
    return None


def _inbox_of(path: Path, config: Config) -> Path | None:
    """The most specific configured inbox holding `path`: no link below it is followed."""
    holding = [i.path for i in config.inboxes if i.path in path.parents]
    return max(holding, key=lambda p: len(p.parts), default=None)


def _entry(job: Job, events: list[tuple[float, str, str]], quarantine: Path) -> Entry:
    from privmask.daemon.journal import JobState
    from privmask.daemon.quarantine import REASON

    times = [when for when, state, _ in events if state == JobState.QUARANTINED.value]
    when = times[-1] if times else job.updated
    folder = quarantine / f"{job.id:06d}"
    record = _reason_file(folder / REASON)
    copy = record.get("copy")
    kept = folder / copy if isinstance(copy, str) and copy else None
    return Entry(
        job=job.id,
        quarantined=datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        code=_text(record.get("code")),
        reason=job.error or "",
        detail=_text(record.get("reason")),
        source=job.path,
        copy=str(kept) if kept is not None and kept.is_file() else None,
        folder=str(folder) if folder.is_dir() else None,
    )


def _reason_file(path: Path) -> dict[str, Any]:
    """The job's reason.json; empty when it is missing or unreadable (a failed copy)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _lines(entry: Entry) -> list[str]:
    kept = f"copy kept: {entry.copy}" if entry.copy else "no copy kept"
    lines = [f"job {entry.job}  {entry.quarantined}  {entry.code or 'no reason.json'}  {kept}"]
    lines.append(f"  source: {entry.source}")
    lines.append(f"  reason: {entry.reason}")
    if entry.detail and entry.detail != entry.reason:
        lines.append(f"  reason.json: {entry.detail}")
    return lines


def _config(args: argparse.Namespace) -> Config:
    from privmask.daemon.config import load_config

    return load_config(args.config, state=args.state)


def _error(message: str) -> int:
    print(f"privmask: error: {message}", file=sys.stderr)
    return EXIT_FAILED
