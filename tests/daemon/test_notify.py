"""sd_notify: what systemd's side of $NOTIFY_SOCKET receives, read from a real AF_UNIX
datagram socket, as systemd would (Type=notify)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from privmask.daemon import notify

from harness import Daemon


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's notification socket."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_reaches_the_socket(receiver: socket.socket) -> None:
    assert notify.ready() is True
    assert receiver.recv(4096) == b"READY=1"


def test_stopping_reaches_the_socket(receiver: socket.socket) -> None:
    assert notify.stopping() is True
    assert receiver.recv(4096) == b"STOPPING=1"


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd may hand an abstract address ('@name'), as nspawn does for its payload."""
    name = f"privmask-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.stopping() is True
        assert sock.recv(4096) == b"STOPPING=1"


def test_nothing_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False


def test_a_gone_socket_does_not_stop_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readiness is advice to the service manager: a socket that is gone is logged, not fatal."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert notify.ready() is False


def test_a_relative_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd only hands absolute or abstract addresses; anything else is not its socket."""
    monkeypatch.setenv("NOTIFY_SOCKET", "notify")
    assert notify.ready() is False


@pytest.mark.slow
def test_the_daemon_says_ready_once_started_and_stopping_at_sigterm(
    daemon: Daemon, receiver: socket.socket
) -> None:
    """What systemd sees of `privmask run` under Type=notify: READY=1 only after intake and
    workers are up (systemctl start returns then), STOPPING=1 when the stop begins."""
    daemon.start()
    assert receiver.recv(4096) == b"READY=1"
    assert daemon.stop() == 0
    assert receiver.recv(4096) == b"STOPPING=1"
    assert [e["event"] for e in daemon.events].count("stopped") == 1
