"""Serving the review page with uvicorn, on a socket bound here first: a port in use is one
clear error before anything starts, and `privmask run` can serve the page from a thread."""

from __future__ import annotations

import errno
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from privmask.daemon.review.users import ReviewError

_WAIT_SECONDS = 30.0  # for uvicorn to start accepting, or to finish its requests


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`; ReviewError (one line) when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ReviewError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ReviewError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def _server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_config=None,  # privmask's own logging, not uvicorn's
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # client addresses (login limits) are the peer's, never a header's
        lifespan="off",
    )
    return uvicorn.Server(config)


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's own handlers, in the main thread)."""
    _server(app).run(sockets=[sock])


class ServerThread:
    """The app served from a background thread, e.g. beside the daemon; `stop` waits."""

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        self._server = _server(app)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="review-page", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        pause = threading.Event()  # never set: a bounded wait between looks
        deadline = time.monotonic() + _WAIT_SECONDS
        # uvicorn has no start callback; its `started` flag is set once it accepts
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            pause.wait(0.01)
        if not self._server.started:
            raise ReviewError("the review page did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(_WAIT_SECONDS)
        self._sock.close()
