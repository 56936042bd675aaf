"""Judges of masked output: did a redaction hide what was inside a ground-truth box?

`masked_fraction` and `detail_lost` judge a redacted output frame against its original
frame inside a ground-truth box, with thresholds that H.264 re-encoding alone stays under;
`is_masked` combines them.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from privmask.daemon.testing.video import Box, Image

# masked_fraction: both crops are Gaussian-smoothed (sigma 2) and a pixel counts as changed
# when a channel moved by more than 30 levels. Measured on every face and person box of the
# default 720p scene, re-encoded at crf 23: the largest smoothed change was 24.6 (clean, crf
# 18 source) and 20.5 (cctv, crf 30 source), 99.99th percentiles 14 and 12.5; at crf 28 single
# pixels reach 39 but the 99.99th percentile stays under 20. A black fill changed >= 99.8 %
# of a clean box (>= 79 % of a dark cctv box, where black is close to the original).
CHANGE_SIGMA = 2.0
CHANGE_THRESHOLD = 30.0
# detail_lost looks at detail finer than 1/16 of the box height (eyes, mouth, edges of a
# face at any size). Crf 23 re-encoding lost at most 0.08 (clean) and 0.24 (cctv, whose noise
# the encoder smooths away); a blur of sigma h/12 lost >= 0.79, a solid fill 1.0; pixelation
# with 8 blocks per box height lost 0.39-1.0 (0.72-0.78 on average), so judge pixelation by
# its block size too, not by this number alone.
DETAIL_SCALE = 1 / 16


Planes = npt.NDArray[np.float32]


def channel_change(a: Planes, b: Planes) -> Planes:
    """Per pixel, the largest change of any channel between two BGR pictures (the same as
    `np.abs(a - b).max(axis=2)`, several times faster on whole frames)."""
    diff = cv2.absdiff(a, b)
    return np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])


def _crop(image: Image, box: Box) -> Image:
    x1, y1, x2, y2 = box
    return image[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)]


def masked_fraction(
    original: Image, output: Image, box: Box, threshold: float = CHANGE_THRESHOLD
) -> float:
    """Share of the box's pixels that a mask clearly changed (0 = untouched, 1 = all).

    Both crops are Gaussian-smoothed (CHANGE_SIGMA) so that re-encoding's blocky, per-pixel
    error averages out, then a pixel counts as changed when any channel moved by more than
    `threshold` levels. A fill that matches the original colour counts as unchanged; judge
    blur and pixelation with `detail_lost`, which asks whether the detail is gone.
    """
    a, b = _crop(original, box), _crop(output, box)
    if a.size == 0:
        return 0.0
    sa = cv2.GaussianBlur(a.astype(np.float32), (0, 0), CHANGE_SIGMA)
    sb = cv2.GaussianBlur(b.astype(np.float32), (0, 0), CHANGE_SIGMA)
    return float((channel_change(sa, sb) > threshold).mean())


def is_masked(original: Image, output: Image, box: Box) -> bool:
    """Whether a redaction hid what was in `box`: its detail is gone (blur, pixelate) or
    its pixels were replaced (solid fill). Tests and the benchmark judge by this alone."""
    return (
        detail_lost(original, output, box) >= 0.5 or masked_fraction(original, output, box) >= 0.9
    )


def detail_lost(original: Image, output: Image, box: Box) -> float:
    """How much of the original's fine detail in the box the output lacks (0 = all kept).

    Detail is the grey image minus its blur at DETAIL_SCALE of the box height. The share
    kept is the least-squares weight of the original's detail in the output's detail: near
    1 when the detail is still there (re-encoding keeps most of it), near 0 after a solid
    fill or a blur, and low after a pixelation whose blocks are larger than the features.
    """
    a, b = _crop(original, box), _crop(output, box)
    if a.size == 0:
        return 0.0
    sigma = max(1.0, a.shape[0] * DETAIL_SCALE)
    da, db = _detail(a, sigma), _detail(b, sigma)
    energy = float((da * da).sum())
    if energy == 0.0:
        return 0.0
    kept = float((da * db).sum()) / energy
    return float(np.clip(1.0 - kept, 0.0, 1.0))


def _detail(image: Image, sigma: float) -> npt.NDArray[Any]:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return grey - cv2.GaussianBlur(grey, (0, 0), sigma)
