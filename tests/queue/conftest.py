"""Fixtures for the queue tests: a real RabbitMQ broker (see tests/broker.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker import Broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for a whole module (it takes about 9 s to start): tests use their own queues."""
    node = Broker(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """A maker of started brokers of the test's own (to restart, kill or time out); all are
    stopped after the test."""
    made: list[Broker] = []

    def make(consumer_timeout_ms: int | None = None) -> Broker:
        node = Broker(tmp_path / f"rabbitmq-{len(made)}", consumer_timeout_ms)
        made.append(node)
        node.start()
        return node

    yield make
    for node in made:
        node.stop()
