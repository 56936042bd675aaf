"""The review page: log in, see the clips waiting for review, open one (`clip_pages`),
log out.

Every POST goes through `_post`, which checks the CSRF token (a form field, or htmx's
`X-CSRF-Token` header) before the handler runs; `Guard` has already refused cross-site
requests and added the security headers. The login form, which has no session yet, is
protected by a token in a short-lived cookie that must match the form's (double submit).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from privmask.daemon.review import users
from privmask.daemon.review.clip_pages import ClipPages
from privmask.daemon.review.guard import Guard
from privmask.daemon.review.queue import NoReviewQueue, ReviewError, ReviewQueue
from privmask.daemon.review.sessions import Clock, LoginLimiter, Session, SessionStore, same_token

HERE = Path(__file__).parent
SESSION_COOKIE = "privmask_session"
LOGIN_COOKIE = "privmask_login"
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"
MAX_BODY = 64 * 1024  # the page's forms are small; a larger body is refused unread
HOME = "/queue"  # where a login goes when no page sent the reviewer there
MAX_NEXT = 500  # characters of a `next` path
MAX_FIELDS = 200  # a decision sends a field per subject kept and per area drawn
NOTES = {
    "approved": "approved; it goes on to its package",
    "rejected": "rejected; no package is made",
}

_log = structlog.get_logger("privmask.review")
Handler = Callable[[Request, FormData, Session | None], Awaitable[Response]]


@dataclass(frozen=True)
class ReviewSettings:
    users: Path
    idle_seconds: float = 30 * 60
    max_seconds: float = 8 * 3600
    allowed_hosts: Collection[str] | None = None  # None: any Host header is answered
    queue: ReviewQueue = field(default_factory=NoReviewQueue)
    clock: Clock = time.monotonic
    login_limit: int = 5  # failed logins per name, and per address, in `login_window`
    login_window: float = 15 * 60


def create_app(settings: ReviewSettings) -> Starlette:
    page = _Page(settings)
    routes = [
        Route("/", page.home),
        Route("/login", page.login_form, methods=["GET"]),
        Route("/login", _post(page.login, login_form=True), methods=["POST"]),
        Route("/logout", _post(page.logout), methods=["POST"]),
        Route("/queue", page.queue),
        Route("/queue/items", page.queue_items),
        *ClipPages(page).routes(_post),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, allowed_hosts=settings.allowed_hosts)],
        max_body_size=MAX_BODY,
    )
    app.state.page = page
    return app


def _post(
    handler: Handler, *, login_form: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """`handler` behind the CSRF check: the session's token; for the login form, which has
    no session yet, the token of its cookie."""

    async def checked(request: Request) -> Response:
        page: _Page = request.app.state.page
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
        session = page.session(request)
        if login_form:
            expected = request.cookies.get(LOGIN_COOKIE)
        elif session is None:  # nothing to protect, and nothing done
            return page.signed_out(request)
        else:
            expected = session.csrf
        given = request.headers.get(CSRF_HEADER) or _text(form, CSRF_FIELD)
        if expected is None or not same_token(given, expected):
            _log.warning("review.request_refused", reason="csrf token", path=request.url.path)
            return Response("form expired or forged; reload the page", status_code=403)
        return await handler(request, form, session)

    return checked


class _Page:
    def __init__(self, settings: ReviewSettings) -> None:
        self._settings = settings
        self._sessions = SessionStore(settings.idle_seconds, settings.max_seconds, settings.clock)
        self._limiter = LoginLimiter(settings.login_limit, settings.login_window, settings.clock)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True
        )
        self.templates = Jinja2Templates(env=env)
        self.review_queue = settings.queue

    def session(self, request: Request) -> Session | None:
        return self._sessions.get(request.cookies.get(SESSION_COOKIE))

    def to_login(self, request: Request, *, expired: bool) -> Response:
        """Back to the login page; an htmx request is told to go there itself."""
        query = [("expired", "1")] if expired else []
        back = _back_to(request)
        if back is not None:
            query.append(("next", back))
        target = f"/login?{urlencode(query)}" if query else "/login"
        if request.headers.get("hx-request"):
            message = "Your session has ended. Please log in again."  # shown if not followed
            response: Response = PlainTextResponse(
                message, status_code=401, headers={"HX-Redirect": target}
            )
        else:
            response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    def signed_out(self, request: Request) -> Response:
        """Back to the login page, saying so where a session has ended."""
        return self.to_login(request, expired=SESSION_COOKIE in request.cookies)

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/queue", status_code=303)

    async def login_form(self, request: Request) -> Response:
        if self.session(request) is not None:
            back = local_path(request.query_params.get("next"))
            return RedirectResponse(back, status_code=303)
        expired = request.query_params.get("expired") == "1"
        message = "Your session has ended. Please log in again." if expired else None
        return self._login_page(request, message, status=200,
                                back=local_path(request.query_params.get("next")))  # fmt: skip

    async def login(self, request: Request, form: FormData, _: Session | None) -> Response:
        name, password = _text(form, "name") or "", _text(form, "password") or ""
        address = request.client.host if request.client else "unknown"
        if self._limiter.blocked(name, address):
            _log.warning("review.login_refused", address=address, reason="too many failures")
            message = "Too many failed logins. Try again later."
            return self._login_page(request, message, status=429)
        try:
            result = await run_in_threadpool(users.login, self._settings.users, name, password)
        except users.ReviewError as exc:  # the file went missing or bad while serving
            _log.error("review.users_unreadable", error=str(exc))
            message = "Login is unavailable: the reviewers' file cannot be read."
            return self._login_page(request, message, status=503)
        if result != "accepted":
            self._limiter.failed(name, address)
            # an unknown name is not logged: it may be a password typed in the wrong field
            shown = name if result == "wrong password" else None
            _log.warning("review.login_failed", user=shown, address=address, reason=result)
            return self._login_page(request, "Wrong name or password.", status=401,
                                    back=local_path(_text(form, "next")))  # fmt: skip
        self._limiter.succeeded(name)
        self._sessions.end(request.cookies.get(SESSION_COOKIE))  # never reuse a session id
        token, _session = self._sessions.create(name)
        _log.info("review.login", user=name, address=address)
        response = RedirectResponse(local_path(_text(form, "next")), status_code=303)
        _set_cookie(request, response, SESSION_COOKIE, token, max_age=None)
        response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request, form: FormData, session: Session | None) -> Response:
        self._sessions.end(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            _log.info("review.logout", user=session.user)
        return self.to_login(request, expired=False)

    async def queue(self, request: Request) -> Response:
        return await self._signed_in(request, "queue.html", note=_note(request))

    async def queue_items(self, request: Request) -> Response:
        return await self._signed_in(request, "queue_items.html")

    async def _signed_in(
        self, request: Request, template: str, note: str | None = None
    ) -> Response:
        session = self.session(request)
        if session is None:
            return self.signed_out(request)
        context = {"user": session.user, "csrf": session.csrf, "note": note}
        try:
            clips = await run_in_threadpool(self._settings.queue.waiting)
        except ReviewError as exc:  # e.g. a journal this privmask cannot read: say so
            _log.error("review.queue_unreadable", error=str(exc))
            context |= {"clips": (), "unreadable": str(exc)}
            return self.templates.TemplateResponse(request, template, context, status_code=503)
        context["clips"] = clips
        return self.templates.TemplateResponse(request, template, context)

    def _login_page(
        self, request: Request, message: str | None, *, status: int, back: str = HOME
    ) -> Response:
        token = secrets.token_urlsafe(32)
        context = {"csrf": token, "message": message, "next": back}
        response = self.templates.TemplateResponse(
            request, "login.html", context, status_code=status
        )
        _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600, path="/login")
        return response


def _set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None,
    path: str = "/",
) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        name, value, max_age=max_age, path=path, secure=secure, httponly=True, samesite="strict"
    )


def local_path(text: str | None) -> str:
    """`text` if it is a path on this site, else the queue: after logging in, a reviewer goes
    back only to a page of this site (a `next` of "//host" or "https://host" would send the
    new session's user elsewhere)."""
    if (
        not text
        or len(text) > MAX_NEXT
        or not text.startswith("/")
        or text.startswith(("//", "/\\"))
        or not text.isprintable()
        or " " in text
    ):
        return HOME
    return text


def _back_to(request: Request) -> str | None:
    """The page to come back to after logging in: a page the browser asked for itself (not
    an htmx fragment, not the queue, which is where a login goes anyway)."""
    path = request.url.path
    if request.method != "GET" or request.headers.get("hx-request"):
        return None
    if path.endswith((".png", ".jpg")) or path.startswith("/static/"):
        return None  # a picture of a page, not a page to come back to
    if request.url.query:
        path = f"{path}?{request.url.query}"
    return None if local_path(path) in (HOME, "/") else path


def _note(request: Request) -> str | None:
    """What the queue page says after a decision (`?approved=JOB`)."""
    for outcome, words in NOTES.items():
        job = request.query_params.get(outcome, "")
        if job.isdigit():
            return f"Clip {job} {words}."
    return None


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None
