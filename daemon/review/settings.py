"""The `review` key of the daemon's configuration: where the review page listens, who may
log in, and how long a login lasts."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from privmask.rules.base import StrictModel

DEFAULT_LISTEN = "127.0.0.1:8470"
USERS_FILE_NAME = "review-users"  # in the state folder, where `users` is not configured


class ReviewSpec(StrictModel):
    listen: str = Field(
        default=DEFAULT_LISTEN,
        description="`HOST:PORT` the review page listens on (`[::1]:PORT` for IPv6); on a "
        "loopback address only loopback host names are answered",
    )
    users: str | None = Field(
        default=None,
        description="the reviewers' file (mode 600), written by `privmask review add-user`; "
        "none: `review-users` in the state folder",
    )
    session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="a login ends after this long unused"
    )
    session_max_hours: float = Field(
        default=8, gt=0, le=7 * 24, description="a login ends this long after it began, used or not"
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _idle_within_max(self) -> ReviewSpec:
        if self.session_idle_minutes > self.session_max_hours * 60:
            raise ValueError("session_idle_minutes must not exceed session_max_hours")
        return self


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port); ValueError with a message naming what is wrong."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"listen must be HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"listen port must be 1..65535, got {port}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # its ValueError names the address
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
