"""Cutting a time range out of a clip by stream copy: no re-encode, starts at a keyframe,
every frame kept decodes, audio comes along, timestamps start at zero."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.adapters.cut import cut
from privmask.adapters.video import VideoError, probe

from clips import write_clip

FPS = 25
BITS = 8  # 160 px: eight columns of 20


def numbered_clip(path: Path, frames: int = 125, gop: int = 25, audio: bool = True) -> Path:
    """H.264 with B-frames and a keyframe every `gop` frames; frame n shows n in binary,
    one black or white column a bit, so a decoded frame says which one it is."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.codec_context.gop_size = gop
        video.codec_context.options = {"bf": "2", "sc_threshold": "0", "keyint_min": str(gop)}
        sound = container.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(frames):
            image = np.zeros((120, 160, 3), dtype=np.uint8)
            for bit in range(BITS):
                if index >> bit & 1:
                    image[:, bit * 20 : (bit + 1) * 20] = 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            total = frames * 48000 // FPS
            for start in range(0, total, 1024):
                wave = np.zeros((1, min(1024, total - start)), dtype=np.float32)
                chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    return path


def shown(path: Path) -> list[tuple[int, float]]:
    """(frame number from its grey level, time in s) of every frame, in display order."""
    with av.open(str(path)) as container:
        return [(_number(frame), float(frame.time or 0)) for frame in container.decode(video=0)]


def _number(frame: av.VideoFrame) -> int:
    grey = frame.to_ndarray(format="gray")
    return sum(1 << bit for bit in range(BITS) if grey[:, bit * 20 : (bit + 1) * 20].mean() > 128)


def packets_are_copied(source: Path, target: Path) -> bool:
    """Every video packet of the cut is byte for byte a packet of the source."""
    with av.open(str(source)) as container:
        original = {bytes(p) for p in container.demux(video=0) if p.size}
    with av.open(str(target)) as container:
        return all(bytes(p) in original for p in container.demux(video=0) if p.size)


def test_a_cut_starts_at_the_keyframe_before_and_copies_the_packets(tmp_path: Path) -> None:
    source = numbered_clip(tmp_path / "source.mp4")
    target = tmp_path / "cut.mp4"

    result = cut(source, target, start=1.5, end=3.0)

    frames = shown(target)
    assert result.start == pytest.approx(1.0)  # the keyframe at or before 1.5 s
    assert frames[0] == (25, pytest.approx(0.0))  # and the cut's own time starts at zero
    numbers = [n for n, _ in frames]
    assert numbers == list(range(25, 25 + len(numbers)))  # every frame decodes, in order
    assert 74 <= numbers[-1] <= 77  # up to 3.0 s; a stream copy may keep a B-frame's anchor
    assert result.frames == len(numbers)
    assert packets_are_copied(source, target)
    info = probe(target)
    assert [a.codec for a in info.audio] == ["aac"]
    assert info.duration_s == pytest.approx(2.0, abs=0.2)


def test_open_ends_cut_from_the_start_or_to_the_end(tmp_path: Path) -> None:
    source = numbered_clip(tmp_path / "source.mp4", audio=False)

    cut(source, tmp_path / "head.mp4", start=None, end=2.0)
    cut(source, tmp_path / "tail.mp4", start=4.2, end=None)

    head = [n for n, _ in shown(tmp_path / "head.mp4")]
    tail = [n for n, _ in shown(tmp_path / "tail.mp4")]
    assert head[0] == 0 and 49 <= head[-1] <= 52
    assert tail == list(range(100, 125))


def test_a_range_outside_the_clip_is_refused_and_nothing_written(tmp_path: Path) -> None:
    source = numbered_clip(tmp_path / "source.mp4", audio=False)
    target = tmp_path / "cut.mp4"

    with pytest.raises(VideoError, match="after the clip ends"):
        cut(source, target, start=30.0, end=None)
    with pytest.raises(ValueError, match="before"):
        cut(source, target, start=3.0, end=2.0)
    assert not target.exists()


def test_rotation_and_audio_survive_a_cut(tmp_path: Path) -> None:
    source = write_clip(tmp_path / "phone.mp4", frames=50, rotation=90, audio="aac")
    target = tmp_path / "cut.mkv"  # another container than the source's

    cut(source, target, start=0.5, end=1.5)

    info = probe(target)
    assert info.rotation == 90 and [a.codec for a in info.audio] == ["aac"]
