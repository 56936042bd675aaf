"""One frame of a clip, reached by seeking: the review page's preview of a late frame must
not decode the whole clip before it.

The pipeline calls a frame by its place in presentation order, counting decoded frames
(`decode_frames`). The clip is indexed once by demuxing its packets only (no decoding):
every video packet's presentation timestamp, and which are keyframes. Frame N is then the
packet with the N-th smallest timestamp; it is reached by seeking to the last keyframe
shown at or before it and decoding forward until a frame with exactly that timestamp comes
out. Where the index cannot say (a packet without a timestamp, a seek that lands after the
frame, a frame never found), the frame is found by counting from the start, as the pipeline
does: slower, never another frame.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from privmask.adapters.video import VideoError, as_yuv420p, decode_frames, ffmpeg_reason, open_clip

Planes = npt.NDArray[np.uint8]  # a yuv420p frame as one array (`VideoFrame.to_ndarray()`)


class FrameMissing(LookupError):
    """The clip has no frame of that number."""


@dataclass(frozen=True)
class FrameIndex:
    """The clip's video packets in presentation order: their timestamps and, for seeking,
    where keyframes are. `complete` is False where a packet had no timestamp, or is one the
    decoder may drop (discarded by an edit list, corrupt): the index then cannot name
    frames, and every frame is found by counting."""

    pts: tuple[int, ...]  # sorted: frame N's timestamp is pts[N]
    keyframes: tuple[int, ...]  # sorted timestamps of keyframes
    complete: bool

    @classmethod
    def of(cls, path: Path) -> FrameIndex:
        """Demux every packet of the first video stream; nothing is decoded."""
        shown: list[int] = []
        keys: list[int] = []
        complete = True
        with open_clip(path) as container:
            stream = container.streams.video[0]
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:  # the demuxer's end-of-stream marker
                        continue
                    if packet.pts is None or packet.is_discard or packet.is_corrupt:
                        complete = False  # the decoder may drop it: numbers would shift
                        continue
                    shown.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
            except av.error.FFmpegError as exc:
                reason = ffmpeg_reason(exc)
                raise VideoError(f"{path}: reading failed ({reason})", "undecodable") from None
        return cls(tuple(sorted(shown)), tuple(sorted(keys)), complete and bool(keys))

    def keyframe_before(self, pts: int) -> int | None:
        """The timestamp of the last keyframe shown at or before `pts`."""
        at = bisect.bisect_right(self.keyframes, pts)
        return self.keyframes[at - 1] if at else None


class FrameReader:
    """Frames of one clip by the pipeline's number. Not thread-safe: its owner holds a lock
    per clip. `decoded` counts the frames decoded so far (what seeking saves)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = FrameIndex.of(path)
        self.decoded = 0

    def frame(self, number: int) -> Planes:
        """Frame `number` (0 is the first shown) as yuv420p planes; FrameMissing if the
        clip has no such frame."""
        if number < 0:
            raise FrameMissing(number)
        index = self.index
        if index.complete and number < len(index.pts):
            found = self._seek(index.pts[number])
            if found is not None:
                return found
        return self._count(number)

    def _seek(self, target: int) -> Planes | None:
        """The frame shown at `target`, decoded from the keyframe before it; None where the
        seek did not lead to it."""
        key = self.index.keyframe_before(target)
        if key is None:
            return None
        with open_clip(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                container.seek(key, stream=stream, backward=True, any_frame=False)
                for packet in container.demux(stream):
                    for decoded in packet.decode():
                        self.decoded += 1
                        if decoded.pts is None:
                            return None
                        if decoded.pts == target:
                            return _planes(decoded)
                        if decoded.pts > target:
                            return None  # frames come out in shown order: it was not there
            except av.error.FFmpegError:
                return None  # counting from the start says what is wrong, if anything
        return None

    def _count(self, number: int) -> Planes:
        for at, decoded in enumerate(decode_frames(self.path, writable=False)):
            self.decoded += 1
            if at == number:
                return _planes(decoded)
        raise FrameMissing(number)


def _planes(frame: av.VideoFrame) -> Planes:
    return np.asarray(as_yuv420p(frame, writable=False).to_ndarray(), dtype=np.uint8)
