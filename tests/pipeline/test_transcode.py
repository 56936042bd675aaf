"""The pipeline's video path on real clips: what goes in comes out, masked where asked."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.adapters.video import VideoError, probe
from privmask.daemon.pipeline.offline import redact
from privmask.rules.plan import PlanError, RedactionPlan, Region, TargetPlan

from clips import write_clip

LEFT_HALF = RedactionPlan(regions=(Region.parse("0,0,0.5,1"),))


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


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut(folder: Path, suffix: str, keep: float) -> Path:
    """A real clip cut short, as an interrupted copy leaves it."""
    whole = write_clip(folder / f"whole{suffix}", frames=60)
    data = whole.read_bytes()
    whole.unlink()
    return _written(folder / f"cut{suffix}", data[: int(len(data) * keep)])


BROKEN = {
    "empty": lambda d: _written(d / "empty.mp4", b""),
    "text": lambda d: _written(d / "notes.mp4", b"not a video\n" * 20),
    "truncated mp4": lambda d: _cut(d, ".mp4", 2 / 3),
    "truncated mkv (no frame count)": lambda d: _cut(d, ".mkv", 1 / 2),
    "absurd size": lambda d: write_clip(d / "huge.mp4", frames=2, size=(8208, 16)),
    "unsupported codec": lambda d: write_clip(d / "ffv1.mkv", frames=3, codec="ffv1"),
}


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


def test_verification_rejects_a_short_or_cut_output(tmp_path: Path) -> None:
    from privmask.adapters.transcode import verify_output

    whole = write_clip(tmp_path / "whole.mkv", frames=50)
    assert verify_output(whole, 50, 2.0).width == 320
    with pytest.raises(VideoError, match="has 50 frames, expected 51"):
        verify_output(whole, 51, 2.0)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(VideoError):
        verify_output(cut, 50, 2.0)


def test_pixel_aspect_ratio_is_kept(tmp_path: Path) -> None:
    # PAL D1 from a DVR: 704x576 with 12:11 pixels; lost, the picture plays stretched
    src = tmp_path / "d1.mkv"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 704, 576, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(12, 11)
        for index in range(10):
            frame = av.VideoFrame(704, 576, "yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    redact(src, out, LEFT_HALF)
    assert probe(out).sample_aspect_ratio == Fraction(12, 11)


def test_audio_running_past_the_video_is_not_taken_for_truncation(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "long-audio.mkv", frames=25, audio="aac", audio_seconds=3.0)
    assert probe(src).duration_s > 2.5  # the container's duration is the audio's
    result = redact(src, tmp_path / "out.mp4", LEFT_HALF)
    assert result.frames == 25


def test_single_frame_clip(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "still.mp4", frames=1)
    assert redact(src, tmp_path / "out.mp4", LEFT_HALF).frames == 1


def test_odd_frame_size_is_refused_with_a_reason(tmp_path: Path) -> None:
    src = tmp_path / "odd.mkv"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 321, 241, "yuvj444p"
        frame = av.VideoFrame(321, 241, "yuvj444p")
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    outbox = tmp_path / "out"
    outbox.mkdir()
    with pytest.raises(VideoError, match="odd frame size 321x241"):
        redact(src, outbox / "x.mp4", LEFT_HALF)
    assert list(outbox.iterdir()) == []


def test_region_outside_the_picture_is_an_error_not_a_silent_skip(
    clip: Path, tmp_path: Path
) -> None:
    plan = RedactionPlan(regions=(Region.parse("1000,1000,1200,1200", name="far"),))
    with pytest.raises(PlanError, match="region far lies outside the 320x240 picture"):
        redact(clip, tmp_path / "out.mp4", plan)
    assert not (tmp_path / "out.mp4").exists()


def test_a_model_of_another_class_is_refused(clip: Path, tmp_path: Path, models_dir: Path) -> None:
    plan = RedactionPlan(targets=(TargetPlan("face", model="yolox-nano"),))
    with pytest.raises(PlanError, match="model yolox-nano does not detect faces"):
        redact(clip, tmp_path / "out.mp4", plan, models_dir=models_dir)


def test_report_is_published_with_the_video_or_not_at_all(clip: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.mp4", tmp_path / "out.json"
    redact(clip, out, LEFT_HALF, report=report)
    assert out.exists() and report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.json", "out.mp4"]
