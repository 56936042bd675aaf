"""Live masking of one camera: pull over RTSP, detect, mask causally, publish and/or segment.

Offline, the whole clip is known before a frame is masked. Live, frames go out as they come,
so each decoded frame waits in a short delay buffer (`LiveSettings.delay_s`) while the
detector looks at newer ones; when it leaves, its masks include targets that were found
only in the frames after it (the offline tracker's lead, bounded by the buffer). Detection
runs on every n-th frame, in one worker shared by every camera (`detecting`).

Masked frames go to an RTSP server and/or segments (`outputs`). With
`LiveOutputs.originals`, each masked segment comes with the camera's own packets for
the same span (stream-copied, not re-encoded) and the list of tracks masked in it; the
hook takes custody of both files.

Every camera runs in its own thread with its own decoder and encoders, and catches every
error of its own: a camera that fails goes to backoff and is reopened with
exponentially growing pauses, and never touches another camera. Nothing queues without
bound: the only frames held are the delay buffer's.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import structlog

from privmask.adapters import urls
from privmask.adapters.rtsp import (
    RtspError,
    RtspSource,
    SegmentFiles,
    SourceOptions,
)
from privmask.adapters.video import EncoderSettings, VideoError
from privmask.daemon.live.detecting import CameraDetection, SharedDetection
from privmask.daemon.live.outputs import ConnectionOutputs, LiveOutputs, LiveSegment
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.online import CausalMasker, MaskedFrame, SegmentTracks
from privmask.rules.plan import PlanError, RedactionPlan

log = structlog.get_logger("privmask.live")


class CameraState(StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKOFF = "backoff"  # failed; waiting before the next try
    OFFLINE = "offline"  # stopped, or failed `offline_after` times in a row (still retried)


@dataclass(frozen=True)
class LiveSettings:
    # how far masks reach back before a first sighting: a person entering at an edge is
    # found only once enough of them is in (the shared one-by-one clip: 1.2 s after)
    delay_s: float = 2.0
    detect_every: int | None = None  # detect on every n-th frame; None: the plan's
    detect_width: int = 0  # detect on frames scaled down to this width; 0: as they are
    source: SourceOptions = SourceOptions()
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    offline_after: int = 5  # failures in a row before the camera is reported offline
    encoder: EncoderSettings = EncoderSettings(preset="ultrafast", crf=23)


@dataclass(frozen=True)
class CameraStatus:
    """A snapshot for status pages and tests; `url` carries no credentials."""

    name: str
    url: str
    state: CameraState
    frames_in: int = 0
    frames_out: int = 0
    detections: int = 0  # detector runs
    connects: int = 0  # successful opens
    failures: int = 0  # failures in a row (0 while streaming)
    buffered: int = 0  # frames in the delay buffer
    max_buffered: int = 0  # the most ever held at once
    segments: int = 0
    fps: float = 0.0  # frames out per second, over the last couple of seconds
    last_error: str = ""


class LiveCamera:
    """One camera's live masking, in its own thread: `start()`, `status`, `stop()`.

    Models are loaded in the constructor, so a plan that cannot run fails at once, in the
    caller's thread; everything after that is caught, logged (without credentials) and
    retried. `detection`: the worker shared with other cameras (None: one of its own).
    """

    def __init__(
        self,
        url: str,
        plan: RedactionPlan,
        outputs: LiveOutputs,
        settings: LiveSettings = LiveSettings(),
        models_dir: str | Path | None = None,
        name: str = "camera",
        on_frame: Callable[[av.VideoFrame], None] | None = None,
        detection: SharedDetection | None = None,
    ) -> None:
        self.url, self.plan, self.outputs, self.settings = url, plan, outputs, settings
        self.name = name
        self.safe_url = urls.redact(url)
        self.on_frame = on_frame  # sees each masked frame before it is encoded (benchmarks)
        self._own_detection = detection is None
        self.detection = detection or SharedDetection(models_dir)
        self.detectors = self.detection.models(plan)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status = CameraStatus(name, self.safe_url, CameraState.OFFLINE)
        self._counts = _Counts()
        self._tracks = SegmentTracks()  # of the segment being written
        self._log = log.bind(camera=name, url=self.safe_url)

    @property
    def status(self) -> CameraStatus:
        with self._lock:
            return self._status

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"live-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the thread to end, finish outputs (the last segment is kept) and wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._own_detection:
            self.detection.close()
        self._set(CameraState.OFFLINE)

    def _set(self, state: CameraState, error: str | None = None) -> None:
        c = self._counts
        with self._lock:
            self._status = CameraStatus(
                name=self.name,
                url=self.safe_url,
                state=state,
                frames_in=c.frames_in,
                frames_out=c.frames_out,
                detections=c.detections,
                connects=c.connects,
                failures=c.failures,
                buffered=c.buffered,
                max_buffered=c.max_buffered,
                segments=c.segments,
                fps=c.fps(),
                last_error=self._status.last_error if error is None else error,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._set(CameraState.CONNECTING)
            try:
                self._stream()
                error = "stream ended"
            except (RtspError, VideoError, PlanError) as exc:
                error = str(exc)
            except Exception as exc:  # one camera's bug must not end its thread or others
                error = urls.scrub(f"{type(exc).__name__}: {exc}", self.url)
            if self._stop.is_set():
                break
            self._counts.failures += 1
            state = (
                CameraState.OFFLINE
                if self._counts.failures >= self.settings.offline_after
                else CameraState.BACKOFF
            )
            pause = self._backoff()
            self._set(state, error)
            self._log.warning("live_backoff", error=error, retry_in_s=round(pause, 2))
            self._stop.wait(pause)
        self._set(CameraState.OFFLINE)

    def _backoff(self) -> float:
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_initial_s * 2 ** (self._counts.failures - 1))
        return base * random.uniform(0.8, 1.2)  # cameras that failed together retry apart

    def _stream(self) -> None:
        """One connection: open, stream until it drops or stop() is called, close."""
        outputs: ConnectionOutputs | None = None
        keep = self.outputs.originals
        with RtspSource(self.url, self.settings.source, keep_packets=keep) as source:
            rate = source.rate
            self._counts.connects += 1
            self._tracks = SegmentTracks()  # track ids are this connection's
            masker: CausalMasker | None = None
            detect: CameraDetection | None = None
            try:
                for frame in source.frames():
                    if self._stop.is_set():
                        break
                    if masker is not None and (frame.width, frame.height) != (
                        masker.width,
                        masker.height,
                    ):
                        # masks sized for the old picture would land in the wrong place:
                        # reconnect and start over with the new size
                        raise RtspError("the camera changed its picture size; reconnecting")
                    if masker is None or outputs is None:
                        masker, detect = self._masker(frame.width, frame.height, rate)
                        outputs = ConnectionOutputs(
                            self.outputs,
                            "live",  # segments are named by job id, never by camera
                            frame.width,
                            frame.height,
                            rate,
                            self.settings.encoder,
                            self._segment_done,
                            source.packets,
                        )
                        self._log.info(
                            "live_streaming",
                            width=frame.width,
                            height=frame.height,
                            fps=float(rate),
                        )
                    self._counts.frames_in += 1
                    self._counts.failures = 0
                    for ready in masker.push(frame):
                        self._write(outputs, ready)
                    self._counts.buffered = masker.buffered
                    self._counts.max_buffered = max(self._counts.max_buffered, masker.max_buffered)
                    self._counts.detections = masker.detections
                    self._set(CameraState.STREAMING)
                if masker is not None and outputs is not None:
                    for ready in masker.flush():
                        self._write(outputs, ready)
                    self._counts.buffered = 0
            finally:
                if masker is not None:
                    masker.close()
                if detect is not None:
                    detect.close()
                if outputs is not None:
                    outputs.close()

    def _masker(
        self, width: int, height: int, rate: Fraction
    ) -> tuple[CausalMasker, CameraDetection]:
        s = self.settings
        detect = self.detection.camera(self.plan, FrameGeometry(width, height), s.detect_width)
        masker = CausalMasker(self.plan, detect, width, height, rate, s.delay_s, s.detect_every)
        return masker, detect

    def _write(self, outputs: ConnectionOutputs, ready: MaskedFrame) -> None:
        if self.on_frame is not None:
            self.on_frame(ready.frame)
        # this may finish a segment, which takes the tracks of the frames before this one
        outputs.write(ready.frame, ready.frame.pts or 0)
        self._tracks.add(ready.boxes)
        self._counts.tick()

    def _segment_done(self, written: SegmentFiles) -> None:
        tracks, self._tracks = self._tracks, SegmentTracks()
        copied = written.original
        segment = LiveSegment(
            written.masked,
            copied.path,
            copied.missing if self.outputs.originals else "",
            copied.lead_s,
            tracks.frames,
            tuple(tracks.summary()),
        )
        self._counts.segments += 1
        self._log.info("live_segment", file=segment.masked.name, tracks=len(segment.tracks))
        if self.outputs.originals and segment.original is None:
            self._log.warning(
                "live_segment_original_missing",
                file=segment.masked.name,
                reason=segment.original_missing,
            )
        hook = self.outputs.on_segment
        if hook is None:
            return
        try:
            hook(segment)
        except Exception as exc:  # the hook's failure must not stop the stream
            self._log.error("live_segment_hook_failed", file=segment.masked.name, error=str(exc))


@dataclass
class _Counts:
    """Counters the camera thread updates; snapshots go out through `CameraStatus`."""

    frames_in: int = 0
    frames_out: int = 0
    detections: int = 0
    connects: int = 0
    failures: int = 0
    buffered: int = 0
    max_buffered: int = 0
    segments: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=64))

    def tick(self) -> None:
        self.frames_out += 1
        self.recent.append(time.monotonic())

    def fps(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        times = np.asarray(self.recent)
        span = float(times[-1] - times[0])
        return (len(times) - 1) / span if span > 0 else 0.0
