"""The review page's fixtures: a reviewers' file, the real server on a free loopback port
(its clock turned by the test, so that expiry needs no waiting), the `privmask` command
in a subprocess, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from privmask.daemon.review import users

from clip_case import Case, OneClipQueue, make_case
from reviewing import CHROMIUM, NAME, PASSWORD, Server, serving


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "reviewers"
    users.add_user(path, NAME, PASSWORD)
    return path


@pytest.fixture
def server(users_file: Path) -> Iterator[Server]:
    with serving(users_file) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium: Playwright never downloads a browser here."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found; scripts/setup installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def case(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A scene of known people, analysed: made once per module that asks for it."""
    return make_case(tmp_path_factory.mktemp("clip"), models_dir)


@pytest.fixture
def queue(case: Case) -> OneClipQueue:
    """The one clip of `case` waiting, in a queue standing in for the daemon."""
    return OneClipQueue(case.clip())
