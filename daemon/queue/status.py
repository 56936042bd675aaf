"""What `privmask status` says of a site on many machines: the broker's queues, the workers
that answer, and what each did according to the journal (the record that counts).

The broker is asked with short timeouts: a broker that is down, or whose queues no daemon has
declared yet, is one line, and the journal's part is still shown. Workers are asked through
Celery's remote control (`inspect`), which reaches every Celery worker on the broker's
virtual host: only those consuming this site's job queue are shown as answering.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import NotFound
from kombu import Connection

from privmask.daemon.journal_queue import QUEUE_PREFIX
from privmask.daemon.queue.app import make_app
from privmask.daemon.queue.protocol import Topology
from privmask.daemon.queue.settings import QueueSpec, broker_url, shown
from privmask.daemon.secrets import SecretError, read_secret

ASK_SECONDS = 2.0  # how long the broker and the workers get to answer
EARLIER_SHOWN = 5  # workers no longer answering named one by one; the rest counted


@dataclass(frozen=True)
class BrokerView:
    waiting: int  # orders in the job queue not yet taken by a worker
    consumers: int  # workers consuming it
    dead: int  # dead letters the daemon has not applied yet
    running: dict[str, list[str]] = field(default_factory=dict)  # worker -> task ids


def look(spec: QueueSpec) -> BrokerView | str:
    """The broker's view, or one line saying why it cannot be had."""
    try:
        source = spec.password_source
        url = broker_url(spec.broker, read_secret(source) if source else None)
    except SecretError as exc:
        return f"the broker cannot be asked: queue.password: {exc}"
    topology = Topology(spec.name, spec.delivery_limit)
    try:
        with Connection(url, connect_timeout=ASK_SECONDS) as connection:
            connection.ensure_connection(max_retries=1, timeout=ASK_SECONDS)
            channel = connection.default_channel
            jobs = topology.jobs(channel).queue_declare(passive=True)
            dead = topology.dead(channel).queue_declare(passive=True)
            running = _running(make_app(spec, url), connection, spec.name)
    except NotFound:
        return (
            f"the broker has no queue {spec.name} yet: the daemon declares it when it starts "
            "with this `queue:` section"
        )
    except Exception as exc:  # down, refused, wrong password, TLS
        reason = getattr(exc, "reply_text", None) or str(exc) or type(exc).__name__
        return f"the broker does not answer: {reason}"
    return BrokerView(jobs.message_count, jobs.consumer_count, dead.message_count, running)


def _running(app: Any, connection: Connection, queue: str) -> dict[str, list[str]]:
    """Per worker of this site that answers: the task ids it runs (`job-N-try-M`)."""
    inspect = app.control.inspect(timeout=ASK_SECONDS, connection=connection)
    consuming = inspect.active_queues() or {}
    ours = sorted(name for name, queues in consuming.items() if _takes(queues, queue))
    if not ours:
        return {}
    # asked by name, so the answer comes as soon as they all replied
    inspect = app.control.inspect(
        destination=ours, limit=len(ours), timeout=ASK_SECONDS, connection=connection
    )
    active = inspect.active() or {}
    return {name: sorted(t["id"] for t in active.get(name, [])) for name in ours}


def _takes(queues: Iterable[dict[str, Any]], name: str) -> bool:
    return any(q.get("name") == name for q in queues)


def lines(
    spec: QueueSpec,
    view: BrokerView | str,
    with_broker: int,
    per_worker: dict[str, tuple[int, int]],
) -> list[str]:
    """The status lines: the queue, then one per worker (answering now, or with jobs in the
    journal), then the workers that did jobs and answer no longer, on one line."""
    recorded = {
        name.removeprefix(QUEUE_PREFIX): counts
        for name, counts in per_worker.items()
        if name.startswith(QUEUE_PREFIX) and name != f"{QUEUE_PREFIX}sent"
    }
    out = [f"queue  {spec.name} on {shown(spec.broker)}"]
    if isinstance(view, str):
        out.append(f"  {view}")
        out.append(f"  {_count(with_broker, 'job')} with the broker (journal)")
        rows = [(name, "", counts) for name, counts in sorted(recorded.items())]
        return out + _table(rows)
    out.append(
        f"  {_count(with_broker, 'job')} with the broker ({view.waiting} waiting); "
        f"{_count(view.consumers, 'worker')} taking jobs; {_count(view.dead, 'dead letter')}"
    )
    rows = []
    for name in sorted(set(view.running) | set(recorded)):
        busy, done = recorded.get(name, (0, 0))
        if name in view.running:
            tasks = view.running[name]
            rows.append((name, f"running {', '.join(tasks)}" if tasks else "idle", (busy, done)))
        elif busy:  # the journal has it on a job: the broker gives the job back if it is gone
            rows.append((name, "not answering", (busy, done)))
    out += _table(rows)
    gone = {n: c for n, c in recorded.items() if n not in view.running and not c[0]}
    if gone:
        out.append(_earlier(gone))
    return out


def _table(rows: list[tuple[str, str, tuple[int, int]]]) -> list[str]:
    """`worker  NAME  NOW  N done[, M in progress]`, the columns aligned."""
    if not rows:
        return []
    width = max(len(name) for name, _, _ in rows)
    now_width = max(len(now) for _, now, _ in rows)
    out = []
    for name, now, (busy, done) in rows:
        counts = f"{done} done" + (f", {busy} in progress" if busy else "")
        cells = [f"worker  {name:<{width}}", f"{now:<{now_width}}" if now_width else "", counts]
        out.append("  ".join(c for c in cells if c))
    return out


def _earlier(gone: dict[str, tuple[int, int]]) -> str:
    """Workers that did jobs but no longer answer (stopped, renamed by a restart, or cut off
    from the broker): most jobs first, the tail counted."""
    ranked = sorted(gone.items(), key=lambda item: (-item[1][1], item[0]))
    named = [f"{name} ({done} done)" for name, (_, done) in ranked[:EARLIER_SHOWN]]
    rest = ranked[EARLIER_SHOWN:]
    if rest:
        named.append(f"{len(rest)} more ({sum(done for _, (_, done) in rest)} done)")
    return f"not answering now (stopped, or cut off from the broker): {', '.join(named)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
