"""What `privmask status` says of a site on many machines: the broker's queue counts, the jobs
with the broker and who works on each, and what each worker did, from the journal.

The journal is the record that counts: workers report every try to the daemon, which writes
it there. Workers take no remote-control commands (Celery's are unsigned: anyone with the
broker's password could send them), so the only live signal of them is the number of
consumers on the job queue. The broker is asked with passive declares and short timeouts: a
broker that is down, or whose queue no daemon has declared yet, is one line, and the
journal's part is still shown.

A job is *silent* when the journal has heard nothing of it for longer than its hard time
limit, which is the daemon's when it sent the order (`liveness.time_limit` of the clip's
duration). The duration is not in the journal: it is read from the clip's header, and only
for a job silent longer than the shortest limit any clip gets, so a status of a busy site
opens no file. A job sent and not taken yet is waiting for a worker while the queue holds as
many orders as the journal has sent; it is silent only when the queue holds fewer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amqp.exceptions import NotFound
from kombu import Connection

from privmask.adapters.untrusted import descriptor_path, open_regular
from privmask.daemon.journal import Journal
from privmask.daemon.journal_queue import BrokerJob, QueueWorker
from privmask.daemon.liveness import clip_duration, time_limit
from privmask.daemon.queue.protocol import Topology
from privmask.daemon.queue.settings import QueueSpec, error_text, shown
from privmask.daemon.secrets import SecretError

ASK_SECONDS = 2.0  # how long the broker gets to answer
QUIET_DAY = 86400.0  # workers not seen for this long are folded into one line
FOLDED_NAMED = 5  # of those, named one by one; the rest counted
SHORTEST_LIMIT = time_limit(0.0)  # no try's hard limit is shorter

Limit = Callable[[str], float]  # a clip's path -> its try's hard time limit


@dataclass(frozen=True)
class BrokerCounts:
    waiting: int  # orders in the job queue not taken by a worker yet
    consumers: int  # worker processes taking jobs from it: the only live signal of workers
    dead: int  # dead letters the daemon has not applied yet
    reports: int  # workers' reports the daemon has not applied yet (is it running?)


def report(spec: QueueSpec, journal: Journal, now: float | None = None) -> list[str]:
    """The queue part of `privmask status`, as it reads at `now` (default: now)."""
    counts = look(spec)
    jobs, workers = journal.broker_jobs(), journal.queue_workers()
    return lines(spec, counts, jobs, workers, time.time() if now is None else now)


def look(spec: QueueSpec) -> BrokerCounts | str:
    """The broker's counts, or one line saying why they cannot be had."""
    try:
        url = spec.connection_url()
    except SecretError as exc:
        return f"the broker cannot be asked: queue.password: {exc}"
    topology = Topology(spec.name, spec.delivery_limit)
    try:
        with Connection(url, connect_timeout=ASK_SECONDS) as connection:
            connection.ensure_connection(max_retries=1, timeout=ASK_SECONDS)
            channel = connection.default_channel
            jobs = topology.jobs(channel).queue_declare(passive=True)
            dead = topology.dead(channel).queue_declare(passive=True)
            reports = topology.reports(channel).queue_declare(passive=True)
    except NotFound:
        return (
            f"the broker has no queue {spec.name} yet: the daemon declares it when it starts "
            "with this `queue:` section"
        )
    except Exception as exc:  # down, refused, wrong password, TLS
        return f"the broker does not answer: {error_text(exc)}"
    return BrokerCounts(
        jobs.message_count, jobs.consumer_count, dead.message_count, reports.message_count
    )


def hard_limit(path: str) -> float:
    """The hard time limit the daemon gave a try at this clip, from its duration (the file
    opened as the daemon opens sources); the shortest when it cannot be read now (as the
    daemon does for a clip it cannot read when sending)."""
    try:
        fd = open_regular(Path(path))
    except OSError:
        return SHORTEST_LIMIT
    try:
        return time_limit(clip_duration(descriptor_path(fd)))
    finally:
        os.close(fd)


def lines(
    spec: QueueSpec,
    counts: BrokerCounts | str,
    jobs: list[BrokerJob],
    workers: list[QueueWorker],
    now: float,
    limit: Limit = hard_limit,
) -> list[str]:
    """The queue, the broker's counts, the jobs with the broker (silent ones flagged, with
    what to do), then the workers, latest seen first; those quiet for a day on one line."""
    out = [f"queue  {spec.name} on {shown(spec.broker)}", f"  {_broker_line(counts)}"]
    silent = _silent(jobs, counts, now, limit)
    out += _jobs(jobs, silent, now)
    out += _hints(jobs, silent, now)
    return out + _workers(workers, now, spec.alive_seconds)


def _broker_line(counts: BrokerCounts | str) -> str:
    if isinstance(counts, str):
        return counts
    line = (
        f"the broker: {_count(counts.waiting, 'order')} waiting, "
        f"{_count(counts.consumers, 'consumer')} (worker processes taking jobs), "
        f"{_count(counts.dead, 'dead letter')}"
    )
    if counts.reports:  # applied within a second while the daemon runs
        line += f", {_count(counts.reports, 'report')} the daemon has not applied (is it running?)"
    return line


