"""What an ONVIF Profile G recorder holds, and where to replay it from.

`open_archive(url, username, password)` connects to a recorder's device service (reading
its clock first: `onvif_clock`), asks `GetServices` where its search and replay services
are, and returns an `Archive` with three calls:

- `recordings()`: every recording (`FindRecordings`, then `GetRecordingSearchResults` page
  by page until the search state is `Completed`, and `EndSearch` always, also after an
  error, so no search session is left open on the device), with its tracks' `DataFrom` and
  `DataTo`.
- `data_spans(recording, start, end)`: where the recording's video track holds data in
  [start, end): its `DataFrom`..`DataTo`, with the gaps cut out that `FindEvents` reports
  (`tns1:RecordingHistory/Track/State`, `IsDataPresent`). A device without FindEvents, or
  one that reports no such events, gives `DataFrom`..`DataTo` only.
- `replay_uri(token)`: `GetReplayUri` for RTP unicast over RTSP (interleaved TCP); the RTSP
  replay itself is `adapters.replay`.

Times are aware UTC datetimes. Failures are one `ArchiveError`, whose `code` is `auth`
(wrong username or password), `unreachable` or `protocol` (the device answered, but not as
a recorder should), with a one-line message naming the recorder by its URL without
credentials, and never the password.

The SOAP calls go through onvif-python's service classes, as `adapters.onvif` does, but
built from the XAddrs this module reads itself: `ONVIFClient` hides a failed GetServices
(wrong password, skewed clock) and falls back to guessed URLs, which turns a wrong password
into a confusing "not found". The XAddrs are also pinned to the host and port the site
configured: a recorder behind NAT reports its inner address, and a signed request goes
nowhere the operator did not name. The replay URI keeps its RTSP port but gets the same host,
so the RTSP digest goes nowhere else either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from lxml import etree

from privmask.adapters import urls
from privmask.adapters.onvif_clock import DeviceClock
from privmask.adapters.onvif_errors import classify

ArchiveCode = Literal["auth", "unreachable", "protocol"]
SEARCH_NS = "http://www.onvif.org/ver10/search/wsdl"
REPLAY_NS = "http://www.onvif.org/ver10/replay/wsdl"
TOPIC = "tns1:RecordingHistory/Track/State"
KEEP_ALIVE = timedelta(seconds=30)  # the device ends a search we stop asking about
WAIT = 2.0  # longest (s) a results call may block on the device, within half the timeout
PAGE = 50  # results per page asked for


class ArchiveError(Exception):
    """The recorder cannot be asked now; the message names it, never the password."""

    def __init__(self, code: ArchiveCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Track:
    token: str
    kind: str  # Video, Audio, Metadata, Extended
    data_from: datetime | None
    data_to: datetime | None


@dataclass(frozen=True)
class RecordingInfo:
    """One recording: one source (camera) and its tracks."""

    token: str
    source_id: str
    source_name: str
    tracks: tuple[Track, ...]
    status: str = ""  # RecordingStatus: Recording, Stopped, Removed, ... ("" if not told)

    @property
    def video(self) -> Track | None:
        """The first video track with data (a Profile G recording has one per stream)."""
        for track in self.tracks:
            if track.kind == "Video" and track.data_from and track.data_to:
                return track
        return None


def open_archive(url: str, username: str, password: str, timeout: float = 10.0) -> Archive:
    """Connect to the recorder whose device service is at `url`: clock, GetServices."""
    return Archive(url, username, password, timeout)


class Archive:
    """One recorder's search and replay services, signed on the recorder's clock."""

    def __init__(self, url: str, username: str, password: str, timeout: float) -> None:
        from onvif import CacheMode
        from onvif.services import Device

        self.address = urls.redact(url)
        self._password = password
        self._deadline_s = max(60.0, 6 * timeout)
        self._wait = timedelta(seconds=min(WAIT, timeout / 2))
        parts = urlsplit(url)
        self._origin = (parts.scheme, parts.netloc.rpartition("@")[2])
        self._clock = DeviceClock(username, password)
        self._common: dict[str, Any] = {
            "host": parts.hostname or "",
            "port": parts.port or (443 if parts.scheme == "https" else 80),
            "username": None,  # the clock plugin signs; onvif-python adds no token of its own
            "password": None,
            "timeout": max(1, round(timeout)),
            "cache": CacheMode.NONE,  # the WSDLs are local files; no cache file in $HOME
            "use_https": parts.scheme == "https",
            "plugins": [self._clock],
        }
        self._events = True
        with self._errors():
            device = Device(xaddr=self._pinned(url), **self._common)
            self._clock.sync(device.GetSystemDateAndTime)
            services = self._clock.call(device.GetServices, IncludeCapability=False) or []
            self._xaddrs = {str(s.Namespace): str(s.XAddr) for s in services if s.XAddr}
        self._services: dict[str, Any] = {}  # built when first used: each parses its WSDL
        if SEARCH_NS not in self._xaddrs:
            raise ArchiveError(
                "protocol", f"ONVIF recorder {self.address}: has no recording search service "
                "(not ONVIF Profile G)"
            )  # fmt: skip

    def recordings(self) -> tuple[RecordingInfo, ...]:
        """Every recording the recorder holds, all result pages."""
        with self._errors():
            token = self._call(
                self._search.FindRecordings, Scope={}, KeepAliveTime=KEEP_ALIVE, MaxMatches=None
            )
            pages = self._pages(self._search.GetRecordingSearchResults, str(token))
            return tuple(
                _recording(raw) for page in pages for raw in page.RecordingInformation or ()
            )

    def data_spans(
        self, recording: RecordingInfo, start: datetime, end: datetime
    ) -> tuple[tuple[datetime, datetime], ...]:
        """Where `recording`'s video track holds data within [start, end), in order."""
        video = recording.video
        if video is None or video.data_from is None or video.data_to is None:
            return ()
        whole = _clip([(video.data_from, video.data_to)], start, end)
        if not whole or not self._events:
            return whole
        changes = self._track_states(recording.token, video.token, start, end)
        if changes is None:
            return whole
        return _intersect(_present(changes, start, end), whole)

    def replay_uri(self, recording_token: str) -> str:
        """Where the recording is replayed (RTSP; may carry credentials: never log it)."""
        setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        with self._errors():
            answer = self._call(
                self._replay.GetReplayUri, StreamSetup=setup, RecordingToken=recording_token
            )
        uri = str(getattr(answer, "Uri", answer) or "")
        if not uri.startswith(("rtsp://", "rtsps://")):
            raise ArchiveError("protocol", f"ONVIF recorder {self.address}: no RTSP replay URI")
        return self._pinned_replay(uri)

    def _pinned_replay(self, uri: str) -> str:
        """`uri` on the recorder's configured host (its own RTSP port kept): a recorder's
        answer must not send the replay, and a digest of the password, to another host."""
        parts = urlsplit(uri)
        host = urlsplit(f"//{self._origin[1]}").hostname or ""
        host = f"[{host}]" if ":" in host else host
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        netloc = f"{userinfo}@{netloc}" if userinfo else netloc
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    # --- the calls --------------------------------------------------------------------

    def _track_states(
        self, recording: str, track: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, bool]] | None:
        """The video track's data-present changes (a start state first), or None when the
        recorder cannot search events or reports none."""
        topic = etree.Element(
            "{http://docs.oasis-open.org/wsn/b-2}TopicExpression",
            Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet",
            nsmap={"tns1": "http://www.onvif.org/ver10/topics"},
        )
        topic.text = TOPIC
        with self._errors():
            try:
                token = self._call(
                    self._search.FindEvents,
                    StartPoint=start,
                    EndPoint=end,
                    Scope={"IncludedRecordings": [recording]},
                    SearchFilter={"_value_1": [topic]},  # tt:EventFilter is xsd:any
                    IncludeStartState=True,
                    KeepAliveTime=KEEP_ALIVE,
                )
            except Exception as exc:
                if classify(exc)[0] != "protocol":
                    raise
                self._events = False  # optional in practice: DataFrom/DataTo it is
                return None
            pages = self._pages(self._search.GetEventSearchResults, str(token))
            changes = [
                change
                for page in pages
                for result in page.Result or ()
                if (change := _state_change(result, track)) is not None
            ]
        # sorted is stable: the start state, sent first, stays before a change at its instant
        return sorted(changes, key=lambda c: c[0]) or None

    def _pages(self, results: Callable[..., Any], token: str) -> list[Any]:
        """Every answer of one search session until Completed; EndSearch in any case."""
        pages: list[Any] = []
        deadline = time.monotonic() + self._deadline_s
        try:
            while True:
                page = self._call(results, SearchToken=token, MaxResults=PAGE, WaitTime=self._wait)
                pages.append(page)
                if str(page.SearchState) == "Completed":
                    return pages
                if time.monotonic() > deadline:
                    raise ArchiveError(
                        "protocol", f"ONVIF recorder {self.address}: the search never completed"
                    )
        finally:
            self._end(token)

    def _end(self, token: str) -> None:
        # the device drops a search after KeepAliveTime anyway; the error that brought us
        # here, if any, is the one to report
        with suppress(Exception):
            self._search.EndSearch(SearchToken=token)

    def _call(self, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        return self._clock.call(method, **kwargs)

    @property
    def _search(self) -> Any:
        return self._service("Search", SEARCH_NS, "recording search")

    @property
    def _replay(self) -> Any:
        return self._service("Replay", REPLAY_NS, "replay")

    def _service(self, kind: str, namespace: str, what: str) -> Any:
        if kind not in self._services:
            xaddr = self._xaddrs.get(namespace)
            if xaddr is None:
                raise ArchiveError(
                    "protocol", f"ONVIF recorder {self.address}: has no {what} service"
                )
            import onvif.services

            with self._errors():
                service = getattr(onvif.services, kind)(xaddr=self._pinned(xaddr), **self._common)
            self._services[kind] = service
        return self._services[kind]

    def _pinned(self, xaddr: str) -> str:
        """`xaddr` on the configured scheme, host and port (see the module's docstring)."""
        parts = urlsplit(xaddr)
        return urlunsplit((*self._origin, parts.path, parts.query, ""))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Anything the client raises becomes one ArchiveError naming the recorder."""
        try:
            yield
        except ArchiveError:
            raise
        except Exception as exc:
            kind, message = classify(exc)
            code: ArchiveCode = "auth" if kind == "unauthorized" else kind
            if self._password:
                message = message.replace(self._password, "***")
            raise ArchiveError(code, f"ONVIF recorder {self.address}: {message}") from None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:  # xs:dateTime without a zone: ONVIF times are UTC
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _recording(raw: Any) -> RecordingInfo:
    source = getattr(raw, "Source", None)
    tracks = tuple(
        Track(
            token=str(t.TrackToken),
            kind=str(t.TrackType),
            data_from=_utc(t.DataFrom),
            data_to=_utc(t.DataTo),
        )
        for t in raw.Track or ()
    )
    return RecordingInfo(
        token=str(raw.RecordingToken),
        source_id=str(getattr(source, "SourceId", "") or ""),
        source_name=str(getattr(source, "Name", "") or ""),
        tracks=tracks,
        status=str(getattr(raw, "RecordingStatus", "") or ""),
    )


def _state_change(result: Any, track: str) -> tuple[datetime, bool] | None:
    """(time, data present) from one FindEvents result about `track`, else None."""
    if str(result.TrackToken or track) != track:
        return None
    when = _utc(result.Time)
    present = _is_data_present(getattr(result, "Event", None))
    if when is None or present is None:
        return None
    return when, present


def _is_data_present(event: Any) -> bool | None:
    """The IsDataPresent item of an event's message, or None. zeep parses a `tt:Message`
    it knows into objects and leaves anything else as lxml elements (xsd:any)."""
    message = getattr(event, "Message", None)
    content = getattr(message, "_value_1", message)
    for item in _simple_items(content):
        if item[0] == "IsDataPresent":
            return item[1].strip().lower() in ("true", "1")
    return None


def _simple_items(content: Any) -> Iterator[tuple[str, str]]:
    """(Name, Value) of the Data items of a tt:Message, parsed or raw."""
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, etree._Element):
            for element in part.iterfind(".//{*}Data/{*}SimpleItem"):
                yield element.get("Name") or "", element.get("Value") or ""
        else:
            for item in getattr(getattr(part, "Data", None), "SimpleItem", None) or ():
                yield str(getattr(item, "Name", "")), str(getattr(item, "Value", ""))


def _present(
    changes: list[tuple[datetime, bool]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The stretches of [start, end) with data, from time-ordered state changes; before
    the first change the state is the opposite of it (unless it is at `start`)."""
    spans: list[tuple[datetime, datetime]] = []
    first_at, first_present = changes[0]
    opened: datetime | None = start if not first_present and first_at > start else None
    for at, present in changes:
        at = min(max(at, start), end)
        if present and opened is None:
            opened = at
        elif not present and opened is not None:
            spans.append((opened, at))
            opened = None
    if opened is not None:
        spans.append((opened, end))
    return [(a, b) for a, b in spans if a < b]


def _clip(
    spans: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime], ...]:
    clipped = ((max(a, start), min(b, end)) for a, b in spans)
    return tuple((a, b) for a, b in clipped if a < b)


def _intersect(
    spans: list[tuple[datetime, datetime]], within: tuple[tuple[datetime, datetime], ...]
) -> tuple[tuple[datetime, datetime], ...]:
    return tuple(
        (max(a, c), min(b, d)) for a, b in spans for c, d in within if max(a, c) < min(b, d)
    )
