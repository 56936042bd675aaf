"""What every request to the review page passes before a route sees it, and what every
response carries: a pure ASGI middleware, so that no route can forget it.

- Host: on a loopback listener only loopback names are answered, so a web page that
  rebinds its own DNS name to 127.0.0.1 cannot read the page.
- Cross-site: a request that changes something (any method but GET, HEAD, OPTIONS) is
  refused when the browser says it came from another site (`Sec-Fetch-Site`) or another
  origin (`Origin`). The per-session CSRF token, checked by the routes, covers clients
  that send neither.
- Headers: a CSP without inline script, no framing, no sniffing, no referrer to other
  sites; pages are never stored by the browser or a proxy (they show who waits for review).
"""

from __future__ import annotations

from collections.abc import Collection

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make browsers send `Origin: null`
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
STATIC_PREFIX = "/static/"

_log = structlog.get_logger("privmask.review")


class Guard:
    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str] | None) -> None:
        """`allowed_hosts`: the host names answered (without port); None: any."""
        self._app = app
        self._hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        sender = _with_headers(send, scope["path"])
        if refusal is not None:
            _log.warning("review.request_refused", reason=refusal, path=scope["path"])
            await PlainTextResponse(refusal, status_code=403)(scope, receive, sender)
            return
        await self._app(scope, receive, sender)

    def _refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self._hosts is not None and _host_name(host) not in self._hosts:
            return "unknown host name"
        if scope["method"] in SAFE_METHODS:
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return "cross-site request refused"
        origin = headers.get("origin")
        if origin is not None and origin != f"{scope['scheme']}://{host}":
            return "cross-origin request refused"
        return None


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _with_headers(send: Send, path: str) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in HEADERS.items():
                headers[name] = value
            if not path.startswith(STATIC_PREFIX):
                headers["cache-control"] = "no-store"
        await send(message)

    return sender
