"""`privmask worker`: take redaction jobs from the broker named in the config's `queue:`."""

from __future__ import annotations

import argparse

from privmask.daemon.cli import options


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = commands.add_parser(
        "worker",
        help="take redaction jobs from the broker (many machines; README: Many machines)",
        description="Run one worker of a site whose daemon sends jobs to RabbitMQ (`queue:` in "
        "the config). Its config names the broker, the outbox and escrow store as mounted "
        "here (`queue.paths` maps the daemon's folders to this machine's), and the package "
        "password and signing key as files or credentials: nothing secret comes over the "
        "broker. SIGTERM finishes the running jobs first; a second SIGTERM or SIGQUIT stops "
        "at once (the jobs go back to the queue).",
    )
    worker.set_defaults(run=run_worker)
    options.add_config(worker)
    worker.add_argument(
        "--concurrency", type=int, metavar="N", help="jobs at once (queue.concurrency, 1)"
    )
    worker.add_argument(
        "--name", metavar="NAME@HOST", help="this worker's name (privmask-PID@HOSTNAME)"
    )


def run_worker(args: argparse.Namespace) -> int:
    from privmask.daemon.cli.run import _config
    from privmask.daemon.errors import UsageError
    from privmask.daemon.logs import configure
    from privmask.daemon.queue.worker_process import serve

    if args.concurrency is not None and not 1 <= args.concurrency <= 64:
        raise UsageError(f"--concurrency must be 1..64, got {args.concurrency}")
    if args.name is not None and "@" not in args.name:
        raise UsageError(f"--name must look like NAME@HOST, got {args.name!r}")
    configure(json=True)
    return serve(_config(args), args.concurrency, args.name)
