"""The `cameras:` section of the daemon's configuration: ONVIF discovery, and the cameras
known by URL whose streams are masked live."""

from __future__ import annotations

from pydantic import Field

from privmask.rules.base import StrictModel


class StreamSpec(StrictModel):
    camera: str = Field(min_length=1, description="the camera id rules match on")
    url: str = Field(
        description="its main RTSP stream, without credentials (they come from `secrets`)"
    )


class CamerasSpec(StrictModel):
    discover_seconds: float = Field(
        default=0, ge=0, description="re-discover ONVIF cameras this often; 0: never"
    )
    interface: str | None = Field(
        default=None,
        description="IPv4 address of the interface to probe from; none: the routing table's choice",
    )
    timeout: float = Field(
        default=3.0, gt=0, le=60, description="seconds to wait for discovery answers"
    )
    secrets: str | None = Field(
        default=None,
        description="camera credentials file (mode 600); keys: camera id, `host:port`, host, "
        'serial or endpoint; `"*"` is the default for `streams` only, never sent to a '
        "camera found by discovery",
    )
    streams: list[StreamSpec] = Field(
        default_factory=list, description="cameras known by URL, without discovery"
    )
