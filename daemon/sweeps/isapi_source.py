"""A Hikvision recorder without ONVIF Profile G, swept through ISAPI (`adapters.isapi`).

A recording is an ISAPI track (channel * 100 + 1: the main stream; 2 and 3 are sub-streams
of the same camera), named by its number; its camera is `chNN`, as the recorder's own export
names call it. Without configured `tracks`, the main-stream tracks the recorder lists are
swept (a camera once, at its best quality). Times: a recorder's
`Z`-labelled search times are read as its wall clock in the configured `timezone` (what
the firmwares that label local time with Z need; a recorder that writes true UTC is
configured with `timezone: UTC`); a time with an explicit offset is taken as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from privmask.adapters.isapi import Isapi, IsapiError, Segment
from privmask.daemon.sweeps.vendor_source import VendorSource


class IsapiSource(VendorSource[Segment]):
    recorder_error = IsapiError

    def __init__(
        self,
        name: str,
        url: str,
        username: str,
        password: str,
        *,
        tracks: tuple[int, ...] | None = None,
        timezone: tzinfo,
        timeout: float = 10.0,
    ) -> None:
        self._isapi = Isapi(url, username, password, timeout)
        super().__init__(name, self._isapi.label, timezone)
        self._tracks = tracks

    def _recordings(self) -> Sequence[tuple[str, str | None]]:
        with self._asking():
            tracks = self._tracks or tuple(t for t in self._isapi.tracks() if t % 100 == 1)
        return [(str(track), f"ch{track // 100:02d}") for track in tracks]

    def _pieces(
        self, recording: str, start: datetime, end: datetime
    ) -> Sequence[tuple[datetime, datetime, Segment]]:
        with self._asking():
            found = self._isapi.search(int(recording), start, end)
        return [(s.start, s.end, s) for s in found]

    def _download(self, item: Segment, target: Path) -> None:
        with self._asking():
            self._isapi.download(item, target)
