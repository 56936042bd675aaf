"""Where one camera's masked frames go: an RTSP server, a folder of segments, or both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from privmask.adapters.rtsp import RtspPublisher, SegmentFiles, SegmentWriter
from privmask.adapters.streamcopy import StreamCopy
from privmask.adapters.video import EncoderSettings


@dataclass(frozen=True)
class LiveSegment:
    """A finished segment, as `LiveOutputs.on_segment` gets it."""

    masked: Path  # `<job id>.mp4`
    original: Path | None  # `<job id>.original`: the camera's packets, mode 600; None: see below
    original_missing: str  # why there is no original ("" when there is, or none was asked)
    original_lead_s: float  # it starts this long before the masked one (at a keyframe)
    frames: int
    tracks: tuple[dict[str, Any], ...]  # as a file manifest's `tracks`, frames of this segment


@dataclass(frozen=True)
class LiveOutputs:
    """Where masked video goes: an RTSP server, a folder of segments, or both.

    `originals`: keep the camera's own packets beside each segment. The hook then owns
    them (it must escrow or remove them: an unmasked picture is left nowhere else), so
    asking for originals without a hook is refused."""

    publish_url: str | None = None
    segment_dir: Path | None = None
    segment_seconds: float = 60.0
    on_segment: Callable[[LiveSegment], None] | None = None  # e.g. the encrypted packaging
    originals: bool = False

    def __post_init__(self) -> None:
        if not self.publish_url and self.segment_dir is None:
            raise ValueError("a live camera needs a publish URL, a segment folder, or both")
        if self.segment_seconds <= 0:
            raise ValueError("segment length must be positive")
        if self.originals and (self.segment_dir is None or self.on_segment is None):
            raise ValueError("originals are kept only beside segments, for a hook that takes them")


class ConnectionOutputs:
    """The publisher and segment writer of one connection, fed the same masked frames."""

    def __init__(
        self,
        outputs: LiveOutputs,
        name: str,
        width: int,
        height: int,
        rate: Fraction,
        encoder: EncoderSettings,
        on_segment: Callable[[SegmentFiles], None],
        originals: StreamCopy | None,
    ) -> None:
        self.publisher: RtspPublisher | None = None
        self.segments: SegmentWriter | None = None
        try:
            if outputs.publish_url:
                self.publisher = RtspPublisher(outputs.publish_url, width, height, rate, encoder)
            if outputs.segment_dir is not None:
                self.segments = SegmentWriter(
                    outputs.segment_dir,
                    name,
                    outputs.segment_seconds,
                    width,
                    height,
                    rate,
                    encoder,
                    on_segment,
                    originals,
                )
        except BaseException:
            self.close()
            raise

    def write(self, frame: av.VideoFrame, pts: int) -> None:
        if self.publisher is not None:
            self.publisher.write(frame, pts)
        if self.segments is not None:
            self.segments.write(frame, pts)

    def close(self) -> None:
        try:
            if self.publisher is not None:
                self.publisher.close()
        finally:
            if self.segments is not None:
                self.segments.close()
