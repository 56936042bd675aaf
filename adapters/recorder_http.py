"""HTTP to a recorder's vendor API (Hikvision ISAPI, Dahua CGI): digest auth, answers read
with a size limit, downloads streamed to a file.

The standard library's `urllib` is enough (it speaks RFC 2617/7616 digest with qop=auth),
so no client library is added. Only digest is offered: a recorder that asks for Basic
would get the password in the clear, and gets a 401 instead. Proxies from the environment
are not used: a recorder is on the site's own network. Messages name the recorder by its
redacted URL and never carry a password.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Literal

from privmask.adapters.urls import redact

HttpErrorCode = Literal["auth", "unreachable", "refused", "protocol"]
MAX_ANSWER = 16 << 20  # a search answer of a few hundred items is a few hundred KiB
_BLOCK = 1 << 20


class HttpError(Exception):
    """One line naming the recorder; `code`: auth (401), unreachable (no connection or no
    answer in time), refused (another HTTP error status, in `status`), protocol (a broken
    answer)."""

    def __init__(self, message: str, code: HttpErrorCode, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class RecorderHttp:
    """One recorder at `url` (scheme, host and port; credentials in it are ignored)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.label = redact(url).rstrip("/")
        self._base = self.label
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, self._base, username, password)
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPDigestAuthHandler(passwords)
        )
        self._timeout = timeout

    def read(self, path: str, body: bytes | None = None, content_type: str = "") -> bytes:
        """The answer to GET `path` (POST when there is a body), at most MAX_ANSWER bytes."""
        with self._open(path, body, content_type) as answer:
            data = _read_block(answer, self.label, MAX_ANSWER + 1)
            if len(data) > MAX_ANSWER:
                raise HttpError(f"{self.label}: answer to {_first(path)} is too large", "protocol")
            _check_whole(answer, len(data), self.label)
        return data

    def download(
        self, path: str, target: Path, body: bytes | None = None, content_type: str = ""
    ) -> int:
        """Stream the answer to `path` into `target` (created new, mode 0600); its size."""
        size = 0
        with self._open(path, body, content_type) as answer:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                while block := _read_block(answer, self.label):
                    out.write(block)
                    size += len(block)
            _check_whole(answer, size, self.label)
        return size

    def _open(self, path: str, body: bytes | None, content_type: str) -> IO[bytes]:
        request = urllib.request.Request(self._base + path, data=body)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            answer: IO[bytes] = self._opener.open(request, timeout=self._timeout)
            return answer
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 401:
                raise HttpError(
                    f"{self.label}: the recorder refused the user name or password",
                    "auth", 401,
                ) from None  # fmt: skip
            raise HttpError(
                f"{self.label}: {_first(path)} answered HTTP {exc.code}", "refused", exc.code
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise HttpError(f"{self.label}: unreachable ({_reason(exc)})", "unreachable") from None
        except ValueError as exc:  # urllib: an auth scheme or digest algorithm it lacks
            raise HttpError(f"{self.label}: cannot log in ({exc})", "protocol") from None


def _read_block(answer: IO[bytes], label: str, size: int = _BLOCK) -> bytes:
    try:
        return answer.read(size)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, timeout, cut short
        raise HttpError(f"{label}: the answer broke off ({_reason(exc)})", "unreachable") from None


def _check_whole(answer: IO[bytes], size: int, label: str) -> None:
    """A body shorter than its Content-Length broke off: http.client's `read(n)` says so only
    for chunked bodies, and returns the short body of a closed connection as if whole."""
    length = getattr(answer, "headers", {}).get("Content-Length", "")
    if length.isdigit() and size < int(length):
        raise HttpError(f"{label}: the answer broke off ({size} of {length} bytes)", "unreachable")


def _first(path: str) -> str:
    """The path without its query, for messages."""
    return path.partition("?")[0]


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(getattr(reason, "strerror", None) or reason) or type(reason).__name__
