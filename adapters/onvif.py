"""ONVIF cameras: find them (WS-Discovery) and read what privmask needs from each.

The rest of privmask sees only this module's plain types and two sync calls:

- ``discover(interface, timeout) -> list[DiscoveredDevice]``: one WS-Discovery probe.
- ``describe(device, credentials) -> CameraInfo | CameraError``: GetDeviceInformation,
  GetProfiles, GetStreamUri (main and sub), GetSnapshotUri; with credentials, every call
  is signed on the camera's own clock (``onvif_clock``: cameras are often hours off, and
  a token signed on ours would be refused as a wrong password).

Why the probe is our own (about 60 lines of UDP and XML) rather than a library's: it is the
one place where pinning to an interface matters (multicast goes out of, and is answered on,
the interface the site names, including loopback for tests), and the libraries' probes
either pull in an async stack or cannot be pinned. The SOAP calls go through onvif-python
(sync, zeep + requests, ships the ONVIF WSDLs), kept entirely inside ``describe`` so the
client can be swapped without touching callers.

Only replies to our own probe count: a ProbeMatches whose RelatesTo is not the probe's
MessageID (or that has none) is dropped, because anyone on the segment can send one, and the
device it names is then asked questions. That alone does not make a responder trustworthy
(it can answer our probe too), so which device gets credentials is the caller's decision:
only a camera the secrets file names (``privmask.daemon.cameras``).

Credentials never leave this module inside a URL: every URI a camera returns goes through
``urls.redact`` before it is put in a result, because cameras commonly embed
``user:pass@`` or ``?user=..&password=..`` in stream URIs.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from privmask.adapters import urls
from privmask.adapters.onvif_clock import DeviceClock
from privmask.adapters.onvif_errors import ErrorKind, classify

# onvif-python and zeep log every failed call at ERROR; a camera's failure is reported
# once, as a CameraError, by the caller, so their own records are dropped here.
for _name in ("onvif", "zeep"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False

MULTICAST_GROUP = ("239.255.255.250", 3702)
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
}
PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" \
xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" \
xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" \
xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<s:Header>
<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>
<a:MessageID>{message_id}</a:MessageID>
<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous\
</a:Address></a:ReplyTo>
<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
</s:Header>
<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>"""

# a parser that never fetches anything and never expands entities: answers come from
# the network, possibly from anyone on the segment
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)



class DiscoveryError(Exception):
    """The probe could not be sent at all (bad interface address, no multicast route)."""


@dataclass(frozen=True)
class DiscoveredDevice:
    """One WS-Discovery ProbeMatch: who answered and where its device service is."""

    endpoint: str  # the EndpointReference address, usually urn:uuid:...
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """The device service URL used for every call (the first XAddr), without secrets."""
        return urls.redact(self.xaddrs[0]) if self.xaddrs else ""

    @property
    def host_port(self) -> str:
        parts = urlsplit(self.address)
        return f"{parts.hostname}:{parts.port or 80}"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class CameraInfo:
    """What a camera told us; every URI already stripped of credentials."""

    endpoint: str
    address: str
    manufacturer: str
    model: str
    firmware: str
    serial: str
    profiles: tuple[Profile, ...]
    main_stream: str | None
    sub_stream: str | None
    snapshot: str | None


@dataclass(frozen=True)
class CameraError:
    """Why one camera could not be described; the others are unaffected."""

    endpoint: str
    address: str
    kind: ErrorKind
    message: str


