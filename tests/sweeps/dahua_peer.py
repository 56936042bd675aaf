"""A Dahua recorder's HTTP API for the tests: the channel count, `mediaFileFind.cgi`
(factory.create, findFile, findNextFile paged at most `page` at a time, close and destroy,
also as factory.close/factory.destroy) and `RPC_Loadfile`, behind digest auth. Times are
the recorder's wall clock; channels are 1-based. A findFile that matches nothing answers
HTTP 400 `Error`, as recorders do. The files served are real DHAV files
(`vendor_media.write_dav`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from digest_peer import Answer, DigestPeer

_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class PeerFile:
    channel: int
    start: datetime  # the recorder's wall clock
    end: datetime
    file: Path

    @property
    def path(self) -> str:
        day, hour = f"{self.start:%Y-%m-%d}", f"{self.start:%H}"
        name = f"{self.start:%H.%M.%S}-{self.end:%H.%M.%S}[R][0@0][0].dav"
        return f"/mnt/dvr/{day}/{self.channel - 1:03d}/dav/{hour}/{name}"


@dataclass
class _Finder:
    matches: list[PeerFile] = field(default_factory=list)
    at: int = 0
    closed: bool = False


class DahuaPeer(DigestPeer):
    def __init__(
        self, username: str, password: str, files: list[PeerFile], channels: int = 2, page: int = 2
    ) -> None:
        super().__init__(username, password)
        self.files, self.channels, self.page = files, channels, page
        self.finders: dict[str, _Finder] = {}  # live ones: destroyed finders are removed
        self.asked: list[dict[str, str]] = []  # each findFile's query
        self._numbers = itertools.count(8137)

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        parts = urlsplit(path)
        query = dict(parse_qsl(parts.query))
        if parts.path == "/cgi-bin/devVideoInput.cgi" and query.get("action") == "getCollect":
            return Answer(200, f"result={self.channels}\r\n".encode())
        if parts.path == "/cgi-bin/mediaFileFind.cgi":
            return self._find(query)
        if parts.path.startswith("/cgi-bin/RPC_Loadfile/"):
            wanted = unquote(parts.path.removeprefix("/cgi-bin/RPC_Loadfile"))
            for item in self.files:
                if item.path == wanted:
                    return Answer(200, item.file, "application/octet-stream")
        return Answer(404, b"Error\r\n")

    def _find(self, query: dict[str, str]) -> Answer:
        action = query.get("action", "").removeprefix("factory.")
        if action == "create":
            number = f"{next(self._numbers):05d}"
            self.finders[number] = _Finder()
            return Answer(200, f"result={number}\r\n".encode())
        finder = self.finders.get(query.get("object", ""))
        if finder is None:
            return Answer(400, b"Error\r\n")
        if action == "findFile":
            return self._find_file(finder, query)
        if action == "findNextFile":
            return self._next(finder, int(query.get("count", "100")))
        if action == "close":
            finder.closed = True
            return Answer(200, b"OK\r\n")
        if action == "destroy":
            del self.finders[query["object"]]
            return Answer(200, b"OK\r\n")
        return Answer(400, b"Error\r\n")

    def _find_file(self, finder: _Finder, query: dict[str, str]) -> Answer:
        self.asked.append(query)
        channel = int(query["condition.Channel"])
        start, end = (
            datetime.strptime(query[k], _TIME) for k in ("condition.StartTime", "condition.EndTime")
        )
        finder.matches = [
            f for f in self.files if f.channel == channel and f.start < end and f.end > start
        ]
        return Answer(200, b"OK\r\n") if finder.matches else Answer(400, b"Error\r\n")

    def _next(self, finder: _Finder, count: int) -> Answer:
        shown = finder.matches[finder.at : finder.at + min(count, self.page)]
        finder.at += len(shown)
        lines = [f"found={len(shown)}"]
        for index, item in enumerate(shown):
            lines += [
                f"items[{index}].Channel={item.channel - 1}",  # recorders count from 0 here
                f"items[{index}].StartTime={item.start.strftime(_TIME)}",
                f"items[{index}].EndTime={item.end.strftime(_TIME)}",
                f"items[{index}].FilePath={item.path}",
                f"items[{index}].Type=dav",
                f"items[{index}].Length={item.file.stat().st_size}",
            ]
        return Answer(200, ("\r\n".join(lines) + "\r\n").encode())
