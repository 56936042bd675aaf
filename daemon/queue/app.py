"""The Celery application both sides use, with the settings long video jobs need.

Why each setting (README: Many machines):
- a quorum queue with a delivery limit: replicated and durable, and a job a worker dies on
  again and again is dead-lettered (the daemon counts a failed try) instead of looping;
- `task_acks_late` + `task_reject_on_worker_lost`: an order is acknowledged only once its
  try has ended, so a worker killed mid-job gives the job back to the queue;
- `task_acks_on_failure_or_timeout=False`: a try that crashed or hit its hard time limit
  without reporting is rejected, so it is dead-lettered and the daemon hears of it;
- `worker_prefetch_multiplier=1`: a worker holds one order per process, the others stay
  free for idle workers (redacting a clip takes minutes, not milliseconds);
- publisher confirms: `send_task` and every report return only once the broker has the
  message;
- no result backend: results are the packages, and the journal on the daemon host.
RabbitMQ, not Redis: Redis's visibility timeout re-delivers any job running longer than it,
so a long clip would be redacted twice; RabbitMQ redelivers only when the consumer is gone
(or past its `consumer_timeout`, which the site sets above the longest job: README).
"""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery

from privmask.daemon.queue.protocol import TASK_NAME, Topology
from privmask.daemon.queue.settings import QueueSpec

# seconds between AMQP heartbeats: a worker or broker gone is noticed within ~2 of them
HEARTBEAT_SECONDS = 30


def make_app(spec: QueueSpec, url: str) -> Celery:
    """The Celery app for `spec`, connecting to `url` (with its password: never log it)."""
    topology = Topology(spec.name, spec.delivery_limit)
    app = Celery("privmask", broker=url, set_as_current=False)
    options: dict[str, Any] = {"confirm_publish": True}
    app.conf.update(
        broker_transport_options=options,
        broker_heartbeat=HEARTBEAT_SECONDS,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker down for a while is waited for
        # a broker that cut the consumer (past its consumer_timeout) closes the channel with
        # 406: reconnect and go on (the job's lease keeps the second delivery waiting) rather
        # than let Celery stop the whole worker as on an unrecoverable error
        broker_channel_error_retry=True,
        broker_use_ssl={"cert_reqs": ssl.CERT_REQUIRED} if url.startswith("amqps:") else False,
        task_queues=[topology.jobs],
        task_default_queue=topology.name,
        task_default_exchange=topology.exchange.name,
        task_default_routing_key=topology.name,
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        worker_prefetch_multiplier=1,
        worker_concurrency=spec.concurrency,
        worker_max_tasks_per_child=50,  # a slow leak in a codec is bounded
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # no remote control: its commands (revoke, shutdown, time_limit) are not signed, and
        # anyone with the broker's password could send them; status reads the journal
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,  # acks late: finish it
        worker_detect_quorum_queues=True,
        broker_pool_limit=4,
    )
    app.conf.task_routes = {TASK_NAME: {"queue": topology.name}}
    return app
