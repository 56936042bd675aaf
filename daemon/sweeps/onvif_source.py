"""A sweep source on an ONVIF Profile G recorder (an NVR, a camera with an SD card).

`list(window)`: the recorder's recordings (`adapters.onvif_archive`), each one a
`Recording` keyed by its recording token, showing the camera the recorder names as its
source (`Source/Name`, else `SourceId`, else the token), with the spans where its video
track holds data in the window (gaps from FindEvents cut out). `complete_to` is the
earliest `DataTo` of the recordings still being recorded: the recorder has everything
before it, so chunks up to there are final.

`fetch(chunk)`: `GetReplayUri`, then an RTSP replay of [start, end) over TCP
(`adapters.replay`) into an MP4 in the sweep's staging folder; the clip's first frame
time and its gaps come from the replay's own frame times.

Errors: wrong credentials, an unreachable or misbehaving recorder are a `SourceError`
naming the recorder (wrong credentials: permanent); a chunk with no data is `NoData`.
"""

from __future__ import annotations

from pathlib import Path

from privmask.adapters.onvif_archive import Archive, ArchiveError, RecordingInfo, open_archive
from privmask.daemon.sweeps.source import (
    Chunk,
    Fetched,
    Listing,
    NoData,
    Recording,
    SourceError,
    Span,
)

FINISHED = frozenset({"Stopped", "Removing", "Removed"})  # RecordingStatus: nothing to come


class OnvifSource:
    """One recorder; `recordings` limits the sweep to these recording tokens (or the
    cameras' names as the recorder gives them)."""

    cuts = True

    def __init__(
        self,
        name: str,
        url: str,
        username: str,
        password: str,
        *,
        recordings: frozenset[str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.url = url
        self.username = username
        self._password = password
        self.recordings = recordings
        self.timeout = timeout

    def __repr__(self) -> str:  # never the password
        return f"OnvifSource({self.name!r}, {self.address!r})"

    @property
    def address(self) -> str:
        from privmask.adapters import urls

        return urls.redact(self.url)

    def list(self, window: Span) -> Listing:
        try:
            archive = self._archive()
            chosen = [r for r in archive.recordings() if self._wanted(r)]
            found = [_listed(archive, r, window) for r in chosen]
        except ArchiveError as exc:
            raise _source_error(exc) from None
        ends = [
            video.data_to
            for r in chosen
            if r.status not in FINISHED and (video := r.video) is not None and video.data_to
        ]
        complete_to = min([window.end, *ends])
        return Listing(tuple(r for r in found if r.spans), complete_to)

    def fetch(self, chunk: Chunk, folder: Path) -> Fetched:
        from privmask.adapters.replay import ReplayError, replay

        try:
            uri = self._archive().replay_uri(chunk.recording)
        except ArchiveError as exc:
            raise _source_error(exc) from None
        target = folder / f"{chunk.file_stem}.mp4"
        try:
            got = replay(
                uri, self.username, self._password, chunk.start, chunk.end, target,
                timeout=self.timeout,
            )  # fmt: skip
        except ReplayError as exc:
            if exc.code == "no_data":
                raise NoData(f"{self.address}: {chunk.recording}: no recorded data") from None
            message = f"ONVIF recorder {self.address}: replay of {chunk.recording}: {exc}"
            raise SourceError(message, permanent=exc.code == "auth") from None
        if got.first is None or got.frames == 0:
            target.unlink(missing_ok=True)
            raise NoData(f"{self.address}: {chunk.recording}: no recorded data")
        gaps = tuple(Span(a, b) for a, b in got.gaps)
        return Fetched(path=target, own_copy=True, start=got.first, gaps=gaps)

    def _archive(self) -> Archive:
        return open_archive(self.url, self.username, self._password, self.timeout)

    def _wanted(self, recording: RecordingInfo) -> bool:
        if self.recordings is None:
            return True
        return recording.token in self.recordings or camera(recording) in self.recordings


def camera(recording: RecordingInfo) -> str:
    """The camera as the recorder names the recording's source."""
    return recording.source_name or recording.source_id or recording.token


def _listed(archive: Archive, recording: RecordingInfo, window: Span) -> Recording:
    spans = archive.data_spans(recording, window.start, window.end)
    return Recording(recording.token, camera(recording), tuple(Span(a, b) for a, b in spans))


def _source_error(exc: ArchiveError) -> SourceError:
    return SourceError(str(exc), permanent=exc.code == "auth")
