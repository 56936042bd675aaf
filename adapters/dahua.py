"""Dahua's HTTP API, for recorders without ONVIF Profile G: the recorded files of a channel
(`mediaFileFind.cgi`: create a finder, findFile, findNextFile until none are left, close and
destroy it, even after an error) and a file downloaded (`RPC_Loadfile<FilePath>`, streamed:
a DHAV `.dav` file or an MP4, which `remux` reads either way).

Channels are 1-based, as the recorder counts them. Times are the recorder's local wall
clock, given and returned naive, for the caller to read in the recorder's zone. Answers
are `key=value` lines.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from privmask.adapters.recorder_http import HttpError, RecorderHttp

PAGE = 100  # files per findNextFile
MAX_PAGES = 1000
MAX_CHANNELS = 256  # the largest NVRs have 256; more is a broken or hostile answer
_FIND = "/cgi-bin/mediaFileFind.cgi"
_TIME = "%Y-%m-%d %H:%M:%S"


class DahuaError(Exception):
    """One line naming the recorder (never a password); `code`: auth, unreachable, refused
    or protocol, as `recorder_http.HttpError`."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DahuaFile:
    """A recorded file of one channel, as the recorder told it."""

    channel: int
    start: datetime  # naive: the recorder's wall clock
    end: datetime
    path: str  # FilePath, what a download asks for


class Dahua:
    """One recorder's HTTP API at `url` (e.g. http://192.0.2.20)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self._http = RecorderHttp(url, username, password, timeout)
        self.label = self._http.label

    def channels(self) -> tuple[int, ...]:
        """The recorder's video channels, 1-based (`devVideoInput.cgi?action=getCollect`)."""
        answer = _pairs(self._read("/cgi-bin/devVideoInput.cgi?action=getCollect"))
        count = answer.get("result", "")
        if not count.isdigit():
            raise DahuaError(f"{self.label}: no channel count in its answer", "protocol")
        if int(count) > MAX_CHANNELS:  # a recorder's answer is not trusted with our memory
            raise DahuaError(
                f"{self.label}: claims {count[:20]} channels (at most {MAX_CHANNELS}); "
                "list the channels to sweep in the config",
                "protocol",
            )
        return tuple(range(1, int(count) + 1))

    def find(self, channel: int, start: datetime, end: datetime) -> list[DahuaFile]:
        """The files of `channel` overlapping [start, end) (the recorder's wall clock)."""
        finder = _pairs(self._read(f"{_FIND}?action=factory.create")).get("result", "")
        if not finder.isdigit():
            raise DahuaError(f"{self.label}: mediaFileFind gave no finder", "protocol")
        try:
            return self._find(finder, channel, start, end)
        finally:
            for action in ("close", "destroy"):  # a recorder keeps only a few finders
                with suppress(DahuaError):
                    self._read(f"{_FIND}?action={action}&object={finder}")

    def download(self, file: DahuaFile, target: Path) -> int:
        """The file streamed into `target` (made new); its size in bytes."""
        try:
            return self._http.download(
                "/cgi-bin/RPC_Loadfile" + quote(file.path, safe="/@"), target
            )
        except HttpError as exc:
            raise DahuaError(str(exc), exc.code) from None

    def _find(self, finder: str, channel: int, start: datetime, end: datetime) -> list[DahuaFile]:
        condition = (
            f"&condition.Channel={channel}&condition.StartTime={_when(start)}"
            f"&condition.EndTime={_when(end)}"
        )
        if not self._answered_ok(f"{_FIND}?action=findFile&object={finder}{condition}"):
            return []  # recorders answer Error to a search that matches nothing
        found: list[DahuaFile] = []
        for _ in range(MAX_PAGES):
            path = f"{_FIND}?action=findNextFile&object={finder}&count={PAGE}"
            if not (answer := self._answered_ok(path, keep=True)):
                return found  # Error here is "no more" too
            items = self._items(_pairs(answer), channel)
            if not items:  # only found=0 ends it: recorders give fewer than asked per page
                return found
            found += items
        raise DahuaError(
            f"{self.label}: the search did not end after {MAX_PAGES} pages", "protocol"
        )

    def _answered_ok(self, path: str, keep: bool = False) -> bytes:
        """The answer; empty where the recorder answered Error (HTTP 400 or an Error body)."""
        try:
            answer = self._read(path)
        except DahuaError as exc:
            if exc.code == "refused" and "HTTP 400" in str(exc):
                return b""
            raise
        return b"" if answer.strip().lower().startswith(b"error") else (answer if keep else b"OK")

    def _items(self, pairs: dict[str, str], channel: int) -> list[DahuaFile]:
        count = pairs.get("found", "0")
        if not count.isdigit():
            raise DahuaError(f"{self.label}: findNextFile gave no count", "protocol")
        files = []
        for index in range(int(count)):
            item = {k: pairs.get(f"items[{index}].{k}", "") for k in ("StartTime", "EndTime")}
            path = pairs.get(f"items[{index}].FilePath", "")
            try:
                start, end = (datetime.strptime(item[k], _TIME) for k in ("StartTime", "EndTime"))
            except ValueError:
                raise DahuaError(f"{self.label}: a found file has a bad time", "protocol") from None
            if not path:
                raise DahuaError(f"{self.label}: a found file has no FilePath", "protocol")
            files.append(DahuaFile(channel, start, end, path))  # items' own Channel varies in base
        return files

    def _read(self, path: str) -> bytes:
        try:
            return self._http.read(path)
        except HttpError as exc:
            raise DahuaError(str(exc), exc.code) from None


def _when(moment: datetime) -> str:
    """A wall-clock time as the recorder wants it: a space as %20, colons as they are."""
    return quote(moment.strftime(_TIME), safe=":")


def _pairs(answer: bytes) -> dict[str, str]:
    text = answer.decode("utf-8", "replace")
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}
