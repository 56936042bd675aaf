"""`privmask run` and `privmask status`: the watch-folder daemon and its journal."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser(
        "run",
        help="watch export folders and turn every clip into an encrypted, redacted package",
        description="Run the watch-folder daemon. With no --config and no flags it uses "
        "./privmask/{inbox,outbox,quarantine,state} and masks faces and people. The package "
        "password comes from --password-file, the config (file, env or systemd credential), "
        "or is generated once into the state folder; never from the command line.",
    )
    run.set_defaults(run=run_daemon)
    options.add_config(run)
    run.add_argument("--rules", type=Path, metavar="DIR", help="rules folder (reloaded on change)")
    run.add_argument("--password-file", type=Path, metavar="FILE", help="package password file")
    run.add_argument("--workers", type=int, metavar="N", help="worker processes (1)")
    run.add_argument("--inbox", type=Path, action="append", metavar="DIR", help="repeatable")
    run.add_argument("--outbox", type=Path, metavar="DIR")
    run.add_argument("--quarantine", type=Path, metavar="DIR")

    status = commands.add_parser(
        "status",
        help="the journal's counts and the jobs in progress",
        description="The journal's counts, the jobs in progress and the next queued; with "
        "`queue:` in the config also the broker's queue depth, every job with the broker and "
        "who works on it, and the workers with their jobs (from the journal).",
    )
    status.set_defaults(run=run_status)
    options.add_config(status)


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from privmask.daemon.config import load_config

    return load_config(
        args.config,
        inboxes=getattr(args, "inbox", None),
        outbox=getattr(args, "outbox", None),
        quarantine=getattr(args, "quarantine", None),
        state=args.state,
        rules=getattr(args, "rules", None),
        password_file=getattr(args, "password_file", None),
        workers=getattr(args, "workers", None),
    )


def run_daemon(args: argparse.Namespace) -> int:
    from privmask.daemon.logs import configure
    from privmask.daemon.service import Service

    configure(json=True)
    return Service(_config(args)).run()


def run_status(args: argparse.Namespace) -> int:
    from privmask.daemon.journal import JobState, Journal

    config = _config(args)
    if not config.journal_path.exists():
        print(f"no journal at {config.journal_path}: the daemon has not run with this state folder")
        return EXIT_OK
    with Journal(config.journal_path, upgrade=False) as journal:
        counts = journal.counts()
        print("  ".join(f"{state}: {count}" for state, count in counts.items()))
        now = time.time()
        with_broker = {job.id for job in journal.broker_jobs()} if config.queue else set()
        for job in journal.jobs(JobState.PROCESSING):
            if job.id in with_broker:  # the queue's part shows them, with their workers
                continue
            started = _try_started(journal.events(job.id))
            running = f"running for {_duration(now - started)}  " if started else ""
            print(f"processing  job {job.id}  attempt {job.attempts}  {running}{job.path}")
        for job in journal.jobs(JobState.QUEUED, limit=20):
            print(f"queued      job {job.id}  {job.path}")
        if config.queue is not None:
            from privmask.daemon.queue import status

            for line in status.report(config.queue, journal):
                print(line)
    return EXIT_OK


def _try_started(events: Sequence[tuple[float, str, str]]) -> float | None:
    """When the current try began: the job's last move into processing (journal events)."""
    starts = [when for when, state, _ in events if state == "processing"]
    return starts[-1] if starts else None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
