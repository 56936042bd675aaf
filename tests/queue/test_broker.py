"""The test broker itself: it starts on loopback, carries messages on quorum queues, keeps
durable ones across a restart and leaves no process behind."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import amqp
from kombu import Connection

from broker import SBIN, Broker

QUORUM = {"x-queue-type": "quorum"}


def publish(url: str, queue: str, body: str) -> None:
    with Connection(url) as conn:
        channel = conn.default_channel
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=QUORUM)
        channel.confirm_select()  # returns once the quorum queue has the message
        channel.basic_publish(amqp.Message(body, delivery_mode=2), exchange="", routing_key=queue)


def take(url: str, queue: str) -> str | None:
    with Connection(url) as conn:
        message = conn.default_channel.basic_get(queue, no_ack=True)
        if message is None:
            return None
        body = message.body  # py-amqp decodes a str it was given back into str
        return body if isinstance(body, str) else body.decode()


def test_publish_and_consume_on_a_quorum_queue(broker: Broker) -> None:
    with Connection(broker.url) as conn:
        conn.connect()
        assert conn.connection.server_properties["version"] == "3.10.8"
    publish(broker.url, "roundtrip", "job 1")
    assert broker.queue_depth("roundtrip") == 1
    assert take(broker.url, "roundtrip") == "job 1"
    assert broker.queue_depth("roundtrip") == 0


def test_listens_on_loopback_only(broker: Broker) -> None:
    sockets = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    ours = {str(pid) for pid in broker.pids}
    listening = [line.split()[3] for line in sockets.splitlines()
                 if any(f"pid={pid}," in line for pid in ours)]
    assert listening, sockets
    assert all(addr.startswith(("127.0.0.1:", "[::1]:")) for addr in listening), listening


def test_restart_keeps_a_durable_message_and_stop_leaves_nothing(
    broker: Broker, make_broker: Callable[..., Broker]
) -> None:
    own = make_broker()  # runs beside the module's broker: two nodes at once, as under xdist
    assert own.port != broker.port
    publish(own.url, "durable", "survives")
    own.restart()
    assert take(own.url, "durable") == "survives"
    publish(broker.url, "beside", "up")  # the module's node is another, still up
    assert take(broker.url, "beside") == "up"
    pids = own.pids
    assert pids  # the node's processes, found
    own.stop()
    assert own.pids == []
    assert all(not _alive(pid) for pid in pids)
    ping = subprocess.run([str(SBIN / "rabbitmqctl"), "-n", own.node, "ping"], env=own.env,
                          capture_output=True, timeout=60)
    assert ping.returncode != 0
    assert own.pids == []  # nor an epmd that erl or rabbitmqctl daemonized


def test_kill_leaves_nothing(make_broker: Callable[..., Broker]) -> None:
    own = make_broker()
    pids = own.pids
    assert pids  # the node's processes, found
    own.kill()
    assert all(not _alive(pid) for pid in pids)
    assert own.pids == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

