"""Person detection with YOLOX-style ONNX heads (YOLOX-nano, the light person detector).

Both models share one head layout: one row per grid cell of the stride 8, 16 and 32 maps,
holding (cx, cy) relative to the cell, log (w, h) in strides, objectness, then one score per
class. YOLOX-nano has the 80 COCO classes and we keep class 0 (person); the light person
detector has only the person class. Both take the frame scaled into the top-left corner of
an input padded with 114, as BGR 0..255 without normalisation (checked by running them).

The files declare a square input, but both nets are fully convolutional and run at any
multiple of 32 (checked): the input is left open in memory at load, and a 16:9 frame is
given a 416x256 input instead of a 416x416 one mostly of padding (9 ms instead of 14 ms).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass, nms
from privmask.adapters.detectors.base import Frame, any_input_size, has_pixels, onnx_session

_STRIDES = (8, 16, 32)
_PAD_VALUE = 114
_NMS_IOU = 0.45
_PERSON = 0  # COCO class index; also the only class of the light person detector


def _grid(width: int, height: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell origins (N, 2) and strides (N, 1) in the order the head emits its rows."""
    cells, strides = [], []
    for stride in _STRIDES:
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((xs.size, 1), stride))
    return (
        np.concatenate(cells).astype(np.float32),
        np.concatenate(strides).astype(np.float32),
    )


class YoloxPersonDetector:
    """People, via a YOLOX-style model.

    input_size: the long side of the model's input, the square side its file declares;
        None reads it from the file (416 for YOLOX-nano, 192 for the light person detector).
    min_score: keep boxes whose objectness x person score is at least this.
    """

    classes = frozenset({TargetClass.PERSON})

    def __init__(
        self,
        model_path: Path | str,
        input_size: int | None = None,
        min_score: float = 0.35,
        name: str = "yolox-nano",
        threads: int = 0,
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        self.name = name
        self.min_score = min_score
        model, shape = any_input_size(Path(model_path))
        self._session = onnx_session(model, threads)
        self._input_name = self._session.get_inputs()[0].name
        declared = shape[-1] or None
        if input_size is None:
            if declared is None:
                raise ValueError(f"{model_path}: the model has no fixed input size; pass one")
            input_size = declared
        if declared is not None and declared != input_size:
            raise ValueError(f"{model_path}: the model takes {declared} px, not {input_size}")
        if input_size % _STRIDES[-1]:
            raise ValueError(f"input_size must be a multiple of {_STRIDES[-1]}, got {input_size}")
        self.input_size = input_size
        self._grids: dict[tuple[int, int], tuple[npt.NDArray[np.float32], ...]] = {}

    def _input(self, frame: Frame) -> tuple[Frame, float]:
        """The frame scaled so its long side is `input_size`, padded right and bottom to
        multiples of the largest stride; and the scale back to frame pixels."""
        height, width = frame.shape[:2]
        scale = min(self.input_size / width, self.input_size / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        side = _STRIDES[-1]
        shape = (-(-new_h // side) * side, -(-new_w // side) * side, 3)
        padded = np.full(shape, _PAD_VALUE, dtype=np.uint8)
        padded[:new_h, :new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        return padded, 1.0 / scale

    def detect(self, frame: Frame) -> Detections:
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        image, back = self._input(frame)
        blob = image.transpose(2, 0, 1)[None].astype(np.float32)
        rows = self._session.run(None, {self._input_name: blob})[0][0]
        size = (image.shape[1], image.shape[0])
        if size not in self._grids:
            self._grids[size] = _grid(*size)
        cells, strides = self._grids[size]
        if rows.shape != (len(cells), rows.shape[1]) or rows.shape[1] < 6:
            raise ValueError(f"unexpected model output shape {rows.shape} for a YOLOX head")
        score = rows[:, 4] * rows[:, 5 + _PERSON]
        hits = np.nonzero(score >= self.min_score)[0]
        if len(hits) == 0:
            return Detections.empty()
        centre = (rows[hits, :2] + cells[hits]) * strides[hits]
        size_wh = np.exp(rows[hits, 2:4]) * strides[hits]
        xyxy = np.concatenate([centre - size_wh / 2, centre + size_wh / 2], axis=1)
        xyxy = xyxy.astype(np.float32)
        keep = nms(xyxy, score[hits].astype(np.float32), _NMS_IOU)
        found = Detections.create(xyxy[keep] * back, score[hits][keep], TargetClass.PERSON)
        return found.clipped(width, height)
