"""The camera inventory: which ONVIF cameras the site has, by a stable id, and their state.

Why a stable id: rule files name cameras, and a camera's IP address and even its
WS-Discovery endpoint UUID can change (DHCP, a factory reset, a peer like ipycam that makes
a new UUID at each start). The serial number does not, so it is the id; only a camera that
will not tell its serial (wrong password, unreachable) is kept under its endpoint UUID until
it does, and is then moved to its serial without losing its history.

The inventory is one JSON file in the state folder (``cameras.json``), rewritten atomically
and durably (``adapters.files``) under a lock, so the daemon's scheduled re-discovery and a
`privmask cameras discover --state` at the same time cannot lose each other's updates. No
credential is ever written to it: URIs come stripped from the ONVIF adapter and are
stripped again here.

Secrets are a YAML or JSON mapping from a camera's address (``host`` or ``host:port``), its
device service or stream URL, its endpoint UUID, its serial or its camera id to
``{username, password}``. The file must not be readable by others. `Secrets.lookup` is the
one place that picks an entry, for discovery (`Secrets.for_device`) and for live streams
(`live_streams`) alike.

Credentials go only to cameras the file names. The key ``"*"`` is the default for the
stream URLs the operator pinned in the configuration (``cameras.streams``) and for nothing
else: never for a device that answered WS-Discovery, nor for a stream URL the inventory
learned from one. Anyone on the segment can answer a probe, and a WS-Security digest or
an HTTP Digest answer lets its receiver guess the password offline, so a ``"*"`` sent to
every responder handed the site's camera password to whoever asked. Such a camera is
reported as `unauthorized`, with a message saying that no entry names it. Keys by serial
or endpoint are what the device says about itself; a key by address is the strongest.
(YAML anchors, ``&cam`` and ``*cam``, give several keys the same credentials.)
"""

from __future__ import annotations

import fcntl
import json
import stat
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import yaml

from privmask.adapters import files, onvif, urls
from privmask.adapters.onvif import CameraError, CameraInfo, Credentials, DiscoveredDevice
from privmask.daemon.secrets import SecretError
from privmask.rules import yamlfile

if TYPE_CHECKING:
    from privmask.daemon.camera_settings import CamerasSpec

log = structlog.get_logger("privmask.cameras")

INVENTORY_FILE = "cameras.json"
INVENTORY_VERSION = 1
# the fields whose change is a `camera_changed` event (not first/last seen, not state)
IDENTITY_FIELDS = (
    "address",
    "endpoint",
    "manufacturer",
    "model",
    "firmware",
    "serial",
    "main_stream",
    "sub_stream",
    "snapshot",
    "profiles",
)
URI_FIELDS = ("address", "main_stream", "sub_stream", "snapshot")


class InventoryError(Exception):
    """The inventory file exists but cannot be read as one; the message names it."""


@dataclass(frozen=True)
class CameraEvent:
    """One change in the inventory, as logged: `camera_added`, `camera_offline`,
    `camera_online`, `camera_changed` or `camera_error`."""

    event: str
    camera: str
    address: str
    detail: str = ""


# ---------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Secrets:
    """Camera credentials by key (address, URL, endpoint, serial, camera id, or "*")."""

    entries: Mapping[str, Credentials]

    def lookup(self, *keys: str | None, pinned: bool = False) -> Credentials | None:
        """The entry of the first key that has one (keys most specific first); "*" only
        when `pinned`: for an address the operator wrote in the configuration."""
        for key in (*keys, "*") if pinned else keys:
            if key and key in self.entries:
                return self.entries[key]
        return None

    def for_device(self, device: DiscoveredDevice, serial: str | None = None) -> Credentials | None:
        """The entry naming this device: serial, endpoint, device URL, host:port, host.
        Never "*": the device only answered a probe, which anyone can."""
        return self.lookup(
            serial,
            device.endpoint,
            device.endpoint.removeprefix("urn:uuid:"),
            device.address,
            device.host_port,
            *urls.host_keys(device.address),
        )


