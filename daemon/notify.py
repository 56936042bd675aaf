"""sd_notify: tell systemd (Type=notify) that the daemon is ready, and that it is stopping.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract address); see sd_notify(3). It is
small enough that a dependency (python-systemd, sdnotify) would cost more than it saves.
Without the variable (a terminal, a test, another supervisor) nothing is sent. A failure is
logged and never stops the daemon: readiness is advice to the service manager, and a
service manager that misses it times the start out on its own.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger("privmask.notify")


def ready() -> bool:
    """The daemon is up: intake watches, workers run. systemctl start returns now."""
    return send("READY=1")


def stopping() -> bool:
    """Shutdown has begun; systemd waits up to TimeoutStopSec= for the exit."""
    return send("STOPPING=1")


def send(state: str) -> bool:
    """Send `state` to $NOTIFY_SOCKET; True when it was delivered."""
    address = _address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("notify_failed", state=state, error=exc.strerror or str(exc))
        return False
    return True


def _address(value: str) -> str | None:
    """The socket address systemd handed, or None: unset, or not an address it would use."""
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    if value:
        log.warning("notify_socket_ignored", reason="neither absolute nor abstract")
    return None
