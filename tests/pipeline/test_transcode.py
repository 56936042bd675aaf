"""The pipeline's video path on real clips: what goes in comes out, masked where asked."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.adapters.video import VideoError, probe
from privmask.daemon.pipeline import redact
from privmask.rules.plan import MaskStyle, RedactionPlan, Region

from conftest import write_clip

LEFT_HALF = RedactionPlan(regions=(Region.parse("0,0,0.5,1"),), region_style=MaskStyle.SOLID)


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def audio_packets(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [hashlib.sha256(bytes(p)).hexdigest() for p in container.demux(audio=0) if p.size]


def test_static_region_is_solid_and_rest_untouched(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = redact(clip, out, LEFT_HALF)
    assert result.frames == 30
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        for before, after in zip(a.decode(video=0), b.decode(video=0), strict=True):
            x, y = before.to_ndarray(format="rgb24"), after.to_ndarray(format="rgb24")
            assert y[:, :156].max() <= 20  # solid black, up to coding noise at the edge
            diff = np.abs(x[:, 164:].astype(int) - y[:, 164:].astype(int)).mean()
            assert diff < 3
    assert result.masked_area == pytest.approx(0.5, abs=0.02)


def test_keeps_frame_count_size_rate_and_timestamps(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", frames=40, size=(352, 288), fps=15)
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    after = probe(out)
    assert (after.width, after.height, after.frame_rate) == (352, 288, Fraction(15))
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-3)


def test_variable_frame_rate_keeps_every_timestamp(tmp_path: Path) -> None:
    # a camera that stutters: gaps of 40, 80 and 120 ms
    pts = np.cumsum([0] + [40, 80, 40, 120, 40, 40, 80] * 5).tolist()
    src = write_clip(tmp_path / "vfr.mkv", frames=len(pts), pts=pts, time_base=Fraction(1, 1000))
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    assert frame_times(out) == pytest.approx(frame_times(src), abs=1e-3)


def test_rotation_is_kept(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "phone.mp4", rotation=90)
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    assert probe(src).rotation == 90
    assert probe(out).rotation == 90


def test_aac_audio_is_copied_bit_for_bit(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "talk.mp4", frames=50, audio="aac")
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    assert probe(out).audio[0].codec == "aac"
    assert audio_packets(out) == audio_packets(src)


def test_audio_the_container_cannot_hold_is_reencoded(tmp_path: Path) -> None:
    # G.711 (mu-law), as many cameras record it, cannot go into MP4 as is
    src = write_clip(tmp_path / "cam.mov", frames=50, audio="pcm_mulaw")
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    audio = probe(out).audio
    assert [a.codec for a in audio] == ["aac"]
    with av.open(str(out)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples == pytest.approx(2 * 16000, rel=0.05)  # two seconds at 16 kHz


def test_h265_source_becomes_h264(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "hevc.mp4", codec="libx265")
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    assert probe(src).codec == "hevc"
    assert probe(out).codec == "h264"
    assert len(frame_times(out)) == 30


def truncated(tmp_path: Path) -> Path:
    src = write_clip(tmp_path / "whole.mkv", frames=60)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    return cut


BROKEN = {
    "empty": lambda d: (d / "empty.mp4").write_bytes(b"") and None or d / "empty.mp4",
    "text": lambda d: (d / "notes.mp4").write_text("not a video\n" * 20) and d / "notes.mp4",
    "truncated mp4": lambda d: _cut_mp4(d),
    "absurd size": lambda d: write_clip(d / "huge.mp4", frames=2, size=(8208, 16)),
    "unsupported codec": lambda d: write_clip(d / "ffv1.mkv", frames=3, codec="ffv1"),
}


def _cut_mp4(folder: Path) -> Path:
    src = write_clip(folder / "whole.mp4", frames=60)
    data = src.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    src.unlink()
    return cut


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_input_fails_cleanly_and_leaves_nothing(kind: str, tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    src = BROKEN[kind](inbox)
    before = src.read_bytes()
    with pytest.raises(VideoError) as failure:
        redact(src, outbox / "result.mp4", LEFT_HALF)
    assert str(src) in str(failure.value)
    assert list(outbox.iterdir()) == []
    assert src.read_bytes() == before  # the source is never touched


def test_truncated_stream_without_index_fails(tmp_path: Path) -> None:
    outbox = tmp_path / "out"
    outbox.mkdir()
    with pytest.raises(VideoError):
        redact(truncated(tmp_path), outbox / "result.mp4", LEFT_HALF)
    assert list(outbox.iterdir()) == []


def test_verification_rejects_a_short_or_cut_output(tmp_path: Path) -> None:
    from privmask.adapters.video import verify_output

    whole = write_clip(tmp_path / "whole.mkv", frames=50)
    assert verify_output(whole, 50, 2.0).width == 320
    with pytest.raises(VideoError, match="has 50 frames, expected 51"):
        verify_output(whole, 51, 2.0)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(VideoError):
        verify_output(cut, 50, 2.0)