def load_secrets(path: Path) -> Secrets:
    """Read a secrets file; refuses one that others can read, and never quotes a value."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXO | stat.S_IRWXG):
            raise SecretError(
                f"{path}: camera secrets file must not be readable by group or others "
                f"(mode {stat.filemode(mode)}; run chmod 600 {path})"
            )
        # within the bounds of rule and config files: whoever can write it may be hostile
        _, raw = yamlfile.load(yamlfile.read_text(path, "a camera secrets file"))
    except OSError as exc:
        raise SecretError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SecretError(f"{path}: not UTF-8 text") from None
    except yamlfile.YamlLimitError as exc:  # its message quotes nothing from the file
        raise SecretError(f"{path}:{exc.line}:{exc.column}: {exc.message}") from None
    except yaml.YAMLError:
        raise SecretError(f"{path}: not valid YAML or JSON") from None
    if isinstance(raw, dict) and isinstance(raw.get("cameras"), dict):
        raw = raw["cameras"]
    if not isinstance(raw, dict):
        raise SecretError(f"{path}: must be a mapping of camera -> {{username, password}}")
    entries: dict[str, Credentials] = {}
    for key, value in raw.items():
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("username"), str)
            or not isinstance(value.get("password"), str | int)
        ):
            raise SecretError(f"{path}: entry {key!r} needs a username and a password")
        entries[str(key)] = Credentials(value["username"], str(value["password"]))
    return Secrets(entries)


# ---------------------------------------------------------------- inventory file


def inventory_path(state: Path) -> Path:
    return state / INVENTORY_FILE


def load_inventory(path: Path) -> dict[str, dict[str, Any]]:
    """The cameras by id; an absent file is an empty inventory."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError:
        raise InventoryError(f"{path}: not a camera inventory (invalid JSON)") from None
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cameras, dict):
        raise InventoryError(f"{path}: not a camera inventory (no 'cameras' mapping)")
    return cameras