def discover(interface: str | None = None, timeout: float = 3.0) -> list[DiscoveredDevice]:
    """Send one WS-Discovery probe and collect the ProbeMatches for `timeout` seconds.

    `interface` is the IPv4 address of the interface to probe on (``127.0.0.1`` for
    loopback); None lets the routing table choose. Devices are returned once each (by
    endpoint), in the order they answered.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.bind((interface or "", 0))
        message_id = f"urn:uuid:{uuid.uuid4()}"
        probe = PROBE.format(message_id=message_id).encode()
        # UDP may drop one; answers are deduplicated by endpoint anyway
        for _ in range(2):
            sock.sendto(probe, MULTICAST_GROUP)
    except OSError as exc:
        sock.close()
        where = f"on interface {interface}" if interface else "(no interface given)"
        raise DiscoveryError(f"cannot send the WS-Discovery probe {where}: {exc}") from None
    found: dict[str, DiscoveredDevice] = {}
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                break
            for device in parse_probe_matches(data, message_id):
                found.setdefault(device.endpoint, device)
    finally:
        sock.close()
    return list(found.values())


def parse_probe_matches(data: bytes, message_id: str | None = None) -> list[DiscoveredDevice]:
    """The devices in one ProbeMatches datagram; anything malformed or unrelated is [].

    With `message_id`, a datagram counts only when its RelatesTo is that id: a reply with
    none, or one to another probe, is dropped.
    """
    try:
        root = etree.fromstring(data, _SAFE_XML)
    except etree.XMLSyntaxError:
        return []
    # only an answer to our own probe is a device: anyone on the segment can send a
    # ProbeMatches, and what it names is then sent requests (and perhaps credentials)
    if message_id is not None:
        relates = root.findtext("s:Header/a:RelatesTo", namespaces=NS)
        if relates is None or relates.strip() != message_id:
            return []
    devices = []
    for match in root.iterfind(".//d:ProbeMatch", NS):
        # the spec puts EndpointReference in the addressing namespace; some devices
        # (ipycam among them) put it in the discovery one
        endpoint = (
            match.findtext("a:EndpointReference/a:Address", namespaces=NS)
            or match.findtext("d:EndpointReference/a:Address", namespaces=NS)
            or ""
        ).strip()
        xaddrs = tuple((match.findtext("d:XAddrs", namespaces=NS) or "").split())
        scopes = tuple((match.findtext("d:Scopes", namespaces=NS) or "").split())
        http = tuple(x for x in xaddrs if x.startswith(("http://", "https://")))
        if endpoint and http:
            devices.append(DiscoveredDevice(endpoint, http, scopes))
    return devices


def describe(
    device: DiscoveredDevice, credentials: Credentials | None, timeout: float = 5.0
) -> CameraInfo | CameraError:
    """Ask one camera who it is and where its streams are; never raises for the camera's
    own failures (wrong password, refused, timed out, nonsense answers)."""
    try:
        return _describe(device, credentials, timeout)
    except Exception as exc:  # the client raises many types; each becomes one CameraError
        kind, message = classify(exc)
        return CameraError(device.endpoint, device.address, kind, message)


def _describe(
    device: DiscoveredDevice, credentials: Credentials | None, timeout: float
) -> CameraInfo:
    from onvif import CacheMode, ONVIFClient

    parts = urlsplit(device.xaddrs[0])
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    common: dict[str, Any] = {
        "timeout": max(1, round(timeout)),
        "cache": CacheMode.NONE,  # the WSDLs are local files; no cache file in $HOME
        "use_https": parts.scheme == "https",
    }
    if credentials is not None:
        common["plugins"] = [_signing(device.xaddrs[0], host, port, credentials, common)]
    # no username and password of its own: the plugin signs (onvif-python would sign
    # on the host's clock, and its GetServices in here would fail and fall back to guesses)
    client = ONVIFClient(host, port, None, None, **common)
    info = client.devicemgmt().GetDeviceInformation()
    media = client.media()
    raw_profiles = list(media.GetProfiles() or [])
    profiles = tuple(_profile(p) for p in raw_profiles)
    # main = largest picture, sub = the next one: cameras do not agree on profile order
    ranked = sorted(profiles, key=lambda p: (p.width or 0) * (p.height or 0), reverse=True)
    setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}

    def stream(profile: Profile | None) -> str | None:
        if profile is None:
            return None
        return _clean(media.GetStreamUri(StreamSetup=setup, ProfileToken=profile.token).Uri)

    main = ranked[0] if ranked else None
    sub = ranked[1] if len(ranked) > 1 else None
    snapshot = None
    if main is not None:
        try:
            snapshot = _clean(media.GetSnapshotUri(ProfileToken=main.token).Uri)
        except Exception as exc:  # optional in ONVIF Profile S; a camera may refuse it
            if classify(exc)[0] != "protocol":
                raise
    return CameraInfo(
        endpoint=device.endpoint,
        address=device.address,
        manufacturer=str(info.Manufacturer or ""),
        model=str(info.Model or ""),
        firmware=str(info.FirmwareVersion or ""),
        serial=str(info.SerialNumber or "").strip(),
        profiles=profiles,
        main_stream=stream(main),
        sub_stream=stream(sub),
        snapshot=snapshot,
    )


def _signing(
    xaddr: str, host: str, port: int, credentials: Credentials, common: dict[str, Any]
) -> Any:
    """A `DeviceClock` set to the camera's clock (GetSystemDateAndTime, unauthenticated).
    A camera that will not tell its time is signed for on ours, as before; one that
    cannot be reached fails here."""
    from onvif.services import Device


    clock = DeviceClock(credentials.username, credentials.password)
    service = Device(xaddr=xaddr, host=host, port=port, username=None, password=None, **common)
    try:
        clock.sync(service.GetSystemDateAndTime)
    except Exception as exc:
        if classify(exc)[0] == "unreachable":
            raise
    return clock


def _clean(uri: Any) -> str | None:
    return urls.redact(str(uri)) if uri else None


def _profile(raw: Any) -> Profile:
    encoder = getattr(raw, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    return Profile(
        token=str(raw.token),
        name=str(getattr(raw, "Name", "") or ""),
        encoding=str(encoder.Encoding) if encoder is not None and encoder.Encoding else None,
        width=int(resolution.Width) if resolution is not None else None,
        height=int(resolution.Height) if resolution is not None else None,
    )
