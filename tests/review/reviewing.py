"""The review tests' helpers: the reviewer they log in as, the real server on a free
loopback port (its clock turned by the test, so that expiry needs no waiting), and the login
form filled in as a browser would. Tests import these from here, not from conftest (a
conftest's name is shared by every folder's)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from privmask.daemon.review.guard import LOOPBACK_HOSTS
from privmask.daemon.review.queue import NoReviewQueue, ReviewQueue
from privmask.daemon.review.server import ServerThread, bind
from privmask.daemon.review.web import ReviewSettings, create_app

from harness import privmask  # noqa: F401  (the review tests take it from here)

NAME, PASSWORD = "alice", "correct horse battery staple"
CHROMIUM = Path("/usr/bin/chromium")
IDLE_SECONDS, MAX_SECONDS = 60.0, 600.0


class Clock:
    """The server's clock, turned by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Server:
    url: str
    clock: Clock
    users: Path


@contextmanager
def serving(users_file: Path, queue: ReviewQueue | None = None) -> Iterator[Server]:
    """The review page on a free loopback port, for the length of the block."""
    clock = Clock()
    settings = ReviewSettings(
        users=users_file,
        idle_seconds=IDLE_SECONDS,
        max_seconds=MAX_SECONDS,
        allowed_hosts=LOOPBACK_HOSTS,
        queue=queue or NoReviewQueue(),
        clock=clock,
    )
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = ServerThread(create_app(settings), sock)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", clock, users_file)
    finally:
        thread.stop()


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token in the page"
    return found[1]


def log_in(client: httpx.Client, name: str = NAME, password: str = PASSWORD) -> httpx.Response:
    """The login form filled in as a browser would: its page first, then the POST."""
    token = csrf_token(client.get("/login").text)
    form = {"csrf_token": token, "name": name, "password": password}
    return client.post("/login", data=form)
