"""The review page over plain HTTP, against the real server: CSRF tokens, cross-site and
foreign-host requests, security headers, expiry and login limits."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
from structlog.testing import capture_logs

from privmask.daemon.review.queue import ReviewError, WaitingClip

from reviewing import (
    IDLE_SECONDS,
    MAX_SECONDS,
    NAME,
    PASSWORD,
    Server,
    csrf_token,
    log_in,
    serving,
)


def logged_in(client: httpx.Client) -> str:
    """Log in; the session's CSRF token, as the queue page carries it."""
    response = log_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"
    return csrf_token(client.get("/queue").text)


def test_login_then_the_queue_is_shown_with_its_empty_state(client: httpx.Client) -> None:
    assert client.get("/queue").headers["location"] == "/login"
    logged_in(client)
    page = client.get("/queue")
    assert page.status_code == 200
    assert "No clips waiting for review." in page.text
    assert NAME in page.text


def test_session_cookie_is_httponly_and_samesite_strict(client: httpx.Client) -> None:
    cookie = log_in(client).headers["set-cookie"]
    assert "privmask_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie


def test_security_headers_on_every_page(client: httpx.Client) -> None:
    logged_in(client)
    for path in ("/login", "/queue", "/queue/items"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert "unsafe-inline" not in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["cache-control"] == "no-store", path
        assert headers["x-content-type-options"] == "nosniff", path


def test_htmx_is_served_from_the_page_itself(client: httpx.Client) -> None:
    page = client.get("/login").text
    assert '<script src="/static/htmx.min.js"></script>' in page
    assert "<script>" not in page  # no inline script: the CSP would block it
    script = client.get("/static/htmx.min.js")
    assert script.status_code == 200
    assert "htmx" in script.text


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client: httpx.Client) -> None:
    token = logged_in(client)
    for form in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        response = client.post("/logout", data=form)
        assert response.status_code == 403, form
    assert client.get("/queue").status_code == 200  # still logged in: nothing happened
    wrong_header = client.post("/logout", headers={"X-CSRF-Token": "forged"})
    assert wrong_header.status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303
    assert client.get("/queue").headers["location"] == "/login"


