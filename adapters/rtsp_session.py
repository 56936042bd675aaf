"""A small synchronous RTSP/1.0 client (RFC 2326) over one TCP connection.

FFmpeg's RTSP client (`rtsp.py`) cannot send what ONVIF replay needs (`Require:
onvif-replay`, `Range: clock=...`, `Rate-Control: no`), so replay speaks RTSP itself: one
socket carries the requests, their responses and the RTP packets interleaved as
`$ channel length16 data` frames (RFC 2326 §10.12). Digest authentication (RFC 2617/7616,
MD5, with or without qop=auth) is answered; Basic is refused, since it would send the
password in the clear. Every read is bounded, and errors name the URL without credentials.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from privmask.adapters import urls

MAX_HEAD = 64 * 1024  # bytes of a response's status line and headers
MAX_BODY = 1024 * 1024  # bytes of a response body (an SDP is a few hundred)
MAX_PENDING = 32 * 1024 * 1024  # frame bytes held while waiting for a response
USER_AGENT = "privmask"
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')  # name="x" or name=x


class RtspSessionError(Exception):
    """One line without credentials; `code`: unreachable (cannot connect, connection lost,
    no answer in time), refused (an error status), auth (credentials missing or refused),
    protocol (an answer that cannot be read)."""

    def __init__(self, message: str, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]]  # lower-case names
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


class RtspSession:
    """One RTSP session: `request`, then `frame` for the interleaved data, `close` at the
    end (TEARDOWN). `keep_alive` when `keep_alive_due` (the server's session timeout)."""

    def __init__(
        self, url: str, username: str | None, password: str | None, timeout: float
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "rtsp" or not parts.hostname:
            raise RtspSessionError(f"{urls.redact(url)}: not an rtsp:// URL", "protocol")
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.shown = urls.redact(url)
        self._username = username if username is not None else unquote(parts.username or "")
        self._password = password if password is not None else unquote(parts.password or "")
        self._timeout = timeout
        self._cseq = 0
        self._session: str | None = None
        self._session_timeout = 60.0
        self._last_sent = time.monotonic()
        self._challenge: dict[str, str] | None = None
        self._nonce_count = 0
        self._keep_alive_method = "GET_PARAMETER"
        self._buffer = bytearray()
        self._pending: deque[tuple[int, bytes]] = deque()
        self._pending_bytes = 0
        try:
            self._socket = socket.create_connection((parts.hostname, parts.port or 554), timeout)
        except OSError as exc:
            raise self._lost(f"cannot connect: {_reason(exc)}") from exc

    # -- requests ------------------------------------------------------------------------

    def request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> Response:
        """Send one request and return its response (answering one digest challenge); RTP
        frames that arrive meanwhile are kept for `frame`. A non-2xx status raises."""
        for attempt in range(3):
            response = self._exchange(method, uri, headers or {})
            if response.status != 401:
                break
            stale = self._take_challenge(response)
            if attempt > 0 and not stale:
                break
        if response.status == 401:
            raise RtspSessionError(
                f"{self.shown}: the user name or password was refused", "auth", 401
            )
        if not 200 <= response.status < 300:
            detail = response.header("unsupported")
            detail = f" (unsupported: {_printable(detail)})" if detail else ""
            reason = _printable(response.reason)
            raise RtspSessionError(
                f"{self.shown}: {method} answered {response.status} {reason}{detail}",
                "refused",
                response.status,
            )
        session = response.header("session")
        if session:
            self._keep_session(session)
        return response

    def keep_alive_due(self) -> bool:
        return time.monotonic() - self._last_sent > self._session_timeout / 2

    def keep_alive(self, uri: str) -> None:
        """Tell the server the session is in use (GET_PARAMETER, else OPTIONS)."""
        try:
            self.request(self._keep_alive_method, uri)
        except RtspSessionError as exc:
            if exc.code != "refused" or self._keep_alive_method == "OPTIONS":
                raise
            self._keep_alive_method = "OPTIONS"
            self.request("OPTIONS", uri)

    def frame(self) -> tuple[int, bytes]:
        """The next interleaved frame: (channel, data)."""
        while not self._pending:
            self._read_message()
        channel, data = self._pending.popleft()
        self._pending_bytes -= len(data)
        return channel, data

    def close(self, uri: str | None = None) -> None:
        """TEARDOWN and close the socket. The answer is awaited (within the timeout), as a
        recorder may allow only a session or two at a time and the next chunk's replay
        follows at once; the server may also be gone, which changes nothing here."""
        try:
            if uri is not None and self._session is not None:
                self._pending.clear()
                self._pending_bytes = 0
                self._exchange("TEARDOWN", uri, {})
        except RtspSessionError:
            pass
        finally:
            self._socket.close()

    # -- the wire ------------------------------------------------------------------------

    def _exchange(self, method: str, uri: str, headers: dict[str, str]) -> Response:
        cseq = self._send(method, uri, headers)
        while True:
            response = self._read_message()
            if response is not None and response.header("cseq") == str(cseq):
                return response

    def _send(self, method: str, uri: str, headers: dict[str, str]) -> int:
        self._cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._session is not None:
            lines.append(f"Session: {self._session}")
        if self._challenge is not None:
            lines.append(f"Authorization: {self._authorization(method, uri)}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        try:
            self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        except OSError as exc:
            raise self._lost(f"connection lost: {_reason(exc)}") from exc
        self._last_sent = time.monotonic()
        return self._cseq

    def _read_message(self) -> Response | None:
        """Read one message: a frame goes to the pending queue (None is returned), a
        response is returned, a request from the server is skipped (None)."""
        self._fill(1)
        if self._buffer[0] == 0x24:  # '$'
            self._fill(4)
            size = int.from_bytes(self._buffer[2:4], "big")
            self._fill(4 + size)
            channel, data = self._buffer[1], bytes(self._buffer[4 : 4 + size])
            del self._buffer[: 4 + size]
            self._pending_bytes += size
            if self._pending_bytes > MAX_PENDING:
                raise RtspSessionError(f"{self.shown}: too much data before an answer", "protocol")
            self._pending.append((channel, data))
            return None
        end = self._head_end()
        head = self._buffer[:end].decode("latin-1")
        del self._buffer[: end + 4]
        first, *lines = head.split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = _content_length(headers)
        if length > MAX_BODY:
            raise RtspSessionError(f"{self.shown}: answer body of {length} bytes", "protocol")
        self._fill(length)
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        match = re.match(r"RTSP/1\.\d (\d{3}) ?(.*)", first)
        if match:
            return Response(int(match.group(1)), match.group(2), headers, body)
        if re.match(r"[A-Z_]+ \S+ RTSP/1\.\d$", first):
            return None  # a request from the server (e.g. ANNOUNCE): not acted on
        raise RtspSessionError(f"{self.shown}: not an RTSP answer", "protocol")

    def _head_end(self) -> int:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                return end
            if len(self._buffer) > MAX_HEAD:
                raise RtspSessionError(f"{self.shown}: answer headers too long", "protocol")
            self._recv()

    def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            self._recv()

    def _recv(self) -> None:
        try:
            chunk = self._socket.recv(65536)
        except TimeoutError as exc:
            raise self._lost(f"no data for {self._timeout:g} s") from exc
        except OSError as exc:
            raise self._lost(f"connection lost: {_reason(exc)}") from exc
        if not chunk:
            raise self._lost("connection closed by the server")
        self._buffer += chunk

    def _lost(self, what: str) -> RtspSessionError:
        return RtspSessionError(f"{self.shown}: {what}", "unreachable")

    def _keep_session(self, value: str) -> None:
        identifier, *params = (p.strip() for p in value.split(";"))
        self._session = identifier
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "timeout" and number.strip().isdigit():
                self._session_timeout = max(2.0, float(number))

    # -- digest --------------------------------------------------------------------------

    def _take_challenge(self, response: Response) -> bool:
        """Keep the response's digest challenge; True if it says our nonce was stale."""
        offers = response.headers.get("www-authenticate", [])
        digests = [_params(o) for o in offers if o.lower().startswith("digest")]
        usable = [d for d in digests if d.get("algorithm", "MD5").upper() == "MD5"]
        if not self._username:
            raise RtspSessionError(f"{self.shown}: the recorder asks for credentials", "auth", 401)
        if not usable:
            offered = ", ".join(o.split()[0] for o in offers if o) or "none"
            raise RtspSessionError(
                f"{self.shown}: no usable authentication offered ({offered}; digest MD5 needed)",
                "auth",
                401,
            )
        self._challenge = usable[0]
        self._nonce_count = 0
        return usable[0].get("stale", "").lower() == "true"

    def _authorization(self, method: str, uri: str) -> str:
        assert self._challenge is not None
        realm, nonce = self._challenge.get("realm", ""), self._challenge.get("nonce", "")
        ha1 = _md5(f"{self._username}:{realm}:{self._password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [
            f'username="{self._username}"', f'realm="{realm}"', f'nonce="{nonce}"',
            f'uri="{uri}"', "algorithm=MD5",
        ]  # fmt: skip
        qops = [q.strip() for q in self._challenge.get("qop", "").split(",")]
        if "auth" in qops:
            self._nonce_count += 1
            count, cnonce = f"{self._nonce_count:08x}", secrets.token_hex(8)
            answer = _md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
        else:
            answer = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{answer}"')
        if "opaque" in self._challenge:
            fields.append(f'opaque="{self._challenge["opaque"]}"')
        return "Digest " + ", ".join(fields)


def _params(challenge: str) -> dict[str, str]:
    """The name=value pairs of a challenge, quoted or not."""
    pairs = _PARAM.findall(challenge.split(" ", 1)[-1])
    return {name.lower(): quoted or plain for name, quoted, plain in pairs}


def _printable(text: str) -> str:
    """The server's own words, short and on one line (they end up in logs)."""
    return "".join(c if c.isprintable() else "?" for c in text[:80])


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _content_length(headers: dict[str, list[str]]) -> int:
    value = (headers.get("content-length") or ["0"])[0]
    if not value.isdigit():
        raise RtspSessionError(f"Content-Length {value[:20]!r} is not a number", "protocol")
    return int(value)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
