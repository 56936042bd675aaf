"""The review page in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect

from clip_browsing import browsing
from reviewing import IDLE_SECONDS, NAME, PASSWORD, Server


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browsing(browser, server.url) as tab:
        yield tab


def log_in(page: Page, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_log_in_and_see_the_queue(page: Page, server: Server) -> None:
    page.goto("/queue")
    expect(page).to_have_url(f"{server.url}/login")
    log_in(page)
    expect(page).to_have_url(f"{server.url}/queue")
    expect(page.get_by_text("No clips waiting for review.")).to_be_visible()
    expect(page.get_by_text(NAME, exact=True)).to_be_visible()
    # htmx ran under the page's CSP, and nothing was blocked
    assert page.evaluate("typeof htmx") == "object"
    assert page.problems == []  # type: ignore[attr-defined]


def test_wrong_password_refused(page: Page, server: Server) -> None:
    log_in(page, password="not the password at all")
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    expect(page).to_have_url(f"{server.url}/login")
    page.goto("/queue")
    expect(page).to_have_url(f"{server.url}/login")


def test_expired_session_sends_back_to_login(page: Page, server: Server) -> None:
    log_in(page)
    expect(page.get_by_text("No clips waiting for review.")).to_be_visible()
    server.clock.advance(IDLE_SECONDS + 1)
    page.reload()
    expect(page).to_have_url(f"{server.url}/login?expired=1")
    expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
    log_in(page)
    expect(page).to_have_url(f"{server.url}/queue")


def test_logout(page: Page, server: Server) -> None:
    log_in(page)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto("/queue")
    expect(page).to_have_url(f"{server.url}/login")


def test_cross_site_post_refused(page: Page, server: Server) -> None:
    log_in(page)
    # the worst case: the other origin even knows the session's token; only the browser's
    # word on where the request came from stops it (same site, so the cookie is sent)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    form = (
        f'<form method="post" action="{server.url}/logout">'
        f'<input type="hidden" name="csrf_token" value="{token}">'
        '<button type="submit">Win a prize</button></form>'
    )
    with other_origin(form) as url:
        page.goto(url)
        page.get_by_role("button", name="Win a prize").click()
        expect(page.get_by_text("cross-site request refused")).to_be_visible()
    page.goto("/queue")
    expect(page).to_have_url(f"{server.url}/queue")  # still logged in
    expect(page.get_by_text("No clips waiting for review.")).to_be_visible()


class _OtherSite(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class other_origin:  # noqa: N801 (used as a context manager, like open)
    """A page on another origin (another port of 127.0.0.1), served while in the block."""

    def __init__(self, html: str) -> None:
        handler = type("Handler", (_OtherSite,), {"body": html.encode()})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