def test_login_without_its_form_token_is_refused(client: httpx.Client) -> None:
    form = {"name": NAME, "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 403
    client.get("/login")  # the cookie half, without the form half
    assert client.post("/login", data={**form, "csrf_token": "forged"}).status_code == 403
    assert client.get("/queue").headers["location"] == "/login"


def test_cross_origin_post_is_refused_even_with_the_right_token(client: httpx.Client) -> None:
    token = logged_in(client)
    form = {"csrf_token": token}
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        assert client.post("/logout", data=form, headers=headers).status_code == 403, headers
    assert client.get("/queue").status_code == 200


def test_a_foreign_host_name_is_not_answered(client: httpx.Client) -> None:
    # a page whose DNS name was rebound to 127.0.0.1 sends its own name as Host
    assert client.get("/login", headers={"Host": "evil.example"}).status_code == 403


def test_wrong_password_refused_and_logged_without_the_password(client: httpx.Client) -> None:
    with capture_logs() as logs:
        response = log_in(client, password="Zebra-Umbrella-42")
    assert response.status_code == 401
    assert "Wrong name or password." in response.text
    assert client.get("/queue").headers["location"] == "/login"
    failed = [e for e in logs if e["event"] == "review.login_failed"]
    assert [e["user"] for e in failed] == [NAME]
    assert all("Zebra-Umbrella" not in str(v) for e in logs for v in e.values())


def test_unknown_name_refused_like_a_wrong_password_and_not_logged(client: httpx.Client) -> None:
    # an unknown "name" may be a password typed into the wrong field
    with capture_logs() as logs:
        response = log_in(client, name="Tr0ub4dor&3")
    assert response.status_code == 401
    assert "Wrong name or password." in response.text
    assert [e.get("reason") for e in logs if e["event"] == "review.login_failed"] == [
        "unknown name"
    ]
    assert all("Tr0ub4dor" not in str(v) for e in logs for v in e.values())


def test_failures_under_many_names_block_the_address(client: httpx.Client) -> None:
    for number in range(20):  # a password spray: never five on one name
        assert log_in(client, name=f"user{number}").status_code == 401
    assert log_in(client).status_code == 429


def test_repeated_failures_block_the_name_until_the_window_passes(
    client: httpx.Client, server: Server
) -> None:
    for _ in range(5):
        assert log_in(client, password="not the password").status_code == 401
    blocked = log_in(client)  # the right password, too late
    assert blocked.status_code == 429
    assert "Too many failed logins" in blocked.text
    server.clock.advance(16 * 60)
    assert log_in(client).status_code == 303


def test_idle_session_expires_and_sends_back_to_login(client: httpx.Client, server: Server) -> None:
    logged_in(client)
    server.clock.advance(IDLE_SECONDS + 1)
    response = client.get("/queue")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?expired=1"
    assert "Your session has ended" in client.get("/login?expired=1").text


def test_session_in_use_still_ends_at_its_absolute_limit(
    client: httpx.Client, server: Server
) -> None:
    logged_in(client)
    used = 0.0
    while used + IDLE_SECONDS / 2 < MAX_SECONDS:
        server.clock.advance(IDLE_SECONDS / 2)
        used += IDLE_SECONDS / 2
        assert client.get("/queue").status_code == 200
    server.clock.advance(IDLE_SECONDS / 2 + 1)  # idle for less than its limit, past the max
    assert client.get("/queue").headers["location"] == "/login?expired=1"


def test_htmx_request_after_expiry_is_told_to_go_to_login(
    client: httpx.Client, server: Server
) -> None:
    logged_in(client)
    server.clock.advance(IDLE_SECONDS + 1)
    response = client.get("/queue/items", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login?expired=1"


def test_a_reviewer_removed_while_serving_cannot_log_in(
    client: httpx.Client, server: Server
) -> None:
    from privmask.daemon.review import users

    users.add_user(server.users, "bob", PASSWORD)
    users.remove_user(server.users, NAME)
    assert log_in(client).status_code == 401
    assert log_in(client, name="bob").status_code == 303


class Waiting:
    """What the daemon's review queue will give the page: clips held for review."""

    def __init__(self, *clips: WaitingClip) -> None:
        self.clips = clips

    def waiting(self) -> tuple[WaitingClip, ...]:
        return self.clips


def test_the_queue_page_lists_what_the_review_queue_holds(users_file: Path) -> None:
    since = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    queue = Waiting(
        WaitingClip("job-7", "cam7-0915.mp4", "CAM-7", since),
        WaitingClip("job-8", "<script>alert(1)</script>.mp4", None, since),
    )
    with (
        serving(users_file, queue) as running,
        httpx.Client(base_url=running.url, timeout=30) as client,
    ):
        logged_in(client)
        page = client.get("/queue").text
    assert "No clips waiting" not in page
    assert 'data-job="job-7"' in page
    assert "cam7-0915.mp4" in page and "CAM-7" in page and "2026-11-30T09:15:00+00:00" in page
    assert "<script>alert" not in page  # a file name is text, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.mp4" in page


class Unreadable(Waiting):
    """A queue whose journal cannot be read now (say, a newer schema than this privmask's)."""

    def waiting(self) -> tuple[WaitingClip, ...]:
        raise ReviewError("journal schema 6 is newer than this privmask understands (5)")


def test_a_queue_that_cannot_be_read_is_one_line_not_an_error_page(users_file: Path) -> None:
    with (
        serving(users_file, Unreadable()) as running,
        httpx.Client(base_url=running.url, timeout=30) as client,
    ):
        logged_in(client)
        page = client.get("/queue")
        items = client.get("/queue/items", headers={"HX-Request": "true"})
    assert page.status_code == items.status_code == 503
    assert "journal schema 6 is newer" in page.text and "Traceback" not in page.text
    assert "journal schema 6 is newer" in items.text


def log_in_from(client: httpx.Client, login_url: str) -> httpx.Response:
    """The login form as `login_url` gave it, filled in and sent back as a browser would."""
    page = client.get(login_url).text
    form = {"csrf_token": csrf_token(page), "name": NAME, "password": PASSWORD}
    found = re.search(r'name="next" value="([^"]*)"', page)
    if found is not None:
        form["next"] = html.unescape(found[1])
    return client.post("/login", data=form)


def test_after_logging_in_the_page_that_sent_there_is_shown(client: httpx.Client) -> None:
    sent = client.get("/clip/17?frame=5")
    assert sent.status_code == 303
    assert sent.headers["location"] == "/login?next=%2Fclip%2F17%3Fframe%3D5"
    back = log_in_from(client, sent.headers["location"])
    assert back.status_code == 303
    assert back.headers["location"] == "/clip/17?frame=5"


def test_only_a_local_path_is_gone_back_to(server: Server) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "queue",
                   "/clip/1\r\nSet-Cookie: x=1"):  # fmt: skip
        with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
            done = log_in_from(client, f"/login?{urlencode({'next': target})}")
            assert done.status_code == 303, target
            assert done.headers["location"] == "/queue", target
