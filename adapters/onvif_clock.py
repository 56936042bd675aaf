"""WS-Security for ONVIF devices whose clock is not ours.

An ONVIF device checks the `Created` time of a WS-Security UsernameToken against its own
clock (commonly within a few seconds). Recorders and cameras are often hours off (no NTP,
a wrong time zone set as UTC), and onvif-python signs with the host's clock, so every
authenticated call to such a device fails as "not authorized" although the password is
right; onvif-python then even falls back to guessed service URLs.

So the device's clock is read first, with the one call ONVIF Core lets anyone make
(`GetSystemDateAndTime`, unauthenticated), and `DeviceClock`, a zeep plugin, signs every
other request with `Created` on that clock and a fresh nonce. The clients are built with
no username and password of their own, so onvif-python adds no second token (zeep applies
plugins before its own `wsse`). `DeviceClock.call` re-reads the clock once when a call is
refused as not authorized (the device's clock may have been set meanwhile) and, if it
moved, tries again once; otherwise, or on a second refusal, the password is at fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from zeep import Plugin
from zeep.wsse.username import UsernameToken

from privmask.adapters.onvif_errors import classify

T = TypeVar("T")

UNSIGNED = frozenset({"GetSystemDateAndTime"})  # ONVIF Core: callable without credentials
# a re-read clock closer than this to the old reading did not cause the refusal (devices
# accept a few seconds); then the password did, and it is not sent again
SAME_CLOCK = timedelta(seconds=2)


class DeviceClock(Plugin):
    """A zeep plugin signing each request (digest UsernameToken, `Created` in UTC with a
    Z, on the device's clock). `offset` is device time minus host time."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self.offset = timedelta(0)
        self._read_clock: Callable[[], Any] | None = None

    def __repr__(self) -> str:  # never the password, whatever prints this object
        return f"DeviceClock(username={self.username!r}, offset={self.offset})"

    def egress(
        self, envelope: Any, http_headers: dict[str, str], operation: Any, binding_options: Any
    ) -> tuple[Any, dict[str, str]]:
        if getattr(operation, "name", None) in UNSIGNED:
            return envelope, http_headers
        token = UsernameToken(
            self.username,
            self._password,
            use_digest=True,
            created=datetime.now(UTC) + self.offset,
            zulu_timestamp=True,  # the form ONVIF's own examples use; some devices insist
        )
        return token.apply(envelope, http_headers)

    def sync(self, get_system_date_and_time: Callable[[], Any]) -> None:
        """Measure the offset with the device service's `GetSystemDateAndTime` (halfway
        through the round trip); a device that gives no UTC time keeps offset zero."""
        self._read_clock = get_system_date_and_time
        before = time.time()
        answer = get_system_date_and_time()
        after = time.time()
        device = device_utc(answer)
        if device is not None:
            host = datetime.fromtimestamp((before + after) / 2, UTC)
            # the device's time is cut to whole seconds: half of one centres the error
            self.offset = device + timedelta(milliseconds=500) - host

    def call(self, method: Callable[..., T], /, **kwargs: Any) -> T:
        """`method(**kwargs)`; refused as not authorized: the clock is read again and, if
        it moved, the call made once more (a wrong password is tried only once: recorders
        lock an account after a few failed logins)."""
        try:
            return method(**kwargs)
        except Exception as exc:
            if self._read_clock is None or classify(exc)[0] != "unauthorized":
                raise
            before = self.offset
            self.sync(self._read_clock)
            if abs(self.offset - before) < SAME_CLOCK:
                raise
        return method(**kwargs)


def device_utc(answer: Any) -> datetime | None:
    """The UTC time in a GetSystemDateAndTime answer (`SystemDateAndTime`), or None."""
    utc = getattr(answer, "UTCDateTime", None)
    date = getattr(utc, "Date", None)
    clock = getattr(utc, "Time", None)
    if date is None or clock is None:
        return None
    try:
        return datetime(
            int(date.Year), int(date.Month), int(date.Day),
            int(clock.Hour), int(clock.Minute), int(clock.Second), tzinfo=UTC,
        )  # fmt: skip
    except (TypeError, ValueError):  # a device that sends nonsense: no offset
        return None
