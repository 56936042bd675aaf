"""One try at a time per job, across machines, held by the broker itself.

RabbitMQ gives an order back when it thinks its consumer is gone: the consumer's
connection died, or (RabbitMQ's `consumer_timeout`, 30 minutes by default) it held the order
longer than the broker allows. In the second case the first worker is still redacting, and
another would start the same clip again. So a worker holds a lease while it works: an
exclusive queue named after the job, declared on a connection of its own. RabbitMQ lets
only one connection hold it (another gets RESOURCE_LOCKED) and deletes it the moment that
connection closes, which is exactly when the holder is gone. A second delivery of the job
waits until the lease is free, then finds the package published and reports it.
"""

from __future__ import annotations

import threading
from types import TracebackType

from amqp.exceptions import ResourceLocked
from kombu import Connection, Queue

from privmask.daemon.queue.app import HEARTBEAT_SECONDS


class Lease:
    """The lease on one job; `acquire` is True when this worker holds it now."""

    def __init__(self, url: str, queue_name: str, job: int) -> None:
        self._url = url
        self._name = f"{queue_name}.running.{job}"
        self._connection: Connection | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        connection = Connection(self._url, heartbeat=HEARTBEAT_SECONDS, connect_timeout=10)
        try:
            Queue(self._name, exclusive=True, auto_delete=True, durable=False)(
                connection.default_channel
            ).declare()
        except ResourceLocked:
            connection.release()
            return False
        except BaseException:
            connection.release()
            raise
        self._connection = connection
        # heartbeats keep the broker from dropping an idle lease connection; one thread
        # owns the connection from here on
        self._beat = threading.Thread(target=self._keep, name="lease", daemon=True)
        self._beat.start()
        return True

    def _keep(self) -> None:
        connection = self._connection
        assert connection is not None
        try:
            while not self._stop.is_set():
                try:
                    connection.drain_events(timeout=0.2)  # short: `release` is seen soon
                except TimeoutError:
                    pass
                except connection.connection_errors:  # OSError among them
                    return  # the broker went away: the lease is gone with it
                try:
                    connection.heartbeat_check()
                except connection.connection_errors:
                    return
        finally:
            connection.release()  # closing it deletes the exclusive queue

    def release(self) -> None:
        """Let go without waiting: the thread closes the connection within 0.2 s (the next
        job of this worker need not wait for that; a second delivery of this job may find
        the lease held a moment longer and look again)."""
        self._stop.set()
        self._connection = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
