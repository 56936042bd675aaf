"""Licence-plate detection with HyperLPR3's y5fu 320 model (a YOLOv5-face style head).

The export already decodes its rows into pixels of the 320x320 input (checked by running
it): cx, cy, w, h, objectness, four corners (x, y), then two plate-type scores (single- and
double-row plates). The score is objectness times the better type score, as HyperLPR3 does.
The model was trained mostly on Chinese plates and sees the whole frame at 320 px, so small
plates in wide views are found only when they are close enough to the camera.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from privmask.adapters.detections import Detections, TargetClass, nms
from privmask.adapters.detectors.base import Frame, has_pixels, letterbox, onnx_session

_INPUT_SIZE = 320
_PAD_VALUE = 0
_NMS_IOU = 0.5
_ROW_WIDTH = 15


class PlateDetector:
    """Licence plates.

    Each box is the union of the detection box and the bounding box of the four predicted
    corners, so a tilted plate is covered even where the two disagree.
    """

    name = "hyperlpr-plate"
    classes = frozenset({TargetClass.PLATE})

    def __init__(self, model_path: Path | str, min_score: float = 0.4, threads: int = 0) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        self.min_score = min_score
        self._session = onnx_session(str(model_path), threads)
        self._input_name = self._session.get_inputs()[0].name

    def detect(self, frame: Frame) -> Detections:
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        square, back = letterbox(frame, _INPUT_SIZE, _PAD_VALUE)
        # The model wants RGB scaled to 0..1.
        blob = (square[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        rows = self._session.run(None, {self._input_name: blob})[0][0]
        if rows.ndim != 2 or rows.shape[1] != _ROW_WIDTH:
            raise ValueError(f"unexpected model output shape {rows.shape} for the plate model")
        score = rows[:, 4] * rows[:, 13:15].max(axis=1)
        hits = np.nonzero(score >= self.min_score)[0]
        if len(hits) == 0:
            return Detections.empty()
        centre, size = rows[hits, 0:2], rows[hits, 2:4]
        corners = rows[hits, 5:13].reshape(-1, 4, 2)
        xyxy = np.concatenate(
            [
                np.minimum(centre - size / 2, corners.min(axis=1)),
                np.maximum(centre + size / 2, corners.max(axis=1)),
            ],
            axis=1,
        ).astype(np.float32)
        keep = nms(xyxy, score[hits].astype(np.float32), _NMS_IOU)
        found = Detections.create(xyxy[keep] * back, score[hits][keep], TargetClass.PLATE)
        return found.clipped(width, height)
