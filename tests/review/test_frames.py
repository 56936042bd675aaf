"""A preview frame is reached by seeking, and it is exactly the frame the pipeline calls by
that number (`decode_frames` counts them in presentation order): on clips with several
keyframes, with and without B-frames (frames stored out of the order they are shown)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from privmask.adapters.video import decode_frames
from privmask.daemon.review.frames import FrameMissing, FrameReader

FRAMES, GOP = 120, 12
SIZE = (160, 96)


def write_clip(path: Path, b_frames: int) -> None:
    """Noise frames (each unlike the others), a keyframe every GOP frames."""
    rng = np.random.default_rng(7)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.time_base = Fraction(1, 25)
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "bf": str(b_frames),
                          "sc_threshold": "0", "preset": "veryfast"}  # fmt: skip
        for n in range(FRAMES):
            picture = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def stored_out_of_order(path: Path) -> bool:
    with av.open(str(path)) as container:
        pts = [p.pts for p in container.demux(video=0) if p.pts is not None]
    return pts != sorted(pts)


@pytest.mark.parametrize("b_frames", [0, 2])
def test_a_seeked_frame_is_the_pipelines_frame_of_that_number(
    tmp_path: Path, b_frames: int
) -> None:
    path = tmp_path / f"gop-b{b_frames}.mp4"
    write_clip(path, b_frames)
    assert stored_out_of_order(path) == (b_frames > 0)
    pipeline = [f.to_ndarray() for f in decode_frames(path, writable=False)]
    assert len(pipeline) == FRAMES
    reader = FrameReader(path)
    wanted = [FRAMES - 1, 0, 5, GOP, GOP + 1, 61, 95, 100, FRAMES - 2]
    for number in wanted:
        assert np.array_equal(reader.frame(number), pipeline[number]), number
    # each frame decoded from its keyframe, not from the clip's start
    assert reader.decoded <= len(wanted) * (GOP + 4)


def test_a_frame_past_the_end_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    write_clip(path, 0)
    with pytest.raises(FrameMissing):
        FrameReader(path).frame(FRAMES)
