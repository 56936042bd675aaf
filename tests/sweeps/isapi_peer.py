"""A Hikvision recorder's ISAPI for the tests: record tracks, search (paged: the recorder
gives at most `page` items whatever is asked, and answers MORE until the last page, NO
MATCHES when nothing matches) and download (the body must carry the playback URI with `&`
escaped), behind digest auth. Times are the recorder's wall clock labelled Z, as many
firmwares write them. The files served are real program streams (`vendor_media.write_ps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from digest_peer import Answer, DigestPeer
from lxml import etree
from vendor_media import FPS, numbered_frames, write_ps

_NS = "http://www.hikvision.com/ver20/XMLSchema"
ONE_CHUNK_PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class PeerSegment:
    track: int
    start: datetime  # the recorder's wall clock
    end: datetime
    file: Path

    @property
    def uri(self) -> str:
        stamp = "%Y%m%dT%H%M%SZ"
        return (
            f"rtsp://127.0.0.1/Streaming/tracks/{self.track}/?starttime="
            f"{self.start.strftime(stamp)}&endtime={self.end.strftime(stamp)}"
            f"&name=ch01_{self.file.stem}&size={self.file.stat().st_size}"
        )


class IsapiPeer(DigestPeer):
    def __init__(
        self, username: str, password: str, segments: list[PeerSegment], page: int = 3
    ) -> None:
        super().__init__(username, password)
        self.segments, self.page = segments, page
        self.positions: list[int] = []  # searchResultPostion of each search page asked
        self.busy = 0  # downloads to answer 400 first, as recorders do to back-to-back ones
        self.breaking = 0  # downloads to break off half way

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        if path == "/ISAPI/ContentMgmt/record/tracks" and method == "GET":
            return self._tracks()
        if path == "/ISAPI/ContentMgmt/search" and method == "POST":
            return self._search(etree.fromstring(body))
        if path == "/ISAPI/ContentMgmt/download" and method in ("GET", "POST"):
            return self._download(etree.fromstring(body))
        return Answer(404, b"not found")

    def _tracks(self) -> Answer:
        tracks = sorted({s.track for s in self.segments})
        items = "".join(f"<Track><id>{t}</id><Channel>{t // 100}</Channel></Track>" for t in tracks)
        return _xml(f'<TrackList version="2.0" xmlns="{_NS}">{items}</TrackList>')

    def _search(self, query: etree._Element) -> Answer:
        track = int(_text(query, "trackID"))
        start, end = (_when(_text(query, k)) for k in ("startTime", "endTime"))
        position = int(_text(query, "searchResultPostion"))
        self.positions.append(position)
        wanted = min(int(_text(query, "maxResults")), self.page)
        matches = [s for s in self.segments if s.track == track and s.start < end and s.end > start]
        if not matches:
            return _xml(_result("NO MATCHES", []))
        shown = matches[position : position + wanted]
        more = position + len(shown) < len(matches)
        return _xml(_result("MORE" if more else "OK", shown))

    def _download(self, request: etree._Element) -> Answer:
        uri = _text(request, "playbackURI")
        if self.busy:
            self.busy -= 1
            return Answer(400, b"<ResponseStatus><statusString>Device Busy</statusString>")
        for segment in self.segments:
            if segment.uri == uri:
                broken, self.breaking = self.breaking > 0, max(0, self.breaking - 1)
                return Answer(200, segment.file, "application/octet-stream", broken)
        return Answer(404, b"no such recording")


def _result(status: str, segments: list[PeerSegment]) -> str:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    items = "".join(
        f"<searchMatchItem><sourceID>{{0000}}</sourceID><trackID>{s.track}</trackID>"
        f"<timeSpan><startTime>{s.start.strftime(stamp)}</startTime>"
        f"<endTime>{s.end.strftime(stamp)}</endTime></timeSpan>"
        "<mediaSegmentDescriptor><contentType>video</contentType><codecType>H.264-BP</codecType>"
        f"<playbackURI>{escape(s.uri)}</playbackURI></mediaSegmentDescriptor></searchMatchItem>"
        for s in segments
    )
    return (
        f'<CMSearchResult version="2.0" xmlns="{_NS}"><searchID>{{1}}</searchID>'
        f"<responseStatus>true</responseStatus><responseStatusStrg>{status}</responseStatusStrg>"
        f"<numOfMatches>{len(segments)}</numOfMatches><matchList>{items}</matchList>"
        "</CMSearchResult>"
    )


def _xml(text: str) -> Answer:
    return Answer(
        200, ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode(), "application/xml"
    )


def _text(root: etree._Element, name: str) -> str:
    found = next(root.iter(f"{{*}}{name}"), None)
    if found is None or found.text is None:
        raise ValueError(f"the request has no {name}")
    return found.text.strip()


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def one_chunk_recorder(folder: Path) -> tuple[IsapiPeer, Path]:
    """A recorder holding 3 s of track 101 from 10:00 on 1 March 2026 (its clock), and the
    file under `folder` its password is in (for `nvr_sweep`)."""
    wall = datetime(2026, 3, 1, 10, 0, 0)
    ps = write_ps(folder / "00000001.ps", numbered_frames(3 * FPS))
    secret = folder / "nvr-password"
    secret.write_text(f"{ONE_CHUNK_PASSWORD}\n")
    secret.chmod(0o600)
    segment = PeerSegment(101, wall, wall.replace(second=3), ps)
    return IsapiPeer("admin", ONE_CHUNK_PASSWORD, [segment]), secret


def nvr_sweep(recorder: IsapiPeer, secret: Path) -> dict[str, Any]:
    """The sweep `nvr` of a running `one_chunk_recorder`, in 1-minute chunks."""
    return {"name": "nvr", "schedule": "0 * * * *", "chunk_minutes": 1,
            "source": {"isapi": recorder.url, "username": "admin",
                       "password": {"file": str(secret)}}}  # fmt: skip
