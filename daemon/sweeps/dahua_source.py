"""A Dahua recorder without ONVIF Profile G, swept through its HTTP API (`adapters.dahua`).

A recording is a channel (1-based, as the recorder counts), named by its number; its
camera is `chN`, as the recorder's own export names call it. The recorder's times are its
wall clock, read in the configured `timezone`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from privmask.adapters.dahua import Dahua, DahuaError, DahuaFile
from privmask.daemon.sweeps.vendor_source import VendorSource, source_error


class DahuaSource(VendorSource[DahuaFile]):
    def __init__(
        self,
        name: str,
        url: str,
        username: str,
        password: str,
        *,
        channels: tuple[int, ...] | None = None,
        timezone: tzinfo,
        timeout: float = 10.0,
    ) -> None:
        self._dahua = Dahua(url, username, password, timeout)
        super().__init__(name, self._dahua.label, timezone)
        self._channels = channels

    def _recordings(self) -> Sequence[tuple[str, str | None]]:
        try:
            channels = self._channels or self._dahua.channels()
        except DahuaError as exc:
            raise source_error(self.name, exc, exc.code) from None
        return [(str(channel), f"ch{channel}") for channel in channels]

    def _pieces(
        self, recording: str, start: datetime, end: datetime
    ) -> Sequence[tuple[datetime, datetime, DahuaFile]]:
        try:
            found = self._dahua.find(int(recording), start, end)
        except DahuaError as exc:
            raise source_error(self.name, exc, exc.code) from None
        return [(f.start, f.end, f) for f in found]

    def _download(self, item: DahuaFile, target: Path) -> None:
        try:
            self._dahua.download(item, target)
        except DahuaError as exc:
            raise source_error(self.name, exc, exc.code) from None
