"""Server-side sessions and login rate limiting, both on a clock the caller gives.

A session is a random token in an HttpOnly cookie; the server keeps only the token's
sha256, so its memory never holds a usable cookie. A session ends when unused for
`idle` seconds, or `absolute` seconds after login, whichever comes first. Each session has
its own CSRF token, sent back in every form and in htmx's request header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
MAX_SESSIONS = 10_000  # a bound on memory: the oldest logins go first


@dataclass
class Session:
    user: str
    csrf: str
    started: float
    seen: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    def __init__(self, idle: float, absolute: float, clock: Clock = time.monotonic) -> None:
        if not 0 < idle <= absolute:
            raise ValueError("session expiry must satisfy 0 < idle <= absolute")
        self._idle, self._absolute, self._clock = idle, absolute, clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> tuple[str, Session]:
        """A new session for `user`: its cookie token (given out once) and the session."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[_key(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of `token`, touched; None when unknown or expired (then gone)."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            key = _key(token)
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[key]
                return None
            session.seen = now
            return session

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_key(token), None)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.seen > self._idle or now - session.started > self._absolute

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


def same_token(given: str | None, expected: str) -> bool:
    """A CSRF token check in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)


class LoginLimiter:
    """At most `limit` failed logins per `window` seconds for one user name, and four times
    as many for one client address (reviewers behind one proxy or SSH tunnel share theirs);
    a success clears the name's count, not the address's."""

    ADDRESS_FACTOR = 4

    def __init__(
        self, limit: int = 5, window: float = 900.0, clock: Clock = time.monotonic
    ) -> None:
        self._limit, self._window, self._clock = limit, window, clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def blocked(self, user: str, address: str) -> bool:
        now = self._clock()
        with self._lock:
            by_user, by_address = _keys(user, address)
            return (
                self._count(by_user, now) >= self._limit
                or self._count(by_address, now) >= self._limit * self.ADDRESS_FACTOR
            )

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > MAX_SESSIONS:  # a bound on memory
                for key in list(self._failures):
                    self._count(key, now)
            for key in _keys(user, address):
                self._failures.setdefault(key, _Failures()).times.append(now)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(_keys(user, "")[0], None)

    def _count(self, key: str, now: float) -> int:
        entry = self._failures.get(key)
        if entry is None:
            return 0
        while entry.times and now - entry.times[0] > self._window:
            entry.times.popleft()
        if not entry.times:
            del self._failures[key]
            return 0
        return len(entry.times)


def _keys(user: str, address: str) -> tuple[str, str]:
    return f"user:{user}", f"address:{address}"
