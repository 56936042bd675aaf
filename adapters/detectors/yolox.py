"""Person detection with YOLOX-style ONNX heads (YOLOX-nano, the light person detector).

Both models share one head layout: one row per grid cell of the stride 8, 16 and 32 maps,
holding (cx, cy) relative to the cell, log (w, h) in strides, objectness, then one score per
class. YOLOX-nano has the 80 COCO classes and we keep class 0 (person); the light person
detector has only the person class. Both take the frame letterboxed to the top-left corner of
a square padded with 114, as BGR 0..255 without normalisation (checked by running them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass, nms
from privmask.adapters.detectors.base import Frame, has_pixels, letterbox, onnx_session

_STRIDES = (8, 16, 32)
_PAD_VALUE = 114
_NMS_IOU = 0.45
_PERSON = 0  # COCO class index; also the only class of the light person detector


def _grid(size: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell origins (N, 2) and strides (N, 1) in the order the head emits its rows."""
    cells, strides = [], []
    for stride in _STRIDES:
        side = size // stride
        ys, xs = np.mgrid[0:side, 0:side]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((side * side, 1), stride))
    return (
        np.concatenate(cells).astype(np.float32),
        np.concatenate(strides).astype(np.float32),
    )


class YoloxPersonDetector:
    """People, via a YOLOX-style model.

    input_size: the square side the model takes; None reads it from the model file
        (416 for YOLOX-nano, 192 for the light person detector).
    min_score: keep boxes whose objectness x person score is at least this.
    """

    classes = frozenset({TargetClass.PERSON})

    def __init__(
        self,
        model_path: Path | str,
        input_size: int | None = None,
        min_score: float = 0.35,
        name: str = "yolox-nano",
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        self.name = name
        self.min_score = min_score
        self._session = onnx_session(str(model_path))
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        declared = model_input.shape[-1]
        if input_size is None:
            if not isinstance(declared, int):
                raise ValueError(f"{model_path}: the model has no fixed input size; pass one")
            input_size = declared
        if isinstance(declared, int) and declared != input_size:
            raise ValueError(f"{model_path}: the model takes {declared} px, not {input_size}")
        if input_size % _STRIDES[-1]:
            raise ValueError(f"input_size must be a multiple of {_STRIDES[-1]}, got {input_size}")
        self.input_size = input_size
        self._cells, self._strides = _grid(input_size)

    def detect(self, frame: Frame) -> Detections:
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        square, back = letterbox(frame, self.input_size, _PAD_VALUE)
        blob = square.transpose(2, 0, 1)[None].astype(np.float32)
        rows = self._session.run(None, {self._input_name: blob})[0][0]
        if rows.shape != (len(self._cells), rows.shape[1]) or rows.shape[1] < 6:
            raise ValueError(f"unexpected model output shape {rows.shape} for a YOLOX head")
        score = rows[:, 4] * rows[:, 5 + _PERSON]
        hits = np.nonzero(score >= self.min_score)[0]
        if len(hits) == 0:
            return Detections.empty()
        centre = (rows[hits, :2] + self._cells[hits]) * self._strides[hits]
        size = np.exp(rows[hits, 2:4]) * self._strides[hits]
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
        keep = nms(xyxy, score[hits].astype(np.float32), _NMS_IOU)
        found = Detections.create(xyxy[keep] * back, score[hits][keep], TargetClass.PERSON)
        return found.clipped(width, height)