def _silent(
    jobs: list[BrokerJob], counts: BrokerCounts | str, now: float, limit: Limit
) -> dict[int, float]:
    """The silent jobs: id -> the hard limit they are past."""
    sent = sum(1 for job in jobs if job.worker is None)
    # every order sent still in the queue: those not taken are waiting for a free worker
    all_waiting = isinstance(counts, BrokerCounts) and counts.waiting >= sent
    found = {}
    for job in jobs:
        quiet = now - job.since
        if quiet <= SHORTEST_LIMIT or (job.worker is None and all_waiting):
            continue
        hard = limit(job.path)
        if quiet > hard:
            found[job.id] = hard
    return found


def _jobs(jobs: list[BrokerJob], silent: dict[int, float], now: float) -> list[str]:
    if not jobs:
        return ["  the journal: no job with the broker"]
    taken = sum(1 for job in jobs if job.worker is not None)
    waiting = len(jobs) - taken
    summary = f", {waiting} sent and not taken yet" if waiting and taken else ""
    rows = [
        [
            f"job {job.id}",
            job.worker or "not taken yet",
            f"attempt {job.attempt}",
            f"{'started' if job.worker else 'sent'} {_ago(now - job.since)}",
            job.path + ("  SILENT" if job.id in silent else ""),
        ]
        for job in jobs
    ]
    return [f"  the journal: {_count(len(jobs), 'job')} with the broker{summary}", *_table(rows)]


def _hints(jobs: list[BrokerJob], silent: dict[int, float], now: float) -> list[str]:
    """A line per silent job, then what to do (once per kind): it is not lost while the
    broker holds its order."""
    out, kinds = [], set()
    for job in jobs:
        if job.id not in silent:
            continue
        quiet, hard = _span(now - job.since), _span(silent[job.id])
        if job.worker is None:
            out.append(
                f"  ! job {job.id}: sent {quiet} ago, past its time limit of {hard}, and the "
                "queue holds fewer orders than the journal has sent"
            )
        else:
            out.append(
                f"  ! job {job.id}: no word from {job.worker} for {quiet}, past its time limit "
                f"of {hard}"
            )
        kinds.add(job.worker is None)
    if True in kinds:
        out.append(
            "    an order gone from the queue (purged or deleted?): restart the daemon, which "
            "sends the jobs not taken yet again without using a try"
        )
    if False in kinds:
        out.append(
            "    nothing is lost while the broker holds an order: restart the worker named "
            "above (privmask-worker on its machine) and the broker gives the order to another; a "
            "job that stays has reports that do not reach the daemon (its log: "
            "queue_message_dropped)"
        )
    return out


def _workers(workers: list[QueueWorker], now: float, alive: float) -> list[str]:
    if not workers:
        return ["  workers: none has taken a job or said it is there yet"]
    latest = {w.name: max(w.seen, w.heard or 0.0) for w in workers}
    recent = [w for w in workers if w.busy or now - latest[w.name] <= QUIET_DAY]
    quiet = [w for w in workers if w not in recent]
    rows = [
        [w.name, _busy(w.busy), f"{w.done} done", _last_job(w, now), _life(w, now, alive)]
        for w in recent
    ]
    out = ["  workers (latest first):", *_table(rows)]
    if quiet:
        out.append(f"    nothing heard for a day: {_folded(quiet)}")
    return out


def _last_job(worker: QueueWorker, now: float) -> str:
    return f"last job event {_ago(now - worker.seen)}" if worker.seen else "no job yet"


def _life(worker: QueueWorker, now: float, alive: float) -> str:
    """What its signs of life say: up, stopped (it said so), or not heard from (gone, or cut
    off from the broker: its orders go back to the queue when its connection drops)."""
    if worker.heard is None:
        return "never heard from"
    if worker.stopped:
        return f"stopped {_ago(now - worker.heard)}"
    if now - worker.heard <= 3 * alive:
        return "up"
    return f"not heard from for {_span(now - worker.heard)}"


def _busy(jobs: tuple[int, ...]) -> str:
    if not jobs:
        return "no job"
    return f"on {'job' if len(jobs) == 1 else 'jobs'} {', '.join(str(i) for i in jobs)}"


def _folded(quiet: list[QueueWorker]) -> str:
    """Workers quiet for a day (stopped, or renamed by a restart: the default name has the
    process id), latest seen first, the tail counted."""
    named = [f"{w.name} ({w.done} done)" for w in quiet[:FOLDED_NAMED]]
    rest = quiet[FOLDED_NAMED:]
    if rest:
        named.append(f"{len(rest)} more ({sum(w.done for w in rest)} done)")
    return ", ".join(named)


def _table(rows: list[list[str]]) -> list[str]:
    """Rows indented by four, their columns aligned (the last one left as it is)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "    " + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def _ago(seconds: float) -> str:
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`, `3 d 4 h`."""
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