def save_inventory(path: Path, cameras: Mapping[str, Mapping[str, Any]]) -> None:
    """Write atomically and durably: a reader never sees half a file, nor loses a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(
        {"version": INVENTORY_VERSION, "cameras": dict(sorted(cameras.items()))}, indent=2
    )
    files.write_file(path, (body + "\n").encode("utf-8"), overwrite=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------- merging


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def camera_id(result: CameraInfo | CameraError) -> str:
    """Serial when known, else the endpoint UUID (without its urn:uuid: prefix)."""
    if isinstance(result, CameraInfo) and result.serial:
        return result.serial
    return result.endpoint.removeprefix("urn:uuid:") or result.address


def _record(info: CameraInfo) -> dict[str, Any]:
    record = asdict(info)
    record["profiles"] = [asdict(p) for p in info.profiles]
    for key in URI_FIELDS:
        if record.get(key):
            record[key] = urls.redact(record[key])
    return record


def merge(
    cameras: Mapping[str, Mapping[str, Any]],
    results: Sequence[CameraInfo | CameraError],
    now: str | None = None,
) -> tuple[dict[str, dict[str, Any]], list[CameraEvent]]:
    """The inventory after one discovery round, and what changed.

    Pure (no I/O) so it is tested on its own. A camera seen now is online (or `error` when
    it answered discovery but could not be described); one known but not seen is offline.
    """
    now = now or _now()
    merged = {k: dict(v) for k, v in cameras.items()}
    events: list[CameraEvent] = []
    seen: set[str] = set()
    for result in results:
        cid = _known_id(merged, result)
        old = merged.get(cid)
        if isinstance(result, CameraInfo) and old is None:
            # a camera first met without its serial (e.g. wrong password) moves to it now
            placeholder = result.endpoint.removeprefix("urn:uuid:")
            if placeholder in merged and not merged[placeholder].get("serial"):
                old = merged.pop(placeholder)
        seen.add(cid)
        if isinstance(result, CameraInfo):
            record = {**(old or {}), **_record(result), "state": "online", "error": None}
        else:
            record = {
                **(old or {"endpoint": result.endpoint, "serial": None}),
                "address": result.address,
                "state": "error",
                "error": f"{result.kind}: {result.message}",
            }
        record["id"] = cid
        record["first_seen"] = (old or {}).get("first_seen") or now
        record["last_seen"] = now
        merged[cid] = record
        address = record.get("address") or ""
        if old is None:
            events.append(CameraEvent("camera_added", cid, address, record.get("model") or ""))
        elif old.get("state") != "online" and record["state"] == "online":
            events.append(CameraEvent("camera_online", cid, address))
        if isinstance(result, CameraError) and (old is None or old.get("error") != record["error"]):
            events.append(CameraEvent("camera_error", cid, address, record["error"]))
        if old is not None and isinstance(result, CameraInfo):
            changed = [f for f in IDENTITY_FIELDS if f in old and old.get(f) != record.get(f)]
            if changed:
                events.append(CameraEvent("camera_changed", cid, address, ",".join(changed)))
    for cid, record in merged.items():
        if cid not in seen and record.get("state") != "offline":
            record["state"] = "offline"
            events.append(CameraEvent("camera_offline", cid, record.get("address") or ""))
    return merged, events


def _known_id(cameras: Mapping[str, Mapping[str, Any]], result: CameraInfo | CameraError) -> str:
    """An error result keeps the id its camera already has (found by endpoint or address)."""
    if isinstance(result, CameraError):
        for cid, record in cameras.items():
            if record.get("endpoint") == result.endpoint:
                return cid
    return camera_id(result)


# ---------------------------------------------------------------- the round


def describe_all(
    devices: Sequence[DiscoveredDevice],
    secrets: Secrets | None,
    known: Mapping[str, Mapping[str, Any]] | None = None,
    timeout: float = 5.0,
) -> list[CameraInfo | CameraError]:
    """Describe every device concurrently; one slow or failing camera delays only itself."""
    serial_by_endpoint = {
        r.get("endpoint"): r.get("serial") for r in (known or {}).values() if r.get("serial")
    }

    def one(device: DiscoveredDevice) -> CameraInfo | CameraError:
        creds = (
            secrets.for_device(device, serial_by_endpoint.get(device.endpoint)) if secrets else None
        )
        result = onvif.describe(device, creds, timeout=timeout)
        if creds is None and isinstance(result, CameraError) and result.kind == "unauthorized":
            return replace(result, message=_no_credentials(secrets is not None))
        return result

    if not devices:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(devices))) as pool:
        return list(pool.map(one, devices))


def _no_credentials(have_secrets: bool) -> str:
    if not have_secrets:
        return "needs credentials, and no camera secrets file was given"
    return (
        "needs credentials, and no entry in the secrets file names this camera "
        '(by host, host:port, serial or endpoint; "*" is never sent to discovered devices)'
    )


def rediscover(
    inventory: Path,
    interface: str | None,
    timeout: float,
    secrets: Secrets | Path | None,
) -> list[CameraEvent]:
    """One scheduled round: probe, describe, merge into `inventory`, log each change.

    Called by the daemon on a schedule. Raises onvif.DiscoveryError when the probe cannot
    be sent, InventoryError when the file is damaged, SecretError for a bad secrets file.
    """
    if isinstance(secrets, Path):
        secrets = load_secrets(secrets)
    devices = onvif.discover(interface, timeout)
    results = describe_all(devices, secrets, load_inventory(inventory))
    return record_round(inventory, results)


def record_round(inventory: Path, results: Sequence[CameraInfo | CameraError]) -> list[CameraEvent]:
    """Merge one round's results into the inventory file under its lock; log the changes."""
    with _locked(inventory):
        merged, events = merge(load_inventory(inventory), results)
        save_inventory(inventory, merged)
    for event in events:
        log_event(event)
    return events


def log_event(event: CameraEvent) -> None:
    fields: dict[str, str] = {"camera": event.camera, "address": event.address}
    if event.detail:
        fields["detail"] = event.detail
    if event.event == "camera_error":
        log.warning(event.event, **fields)
    else:
        log.info(event.event, **fields)


# ---------------------------------------------------------------- live streams


def live_streams(spec: CamerasSpec, state: Path) -> dict[str, str]:
    """Camera id -> main stream URL, credentials added: static streams (the "*" entry is
    their default), then every online camera of the inventory (named entries only)."""
    secrets = load_secrets(Path(spec.secrets)) if spec.secrets else Secrets({})
    found = {s.camera: s.url for s in spec.streams}
    pinned = set(found)  # written by the operator, not learned from the network
    if spec.discover_seconds:
        for camera, record in load_inventory(inventory_path(state)).items():
            if record.get("state") == "online" and record.get("main_stream"):
                found.setdefault(camera, record["main_stream"])
    streams = {}
    for camera, url in found.items():
        credentials = secrets.lookup(camera, *urls.host_keys(url), pinned=camera in pinned)
        if credentials is not None:
            url = urls.with_credentials(url, credentials.username, credentials.password)
        streams[camera] = url
    return streams
