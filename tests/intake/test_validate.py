"""Validation of imported clips against the technical requirements, on real files."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.adapters import validate as validate_module
from privmask.adapters.validate import CODES, Limits, ValidationError, validate
from privmask.adapters.video import ERROR_CODES, VideoError, VideoErrorCode

from clips import write_clip


def rejected(path: Path, limits: Limits = Limits()) -> str:
    """The rejection code; also checks that the reason names the file."""
    with pytest.raises(ValidationError) as caught:
        validate(path, limits)
    rejection = caught.value.rejection
    assert rejection.code in CODES
    assert path.name in rejection.reason
    return rejection.code


def fingerprint(path: Path) -> tuple[str, int, int]:
    info = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mtime_ns, info.st_size


def test_good_mp4_passes(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "good.mp4", frames=75)
    before = fingerprint(clip)
    info = validate(clip)
    assert "mp4" in info.container.split(",") and info.codec == "h264"
    assert (info.width, info.height) == (320, 240)
    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    assert fingerprint(clip) == before  # the source is never modified


def test_real_nvr_mp4_passes(media_dir: Path) -> None:
    clip = media_dir / "nvr" / "moonfire_clip.mp4"
    before = fingerprint(clip)
    info = validate(clip)
    assert info.codec == "h264" and (info.width, info.height) == (320, 240)
    assert info.duration_s == pytest.approx(10.0, abs=0.5)
    assert fingerprint(clip) == before


def test_real_vendor_backup_is_rejected_clearly(media_dir: Path) -> None:
    psf = media_dir / "nvr" / "pavs_video1.psf"
    with pytest.raises(ValidationError) as caught:
        validate(psf)
    assert caught.value.rejection.code == "not_a_video"
    assert "PAVS" in caught.value.rejection.reason  # says what the file is
    assert "pavs_video1.psf" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("empty.mp4", b"", "empty"),
        ("notes.mp4", b"camera 3 was offline on Tuesday\n" * 20, "not_a_video"),
        ("noise.mp4", np.random.default_rng(1).bytes(50_000), "not_a_video"),
        ("noise.bin", np.random.default_rng(2).bytes(50_000), "not_a_video"),
    ],
)
def test_non_videos_are_rejected(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert rejected(path) == code


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert rejected(tmp_path / "gone.mp4") == "unreadable"
    assert rejected(tmp_path) == "unreadable"


def test_mjpeg_avi_passes(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "cam.avi", codec="mjpeg", pix_fmt="yuvj420p")
    info = validate(clip)
    assert (info.container, info.codec) == ("avi", "mjpeg")


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_matroska_and_mpegts_pass(tmp_path: Path, suffix: str) -> None:
    # a 3 s clip with one keyframe: seeking near the end of a TS lands past it
    info = validate(write_clip(tmp_path / f"clip{suffix}", frames=75))
    assert info.codec == "h264"


def test_truncated_mp4_is_rejected(tmp_path: Path) -> None:
    data = write_clip(tmp_path / "whole.mp4", frames=75).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])  # a copy interrupted part way
    assert rejected(cut) == "truncated"


def test_damaged_end_is_rejected(tmp_path: Path) -> None:
    """Structure intact, but the last part of the picture data overwritten: the start
    decodes, the end does not."""
    data = bytearray(write_clip(tmp_path / "whole.mp4", frames=75).read_bytes())
    mdat, moov = data.index(b"mdat"), data.index(b"moov")
    data[moov - (moov - mdat) // 2 : moov - 8] = bytes(moov - 8 - (moov - (moov - mdat) // 2))
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    assert rejected(damaged) == "undecodable_end"


def test_damaged_start_is_rejected(tmp_path: Path) -> None:
    data = bytearray(write_clip(tmp_path / "whole.mp4", frames=75).read_bytes())
    mdat = data.index(b"mdat")
    data[mdat + 4 : mdat + 4 + 4000] = bytes(4000)  # the only keyframe is gone
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    assert rejected(damaged) == "undecodable_start"


def test_limits(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=75, size=(640, 360))
    assert rejected(clip, Limits(max_seconds=2.0)) == "too_long"
    assert rejected(clip, Limits(min_seconds=5.0)) == "too_short"
    assert rejected(clip, Limits(max_width=320, max_height=240)) == "resolution"
    assert rejected(clip, Limits(max_bytes=100)) == "too_large"
    assert rejected(clip, Limits(codecs=frozenset({"hevc"}))) == "unsupported_codec"
    assert rejected(clip, Limits(containers=frozenset({"matroska"}))) == "unsupported_container"
    # a corridor-mode (portrait) camera fits the same limits turned
    portrait = write_clip(tmp_path / "portrait.mp4", frames=5, size=(360, 640))
    assert validate(portrait, Limits(max_width=640, max_height=360)).height == 640


def test_codec_outside_the_defaults(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "old.avi", codec="mpeg4")
    assert rejected(clip) == "unsupported_codec"
    assert validate(clip, Limits(codecs=frozenset({"mpeg4"}))).codec == "mpeg4"


def test_gif_is_an_unsupported_container(media_dir: Path) -> None:
    assert rejected(media_dir / "intel_people-detection.gif") == "unsupported_container"


def _h264_packets(frames: int, size: tuple[int, int], fps: int) -> list[av.Packet]:
    """Annex-B H.264 as a camera sends it: SPS/PPS in band, a keyframe every second."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = size
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps)
    ctx.gop_size = fps
    ctx.max_b_frames = 0
    packets = []
    for index in range(frames):
        image = np.full((size[1], size[0], 3), (index * 5) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    return packets


def test_synthetic_hikvision_imkh_is_accepted(tmp_path: Path) -> None:
    """SYNTHETIC: no licensed Hikvision export exists for tests. Their exports are MPEG-PS
    behind a 40-byte header starting with b"IMKH", often named .mp4; FFmpeg finds the PS."""
    ps = tmp_path / "stream.vob"
    with av.open(str(ps), "w", format="vob") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(50):
            image = np.full((240, 320, 3), index * 4, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    export = tmp_path / "ch01_20240501120000.mp4"
    export.write_bytes(b"IMKH" + bytes(range(1, 37)) + ps.read_bytes())
    info = validate(export)
    assert (info.container, info.codec) == ("mpeg", "h264")


def _dhav_date(seconds: int) -> int:
    """DHAV's packed wall-clock date: 2024-05-01 12:MM:SS."""
    return (
        (seconds % 60)
        | ((seconds // 60 % 60) << 6)
        | (12 << 12)
        | (1 << 17)
        | (5 << 22)
        | (24 << 26)
    )


def write_synthetic_dav(path: Path, frames: int = 75, fps: int = 25) -> Path:
    """SYNTHETIC Dahua .dav: FFmpeg has a dhav demuxer but no muxer, so the frames are framed
    by hand: a 24-byte "DHAV" header (frame type 0xFD key / 0xFC other, number, length,
    date, milliseconds, extension length), extensions 0x81 (codec 2 = H.264, fps) and 0x82
    (width, height), the H.264 payload, and a "dhav" + length trailer."""
    width, height = 320, 240
    extension = bytes([0x81, 0, 0x02, fps, 0x82, 0, 0, 0]) + struct.pack("<HH", width, height)
    out = bytearray()
    for number, packet in enumerate(_h264_packets(frames, (width, height), fps)):
        payload = bytes(packet)
        millis = number * 1000 // fps
        length = 24 + len(extension) + len(payload) + 8
        kind = 0xFD if packet.is_keyframe else 0xFC
        out += b"DHAV" + bytes([kind, 0, 0, 0])
        out += struct.pack("<III", number, length, _dhav_date(millis // 1000))
        out += struct.pack("<HBB", millis % 65536, len(extension), 0)
        out += extension + payload + b"dhav" + struct.pack("<I", length)
    path.write_bytes(out)
    return path


def test_synthetic_dahua_dav_is_accepted(tmp_path: Path) -> None:
    info = validate(write_synthetic_dav(tmp_path / "ch1_main_20240501120000.dav"))
    assert (info.container, info.codec) == ("dhav", "h264")
    assert (info.width, info.height) == (320, 240)


def test_validation_error_carries_the_rejection(tmp_path: Path) -> None:
    path = tmp_path / "empty.mkv"
    path.touch()
    with pytest.raises(ValidationError) as caught:
        validate(path)
    assert str(caught.value).startswith("empty: ")
    assert caught.value.rejection.reason == "empty.mkv: empty file (0 bytes)"


def test_a_name_that_reads_like_a_reason_does_not_change_the_code(tmp_path: Path) -> None:
    """An audio-only Matroska file is not a video, whatever its name says: probe()'s error
    is classified by its code, not by words in its message (the name is in the message)."""
    path = tmp_path / "no such file, frame size, does not decode.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), "s16", "mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(ValidationError) as caught:
        validate(path)
    assert caught.value.rejection.code == "not_a_video"
    assert caught.value.rejection.reason == f"{path.name}: contains no video stream"


@pytest.mark.parametrize("code", ERROR_CODES)
def test_probe_error_code_becomes_the_rejection_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: VideoErrorCode
) -> None:
    """Whatever probe()'s message says, its code decides; a code that is no rejection code
    (the generic one, encoding, verifying) counts as not a video, as any unknown failure."""
    clip = write_clip(tmp_path / "clip.mp4", frames=5)

    def failing_probe(path: Path) -> None:
        raise VideoError(f"{path}: wording nobody has written yet", code)

    monkeypatch.setattr(validate_module, "probe", failing_probe)
    with pytest.raises(ValidationError) as caught:
        validate(clip)
    expected = code if code in CODES else "not_a_video"
    assert caught.value.rejection.code == expected
    assert caught.value.rejection.reason == "clip.mp4: wording nobody has written yet"


def test_video_error_code_survives_pickling() -> None:
    """Worker processes and task queues send exceptions pickled: the code must come along."""
    error = pickle.loads(pickle.dumps(VideoError("clip.mp4: odd frame size", "resolution")))
    assert (str(error), error.code) == ("clip.mp4: odd frame size", "resolution")
    assert pickle.loads(pickle.dumps(VideoError("clip.mp4: changed"))).code == "invalid_video"


def test_damaged_middle_is_reported_as_such(tmp_path: Path) -> None:
    """Six seconds with one keyframe: the end is only reached by decoding from the start,
    through the damage. Damage there is in the middle, and says where it begins."""
    whole = write_clip(tmp_path / "whole.mp4", frames=150)
    data = bytearray(whole.read_bytes())
    with av.open(str(whole)) as container:
        stream = container.streams.video[0]
        packets = [
            (float(p.pts * stream.time_base), p.pos, p.size)
            for p in container.demux(stream)
            if p.pts is not None
        ]
    hit = [(pos, size) for moment, pos, size in packets if 2.7 <= moment <= 3.3]
    assert hit
    for pos, size in hit:  # keep each frame's first bytes, overwrite the rest
        data[pos + size // 4 : pos + size] = bytes(size - size // 4)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    with pytest.raises(ValidationError) as caught:
        validate(damaged)
    rejection = caught.value.rejection
    assert rejection.code == "undecodable_middle"
    assert rejection.reason.startswith("damaged.mp4: ")
    assert " 2." in rejection.reason and "6.0 s" in rejection.reason  # where, out of how long


def test_a_link_is_not_followed(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    assert rejected(link) == "unreadable"
    with pytest.raises(ValidationError) as caught:
        validate(link)
    assert caught.value.rejection.reason == "link.mp4: not a regular file (a symbolic link)"


def test_a_named_pipe_is_not_opened(tmp_path: Path) -> None:
    """Opening a FIFO for reading would wait for a writer for ever."""
    pipe = tmp_path / "clip.mp4"
    os.mkfifo(pipe)
    with pytest.raises(ValidationError) as caught:
        validate(pipe)
    assert caught.value.rejection.reason == "clip.mp4: not a regular file (a named pipe)"


def test_validates_the_open_file_whatever_its_name_points_at_now(tmp_path: Path) -> None:
    """Given an open descriptor, validation reads that file: swapping the name for a link
    afterwards changes nothing, and reasons still name the file."""
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    fd = os.open(clip, os.O_RDONLY)
    try:
        clip.unlink()
        clip.symlink_to("/etc/hostname")
        info = validate(clip, fd=fd)
    finally:
        os.close(fd)
    assert info.codec == "h264" and info.path == clip
