"""Re-encoding a clip: the Transcoder (video encoded frame by frame, audio copied or, where
the output container cannot hold it, re-encoded) and the verification of what it wrote.
"""

from __future__ import annotations

import errno
import math
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import av.error

from privmask.adapters.video import (
    EncoderSettings,
    ReadAhead,
    VideoError,
    VideoInfo,
    checked_decode,
    ffmpeg_reason,
    fit,
    open_clip,
    probe,
)

KEYFRAME_SECONDS = 4.0
QUEUED_FRAMES = 6  # frames decoded ahead, and frames waiting for the encoder

# errors of the disk the output is written to: a full, read-only or failing disk says
# nothing about the clip, so they get their own code (a waiting condition, not a bad clip)
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EACCES}
)


class Transcoder:
    """Decode one clip and re-encode its video frame by frame, copying its audio.

    `frames()` yields each decoded frame; the caller may change it in place, then must
    pass it to `write()`, and end with `finish()` (or `close()` to abandon the output).
    Audio packets are copied as they are demuxed, or re-encoded to AAC where the output
    container cannot hold the source codec. Every FFmpeg failure becomes a VideoError.
    The output has the probed picture size; a frame of another size (a clip whose size
    changes part way) is fitted into it, unstretched (`video.fit`).

    Decoding runs in a thread of its own, a few frames ahead, and encoding in another, so
    that the caller's work on a frame overlaps both (FFmpeg runs without the GIL). The
    audio goes through the encoding thread, in the order it was read.
    """

    def __init__(
        self,
        source: Path,
        target: Path,
        settings: EncoderSettings,
        info: VideoInfo,
        name: str | None = None,
    ):
        """`name`: what messages call the output (the final name of a staged `target`)."""
        self.source, self.target, self.info = source, target, info
        self.name = name or target.name
        self._stack = ExitStack()
        try:
            self._input = self._stack.enter_context(open_clip(source))
            # MP4/MOV: index at the front, so players and browsers start without the whole file
            mp4 = target.suffix.lower() in (".mp4", ".mov")
            options = {"movflags": "+faststart"} if mp4 else {}
            with self._encoding(f"{self.name}: cannot write this container"):
                self._output = self._stack.enter_context(av.open(str(target), "w", options=options))
                self._video_in = self._input.streams.video[0]
                self._video_in.thread_type = "AUTO"
                self._video_out = self._add_video_stream(settings)
                self._audio = [_AudioPass(s, self._output) for s in self._input.streams.audio]
        except BaseException:
            self._stack.close()
            raise
        self.frames_written = 0
        self.media_end = 0.0  # where the last frame or audio packet read so far ends, seconds
        self._first_pts: int | None = None
        self._last_pts: int | None = None
        self._audio_by_stream = {a.source.index: a for a in self._audio}
        self._reader: ReadAhead[tuple[str, object]] | None = None
        self._writer = _Writer(self)

    @contextmanager
    def _encoding(self, what: str) -> Iterator[None]:
        try:
            yield
        except (av.error.FFmpegError, ValueError) as exc:
            if getattr(exc, "errno", None) in WRITE_ERRNOS:  # the output's disk, not the clip
                reason = ffmpeg_reason(exc)
                raise VideoError(f"{self.name}: cannot write ({reason})", "write_failed") from None
            raise VideoError(f"{what} ({ffmpeg_reason(exc)})", "encode_failed") from None

    def _add_video_stream(self, settings: EncoderSettings) -> av.video.stream.VideoStream:
        stream = cast(
            av.video.stream.VideoStream,
            self._output.add_stream(settings.codec, rate=self.info.frame_rate),
        )
        stream.width, stream.height = self.info.width, self.info.height
        stream.pix_fmt = "yuv420p"
        time_base = self._video_in.time_base or Fraction(1, 90000)
        stream.time_base = stream.codec_context.time_base = time_base
        # a keyframe at least every few seconds: players seek, and `verify_output` decodes
        # the last stretch from its keyframe, not the whole clip (+10 % size at crf 20)
        stream.codec_context.gop_size = max(
            1, round(KEYFRAME_SECONDS * float(self.info.frame_rate or 25))
        )
        options: dict[str, object] = {"crf": str(settings.crf), "preset": settings.preset}
        if settings.codec == "libx265":
            options["x265-params"] = "log-level=error"
            stream.codec_tag = "hvc1"  # what Apple players need to open HEVC in MP4
        stream.options = options
        if self.info.sample_aspect_ratio:
            stream.codec_context.sample_aspect_ratio = self.info.sample_aspect_ratio
        if self.info.rotation:
            stream.set_display_rotation(self.info.rotation)
        return stream

    def frames(self) -> Iterator[av.VideoFrame]:
        """Each decoded frame, decoded by a thread of its own a few frames ahead; the
        audio read meanwhile is handed to the writer in order."""
        self._reader = ReadAhead(self._demuxed(), depth=QUEUED_FRAMES, name="transcode-read")
        for kind, item in self._reader:
            if kind == "audio":
                self._writer.put(kind, item)
            else:
                yield item

    def _demuxed(self) -> Iterator[tuple[str, object]]:
        streams = (self._video_in, *[a.source for a in self._audio])
        audio: list[av.Packet] = []
        frame_time = float(1 / self.info.frame_rate) if self.info.frame_rate else 0.0
        for frame in checked_decode(self._input, streams, self.source, audio.append):
            yield from self._audio_read(audio)
            if frame.time is not None:
                self.media_end = max(self.media_end, frame.time + frame_time)
            yield "video", frame
        yield from self._audio_read(audio)

    def _audio_read(self, packets: list[av.Packet]) -> Iterator[tuple[str, object]]:
        for packet in packets:
            if packet.pts is not None and packet.time_base:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                self.media_end = max(self.media_end, end)
            yield "audio", packet
        packets.clear()

    def write(self, frame: av.VideoFrame) -> None:
        """Hand a frame to the encoder, which runs in a thread of its own; an encoding
        failure is raised here, or by `finish()`."""
        self._writer.put("video", frame)

    def _write_audio(self, packet: av.Packet) -> None:
        with self._encoding(f"{self.source.name}: audio could not be passed on"):
            self._audio_by_stream[packet.stream.index].push(packet)

    def _write_video(self, frame: av.VideoFrame) -> None:
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            # the encoder would stretch it to its own size without a word
            frame = fit(frame, self.info.width, self.info.height)
        frame.pts = self._next_pts(frame.pts)
        frame.time_base = self._video_in.time_base
        with self._encoding(f"{self.source.name}: encoding failed"):
            for packet in self._video_out.encode(frame):
                self._output.mux(packet)
        self.frames_written += 1

    def _next_pts(self, pts: int | None) -> int:
        """Keep source timestamps (variable rate included); invent them only where missing."""
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        if self._first_pts is None:
            self._first_pts = pts
        self._last_pts = pts
        return pts

    @property
    def _step(self) -> int:
        """One frame at the average rate, in stream time units."""
        return max(1, round(1 / (self.info.frame_rate * self.info.time_base)))

    @property
    def duration_written(self) -> float:
        """Seconds from the first written frame to the end of the last one."""
        if self._first_pts is None or self._last_pts is None:
            return 0.0
        span = self._last_pts - self._first_pts + self._step
        return float(span * self.info.time_base)

    def finish(self) -> None:
        self._writer.finish()
        self._stop_reader()
        with self._encoding(f"{self.source.name}: encoding failed"):
            for packet in self._video_out.encode(None):
                self._output.mux(packet)
            for audio in self._audio:
                audio.flush()
            self._stack.close()

    def close(self) -> None:
        """Close both files, whatever state they are in; the output is then abandoned."""
        self._writer.abandon()
        self._stop_reader()
        # the output is being thrown away: its trailer failing does not matter
        with suppress(av.error.FFmpegError, OSError, ValueError):
            self._stack.close()

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class _Writer:
    """The encoding thread: frames and audio packets, written in the order given. It
    starts with the first of them, so a transcoder given up before that leaves none."""

    def __init__(self, transcoder: Transcoder) -> None:
        self._handlers: dict[str, Callable[[Any], None]] = {
            "video": transcoder._write_video,
            "audio": transcoder._write_audio,
        }
        self._queue: queue.Queue[tuple[str, object] | None] = queue.Queue(maxsize=QUEUED_FRAMES)
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is None:  # after a failure, only drain: the caller stops
                try:
                    self._handlers[item[0]](item[1])
                except BaseException as exc:
                    self._failure = exc

    def put(self, kind: str, item: object) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="transcode-write", daemon=True)
            self._thread.start()
        self._queue.put((kind, item))

    def finish(self) -> None:
        """Wait for everything given to be written; raise what failed."""
        self._stop()
        self._raise()

    def abandon(self) -> None:
        self._failure = self._failure or _Abandoned()
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self._failure is not None and not isinstance(self._failure, _Abandoned):
            raise self._failure


