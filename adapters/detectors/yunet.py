"""YuNet face detector, run through OpenCV's built-in `cv2.FaceDetectorYN`.

YuNet is the default face model: small, fast on a CPU, and decoded by OpenCV itself, so no
decoding of our own can drift from the reference. Its smallest anchors are 8 px, which makes
faces below about 20 px unreliable at native resolution; `upscale` trades time for those.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.adapters.detectors.base import Frame

# OpenCV's own defaults; a lower NMS IoU would merge neighbouring faces in a crowd.
_NMS_IOU = 0.3
_TOP_K = 5000


class YuNetFaceDetector:
    """Faces, via YuNet 2023mar.

    min_score: keep faces scoring at least this. 0.4 was chosen by measurement (pasted
        faces on real 1280x720 footage): every face of 32 px and up scores above 0.8, two
        thirds of 24 px faces pass 0.4, and face-free parking-lot footage gave 2 boxes in
        377 frames. YuNet also fires (0.4-0.7) on the backs of heads, which a privacy mask
        may cover anyway.
    max_side: frames whose long side is larger are shrunk to it for detection (cost grows
        with area), and the boxes are scaled back.
    upscale: enlarge the (possibly shrunk) frame by this factor before detection. At 1.0
        YuNet finds few faces under about 24 px; 1.5 finds 20 px faces (39 of 40 in the
        measurement) and 2.0 16 px faces, at about 2.3x and 8x the time.
    """

    name = "yunet"
    classes = frozenset({TargetClass.FACE})

    def __init__(
        self,
        model_path: Path | str,
        min_score: float = 0.4,
        max_side: int = 1280,
        upscale: float = 1.0,
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {max_side}")
        if upscale <= 0:
            raise ValueError(f"upscale must be positive, got {upscale}")
        self.min_score = min_score
        self.max_side = max_side
        self.upscale = upscale
        # The input size given here is a placeholder; `detect` sets the real one per frame.
        self._net = cv2.FaceDetectorYN.create(
            str(model_path), "", (320, 320), min_score, _NMS_IOU, _TOP_K
        )
        self._input_size: tuple[int, int] = (320, 320)

    def _detection_size(self, width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, self.max_side / max(width, height)) * self.upscale
        return max(1, round(width * scale)), max(1, round(height * scale))

    def detect(self, frame: Frame) -> Detections:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            # Silently finding nothing would leave the frame unmasked: refuse instead.
            raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {frame.shape} {frame.dtype}")
        if frame.size == 0:
            return Detections.empty()
        height, width = frame.shape[:2]
        det_w, det_h = self._detection_size(width, height)
        image = frame
        if (det_w, det_h) != (width, height):
            shrinking = det_w < width
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            image = cv2.resize(frame, (det_w, det_h), interpolation=interpolation)
        if (det_w, det_h) != self._input_size:
            self._net.setInputSize((det_w, det_h))
            self._input_size = (det_w, det_h)
        _, faces = self._net.detect(np.ascontiguousarray(image))
        if faces is None or len(faces) == 0:
            return Detections.empty()
        # Rows are x, y, w, h, 5 landmarks (x, y), score.
        xywh = faces[:, :4].astype(np.float32)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:4]], axis=1)
        found = Detections.create(xyxy, faces[:, -1], TargetClass.FACE)
        found = found[found.score >= self.min_score]
        return found.scaled(width / det_w, height / det_h).clipped(width, height)
