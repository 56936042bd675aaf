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
from privmask.daemon.sweeps.vendor_source import VendorSource


class DahuaSource(VendorSource[DahuaFile]):
    recorder_error = DahuaError

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
        with self._asking():
            channels = self._channels or self._dahua.channels()
        return [(str(channel), f"ch{channel}") for channel in channels]

    def _pieces(
        self, recording: str, start: datetime, end: datetime
    ) -> Sequence[tuple[datetime, datetime, DahuaFile]]:
        with self._asking():
            found = self._dahua.find(int(recording), start, end)
        return [(f.start, f.end, f) for f in found]

    def _download(self, item: DahuaFile, target: Path) -> None:
        with self._asking():
            self._dahua.download(item, target)
