"""A recorder's HTTP side for the vendor peers: a stdlib HTTP server on loopback that asks
for RFC 2617 digest auth (MD5, qop=auth, a fresh nonce per challenge) and hands each
authorised request to the peer's `answer`. It runs in a thread of the test process."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REALM = "recorder"
_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes | Path = b""  # a Path is streamed
    content_type: str = "text/plain"
    broken: bool = False  # send half the body, then close: a download that breaks off


class DigestPeer:
    """Subclasses give `answer`; `requests` logs (method, path, body) of authorised ones."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.requests: list[tuple[str, str, bytes]] = []
        self.refused = 0  # requests whose credentials were wrong
        self._nonces: set[str] = set()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        raise NotImplementedError

    @contextmanager
    def running(self) -> Iterator[DigestPeer]:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()

    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        return f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}"'

    def authorised(self, method: str, header: str | None) -> bool:
        if not header or not header.startswith("Digest "):
            return False
        fields = {m[1]: m[2] or m[3] for m in _FIELD.finditer(header[7:])}
        if fields.get("username") != self.username or fields.get("nonce") not in self._nonces:
            return False
        ha1 = _md5(f"{self.username}:{REALM}:{self.password}")
        ha2 = _md5(f"{method}:{fields.get('uri', '')}")
        parts = [ha1, fields["nonce"], fields.get("nc", ""), fields.get("cnonce", "")]
        expected = _md5(":".join([*parts, fields.get("qop", ""), ha2]))
        return secrets.compare_digest(expected, fields.get("response", ""))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _handler(peer: DigestPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            authorization = self.headers.get("Authorization")
            if not peer.authorised(method, authorization):
                peer.refused += authorization is not None
                self.send_response(401)
                self.send_header("WWW-Authenticate", peer.challenge())
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            peer.requests.append((method, self.path, body))
            self._send(peer.answer(method, self.path, body))

        def _send(self, answer: Answer) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            data = answer.body
            size = data.stat().st_size if isinstance(data, Path) else len(data)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if isinstance(data, Path):
                data = data.read_bytes()
            self.wfile.write(data[: size // 2] if answer.broken else data)
            self.close_connection = answer.broken

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows what failed

    return Handler
