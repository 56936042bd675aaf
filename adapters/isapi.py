"""Hikvision ISAPI, for recorders without ONVIF Profile G: the recorded segments of a track
(`POST /ISAPI/ContentMgmt/search`, paged) and a segment downloaded
(`POST /ISAPI/ContentMgmt/download`, streamed to a file: an MPEG program stream, often
behind a 40-byte `IMKH` header, which `remux` turns into MP4).

Times are given and returned as the recorder writes them: many firmwares write their own
local wall clock and label it `Z`, so a `Z` time comes back naive, for the caller to read
in the recorder's zone; a time with an explicit offset comes back aware. A track id is
channel * 100 + 1 (main stream) or + 2 (sub stream). Answers are parsed by local names
only: the namespace differs between firmwares (hikvision.com, isapi.com, isapi.org).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from privmask.adapters.recorder_http import HttpError, RecorderHttp

PAGE = 40  # items per search page, as Hikvision's own clients ask
MAX_PAGES = 1000
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_XML = "application/xml"
_RETRIES = (0.5, 2.0)  # recorders answer 400 or 503 to back-to-back downloads now and then


class IsapiError(Exception):
    """One line naming the recorder (never a password); `code`: auth, unreachable, refused
    or protocol, as `recorder_http.HttpError`."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Segment:
    """A recorded stretch of one track, as the recorder told it."""

    track: int
    start: datetime  # naive: the recorder's wall clock; aware: it gave an offset
    end: datetime
    playback_uri: str  # what a download asks for, as given


class Isapi:
    """One recorder's ISAPI at `url` (e.g. http://192.0.2.10)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self._http = RecorderHttp(url, username, password, timeout)
        self.label = self._http.label

    def tracks(self) -> tuple[int, ...]:
        """The recorder's recording tracks (`/ISAPI/ContentMgmt/record/tracks`)."""
        root = self._xml(self._read("/ISAPI/ContentMgmt/record/tracks"))
        found = sorted({int(t) for t in _texts(root, "Track", "id") if t.isdigit()})
        return tuple(found)

    def search(self, track: int, start: datetime, end: datetime) -> list[Segment]:
        """The segments of `track` overlapping [start, end) (the recorder's wall clock),
        every page of them, in the recorder's order."""
        search_id, found = str(uuid.uuid4()).upper(), list[Segment]()
        for _ in range(MAX_PAGES):
            body = _search_body(search_id, track, start, end, len(found))
            status, items = self._page(self._read("/ISAPI/ContentMgmt/search", body), track)
            found += items
            if status != "MORE":
                return found
            if not items:
                raise IsapiError(f"{self.label}: search said MORE but gave nothing", "protocol")
        raise IsapiError(f"{self.label}: search did not end after {MAX_PAGES} pages", "protocol")

    def download(self, segment: Segment, target: Path) -> int:
        """The segment's recording streamed into `target` (made new); its size in bytes."""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<downloadRequest version="1.0" xmlns="http://www.isapi.org/ver20/XMLSchema">'
            f"<playbackURI>{escape(segment.playback_uri)}</playbackURI></downloadRequest>"
        ).encode()
        for pause in (*_RETRIES, None):
            try:
                target.unlink(missing_ok=True)
                return self._http.download("/ISAPI/ContentMgmt/download", target, body, _XML)
            except HttpError as exc:
                if pause is None or exc.status not in (400, 503):
                    raise IsapiError(str(exc), exc.code) from None
                time.sleep(pause)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _read(self, path: str, body: bytes | None = None) -> bytes:
        try:
            return self._http.read(path, body, _XML if body else "")
        except HttpError as exc:
            raise IsapiError(str(exc), exc.code) from None

    def _xml(self, data: bytes) -> etree._Element:
        try:
            return etree.fromstring(data, _SAFE_XML)
        except (etree.XMLSyntaxError, ValueError):
            raise IsapiError(f"{self.label}: the answer is not XML", "protocol") from None

    def _page(self, data: bytes, track: int) -> tuple[str, list[Segment]]:
        root = self._xml(data)
        status = (_text(root, "responseStatusStrg") or "").strip().upper()
        if status == "NO MATCHES":
            return status, []
        if status not in ("OK", "MORE"):
            raise IsapiError(f"{self.label}: search answered {status or 'nothing'!r}", "protocol")
        items = [self._item(item, track) for item in _all(root, "searchMatchItem")]
        return status, items

    def _item(self, item: etree._Element, track: int) -> Segment:
        start, end = _text(item, "startTime"), _text(item, "endTime")
        uri = _text(item, "playbackURI")
        if not (start and end and uri):
            raise IsapiError(f"{self.label}: a search result lacks its times or URI", "protocol")
        try:
            first, last = parse_time(start), parse_time(end)
        except ValueError:
            raise IsapiError(f"{self.label}: a search result has a bad time", "protocol") from None
        number = _text(item, "trackID")
        return Segment(int(number) if number and number.isdigit() else track, first, last, uri)


def format_time(moment: datetime) -> str:
    """A wall-clock time as ISAPI search wants it (labelled Z, as the firmwares do)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISAPI time: `Z` or no zone -> naive (the recorder's wall clock), an offset -> aware."""
    text = text.strip()
    moment = datetime.fromisoformat(text.removesuffix("Z").removesuffix("z"))
    return moment.replace(tzinfo=None) if text[-1:] in "Zz" else moment


def _search_body(search_id: str, track: int, start: datetime, end: datetime, at: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<CMSearchDescription>'
        f"<searchID>{search_id}</searchID>"
        f"<trackIDList><trackID>{track}</trackID></trackIDList>"
        f"<timeSpanList><timeSpan><startTime>{format_time(start)}</startTime>"
        f"<endTime>{format_time(end)}</endTime></timeSpan></timeSpanList>"
        f"<maxResults>{PAGE}</maxResults>"
        f"<searchResultPostion>{at}</searchResultPostion>"  # sic: ISAPI spells it so
        "<metadataList><metadataDescriptor>//recordType.meta.std-cgi.com</metadataDescriptor>"
        "</metadataList></CMSearchDescription>"
    ).encode()


def _all(root: etree._Element, name: str) -> list[etree._Element]:
    return list(root.iter(f"{{*}}{name}"))  # in any namespace, or none


def _text(root: etree._Element, name: str) -> str | None:
    found = _all(root, name)
    return found[0].text.strip() if found and found[0].text else None


def _texts(root: etree._Element, parent: str, name: str) -> list[str]:
    return [t for p in _all(root, parent) if (t := _text(p, name))]
