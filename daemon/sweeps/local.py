"""`privmask sweep run` without a daemon: the command holds the state folder itself and
redacts the sweep's jobs in its own process, through the worker's own `run_job` (same
journal, same rules, same escrow and packages); with a daemon running it only hands the
chunks to the journal and waits for the daemon's workers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from privmask.daemon.custody.audit import AuditLog
from privmask.daemon.custody.sitekey import site_key
from privmask.daemon.delivery import Custody
from privmask.daemon.journal import Journal
from privmask.daemon.liveness import FLOOR_SECONDS
from privmask.daemon.retry import RetryPolicy
from privmask.daemon.sweeps.runner import SweepRunner

POLL_SECONDS = 0.5  # how often the journal is looked at while jobs are under way


def process_here(runner: SweepRunner, keys: tuple[str, ...], stop: threading.Event) -> None:
    """Redact the queued jobs until none of `keys` is under way (a job of another source
    queued meanwhile is redacted too, as the daemon would)."""
    from privmask.daemon.service import _prepare_folders, rules_in_force, site_password
    from privmask.daemon.worker import claim_name, run_job

    config, journal = runner.config, runner.journal
    _prepare_folders(config)
    password = site_password(config)
    custody = Custody.of(config, site_key(config, AuditLog(config.audit_folder, None)))
    book = rules_in_force(config, custody.audit(), watch=False)
    policy = RetryPolicy(config.max_attempts, config.backoff_seconds)
    worker = claim_name(os.getpid(), "sweep")
    try:
        while not stop.is_set() and journal.outcome(keys)["working"]:
            job = journal.claim(worker, time_limit=FLOOR_SECONDS)
            if job is None:  # a retry waiting for its backoff
                stop.wait(POLL_SECONDS)
                continue
            run_job(job, journal, config, password, custody, policy, worker)
            runner.settle()
    finally:
        if book is not None:
            book.stop()
        custody.audit().checkpoint()


def wait_for_daemon(
    journal: Journal, keys: tuple[str, ...], stop: threading.Event, tick: Callable[[], None]
) -> None:
    """Wait until the daemon's workers have finished every job of `keys`."""
    while not stop.is_set() and journal.outcome(keys)["working"]:
        tick()
        stop.wait(POLL_SECONDS)
    tick()


def recover_here(journal: Journal, runner: SweepRunner) -> None:
    """What a killed daemon or command left: its jobs back in the queue, its fetches
    planned again (the command holds the state folder, as the daemon would at start)."""
    config = runner.config
    journal.recover(RetryPolicy(config.max_attempts, config.backoff_seconds))
    runner.start_clean()