class _Abandoned(Exception):
    """The output was given up: the writer only drains what is left."""


class _AudioPass:
    """One audio stream, copied packet by packet, or re-encoded to AAC if it must be."""

    def __init__(self, source, output) -> None:  # type: ignore[no-untyped-def]
        self.source, self._output = source, output
        codec = source.codec_context.name
        self._copy = codec in output.supported_codecs
        if self._copy:
            self.target = output.add_stream_from_template(source)
        else:
            rate = source.codec_context.sample_rate or 48000
            self.target = output.add_stream("aac", rate=rate)
            self.target.layout = source.codec_context.layout.name or "mono"
            self._resampler = av.AudioResampler(format="fltp", layout=self.target.layout, rate=rate)

    def push(self, packet) -> None:  # type: ignore[no-untyped-def]
        if self._copy:
            packet.stream = self.target
            self._output.mux(packet)
            return
        for frame in packet.decode():
            self._encode(frame)

    def _encode(self, frame) -> None:  # type: ignore[no-untyped-def]
        for resampled in self._resampler.resample(frame):
            for out in self.target.encode(resampled):
                self._output.mux(out)

    def flush(self) -> None:
        if self._copy:
            return
        self._encode(None)
        for out in self.target.encode(None):
            self._output.mux(out)


def _count_and_check_tail(path: Path) -> tuple[int, float]:
    """Count the video packets (one per frame in what privmask writes) and the time they
    span, without decoding; then decode from the last keyframe to the end: a clip whose
    end decodes is whole."""
    with open_clip(path) as container:
        stream = container.streams.video[0]
        packets, last_key, first, end = 0, None, None, None
        for packet in container.demux(stream):
            if not packet.size or packet.pts is None:
                continue
            packets += 1
            first = packet.pts if first is None else min(first, packet.pts)
            finish = packet.pts + (packet.duration or 0)
            end = finish if end is None else max(end, finish)
            if packet.is_keyframe:
                last_key = packet.pts
        if last_key is None or first is None or end is None:
            raise VideoError(f"{path}: output holds no keyframe", "output_undecodable")
        container.seek(last_key, stream=stream, backward=True, any_frame=False)
        stream.thread_type = "AUTO"
        tail = sum(1 for _ in checked_decode(container, (stream,), path, lambda p: None))
        if tail == 0:
            raise VideoError(f"{path}: the end of the output does not decode", "output_undecodable")
        return packets, float((end - first) * (stream.time_base or 0))


def verify_output(
    path: Path, expected_frames: int, expected_duration: float, name: str = ""
) -> VideoInfo:
    """Check a written clip: it opens, its last stretch decodes, and it has the expected
    frame count and duration. Messages call the file `name` (e.g. its final name)."""
    try:
        info = probe(path)
        frames, duration = _count_and_check_tail(path)
    except VideoError as exc:
        raise VideoError(str(exc).replace(str(path), name or str(path)), exc.code) from None
    label = name or str(path)
    if frames != expected_frames:
        raise VideoError(
            f"{label}: output has {frames} frames, expected {expected_frames}", "output_frames"
        )
    tolerance = max(0.1, 2 / float(info.frame_rate or 1))
    if expected_duration and not math.isclose(duration, expected_duration, abs_tol=tolerance):
        raise VideoError(
            f"{label}: output lasts {duration:.2f} s, expected {expected_duration:.2f} s",
            "output_duration",
        )
    return info
