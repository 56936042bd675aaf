"""`privmask sweep list|run|status`: scheduled archive sweeps from the command line.

`sweep run NAME [--from ISO --to ISO]` goes through the same journal as the daemon: without
a daemon it redacts the chunks itself and exits 0 once they are packaged; with one running
it hands them over and waits. A bad `sweeps:` entry is one line with file, line and column
and exit code 2, like a wrong command line.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    from privmask.daemon.config import Config
    from privmask.daemon.journal import Journal
    from privmask.daemon.sweeps.runner import RunReport
    from privmask.daemon.sweeps.settings import SweepSpec


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sweep = commands.add_parser("sweep", help="scheduled archive sweeps: list, run, status")
    sweep.set_defaults(run=run)
    actions = sweep.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the sweeps, their schedules, sources, next runs")
    options.add_config(listing)
    status = actions.add_parser("status", help="per source: covered up to, next run, last error")
    options.add_config(status)
    now = actions.add_parser(
        "run",
        help="run a sweep now (or backfill a time range), wait until its chunks are packaged",
        description="Without a running daemon, the chunks are redacted in this process; with "
        "one, they go through its journal and this command waits. Exit 0 once every chunk "
        "is packaged (or holds no recording), 1 otherwise.",
    )
    now.add_argument("name", metavar="NAME")
    now.add_argument("--from", dest="start", metavar="ISO", help="backfill from (site time)")
    now.add_argument("--to", dest="end", metavar="ISO", help="backfill to (site time)")
    options.add_config(now)


def run(args: argparse.Namespace) -> int:
    from privmask.daemon.config import ConfigError

    try:
        config = _config(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if args.action == "list":
        return list_sweeps(config)
    if args.action == "status":
        return show_status(config)
    return run_now(config, args.name, args.start, args.end)


def _config(args: argparse.Namespace) -> Config:
    from privmask.daemon.config import load_config

    return load_config(args.config, state=args.state)


def _next(sweep: SweepSpec, zone: tzinfo) -> datetime | None:
    from privmask.daemon.sweeps.scheduler import next_fire

    return next_fire(sweep, zone, datetime.now(UTC))


def _shown(moment: datetime | float | None, zone: tzinfo) -> str:
    if moment is None:
        return "-"
    if isinstance(moment, float | int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def list_sweeps(config: Config) -> int:
    zone = config.timezone
    if not config.sweeps:
        print("no sweeps configured")
    for sweep in config.sweeps:
        print(
            f"{sweep.name}  schedule {sweep.schedule!r} ({zone})  {sweep.where()}  "
            f"lag {sweep.lag}  chunks {sweep.chunk_minutes} min  "
            f"next {_shown(_next(sweep, zone), zone)}"
        )
    return EXIT_OK


def show_status(config: Config) -> int:
    from privmask.daemon.journal import Journal

    zone = config.timezone
    if not config.journal_path.exists():
        print(f"no journal at {config.journal_path}: no sweep has run with this state folder")
        return EXIT_OK
    with Journal(config.journal_path, upgrade=False) as journal:
        for sweep in config.sweeps:
            status = journal.source_status(sweep.name)
            upcoming = [t for t in (_next(sweep, zone),) if t is not None]
            if status.last_error and status.next_attempt:
                upcoming.append(datetime.fromtimestamp(status.next_attempt, UTC))
            gaps = journal.with_gaps(source=sweep.identity())
            print(
                f"{sweep.name}  covered up to {_shown(status.covered_to, zone)}  "
                f"next run {_shown(min(upcoming) if upcoming else None, zone)}  "
                f"last run {_shown(status.last_run, zone)}  "
                f"gaps {gaps} chunk(s)  last error {status.last_error or '-'}"
            )
    return EXIT_OK


def _moment(text: str | None, zone: tzinfo, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def run_now(config: Config, name: str, start: str | None, end: str | None) -> int:
    from privmask.daemon import statefolder
    from privmask.daemon.journal import Journal
    from privmask.daemon.sweeps.local import process_here, recover_here, wait_for_daemon
    from privmask.daemon.sweeps.plan import first_start
    from privmask.daemon.sweeps.runner import SweepRunner
    from privmask.daemon.sweeps.source import Span

    names = [s.name for s in config.sweeps]
    if name not in names:
        raise UsageError(f"no sweep named {name!r} (configured: {', '.join(names) or 'none'})")
    zone, now = config.timezone, datetime.now(UTC)
    sweep = next(s for s in config.sweeps if s.name == name)
    span = None
    if start is not None or end is not None:
        begin = _moment(start, zone, "--from") or first_start(now, zone, sweep.since)
        span = Span(begin, _moment(end, zone, "--to") or now - sweep.delay)
        if not span.start < span.end:
            raise UsageError("--from must be before --to")
    statefolder.make_private(config.state)
    try:
        lock: int | None = statefolder.hold(config.state)
    except statefolder.StateInUse:
        lock = None  # a daemon runs: it redacts, this command waits
    stop = threading.Event()
    try:
        # only in the daemon's place (its lock held) may the journal be upgraded
        with Journal(config.journal_path, upgrade=lock is not None) as journal:
            runner = SweepRunner(config, journal)
            if lock is not None:
                recover_here(journal, runner)
            report = runner.run(name, span, now)
            if lock is not None:
                process_here(runner, report.keys, stop)
            else:
                wait_for_daemon(journal, report.keys, stop, runner.settle)
            return _summary(report, journal)
    finally:
        if lock is not None:
            import os

            os.close(lock)


def _summary(report: RunReport, journal: Journal) -> int:
    counts = journal.outcome(report.keys)
    holes = journal.with_gaps(report.keys)  # chunks made with time in them without data
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    if holes and counts["packaged"]:
        parts[0] += f" ({holes} with a gap)"
    shown = ", ".join(parts)
    print(f"{report.sweep}: {len(report.keys)} chunk(s){': ' + shown if shown else ''}")
    if report.error:
        print(f"privmask: error: {report.error}", file=sys.stderr)
    failed = report.error or counts["quarantined"] or counts["left"] or counts["working"]
    return EXIT_FAILED if failed else EXIT_OK
