"""YuNet face detector on onnxruntime, with the reference decoding of OpenCV's FaceDetectorYN.

The published file declares a fixed 640x640 input, but the network is fully convolutional
and its reshapes are dynamic, so the input size is relaxed in memory when the model is
loaded (the file on disk, and its pinned hash, stay as they are). onnxruntime then runs it
at any size about twice as fast as OpenCV's dnn engine does (14 ms instead of 28 ms at
1280x736 on two cores), which pays for enlarging frames so that 20 px faces are found.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from privmask.adapters.detections import Detections, TargetClass, nms
from privmask.adapters.detectors.base import Frame, any_input_size, has_pixels, onnx_session

_NMS_IOU = 0.3  # OpenCV's default; lower would merge neighbouring faces in a crowd
_STRIDES = (8, 16, 32)


class YuNetFaceDetector:
    """Faces, via YuNet 2023mar.

    min_score: keep faces scoring at least this. 0.4 was chosen by measurement (pasted
        faces on real 1280x720 footage): every face of 32 px and up scores above 0.8, and
        face-free parking-lot footage gave 2 boxes in 377 frames. YuNet also fires
        (0.4-0.7) on the backs of heads, which a privacy mask may cover anyway.
    max_side: frames whose long side is larger are shrunk to it first (cost grows with area).
    upscale: then enlarge by this factor. Its smallest anchors make YuNet miss most faces
        under 24 px at 1.0; 1.5 finds 20 px faces (39 of 40 measured), 2.0 16 px faces.
    upscale_every: enlarge only on every n-th call and detect at 1.0 on the others. Costs
        grow with the enlarged area (45 ms instead of 15 ms at 720p), and the small faces that
        need it are far away and move few pixels a frame, so the tracker bridges the calls
        between; the faces near the camera, which move fast, are found on every call.
        `max_side`, `upscale` and `upscale_every` apply to `detect` (live masking); offline
        redaction chooses the scale of each part of a picture itself (`detect_at`).
    """

    name = "yunet"
    classes = frozenset({TargetClass.FACE})

    def __init__(
        self,
        model_path: Path | str,
        min_score: float = 0.4,
        max_side: int = 1280,
        upscale: float = 1.5,
        upscale_every: int = 2,
        threads: int = 0,
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {max_side}")
        if upscale <= 0:
            raise ValueError(f"upscale must be positive, got {upscale}")
        if upscale_every < 1:
            raise ValueError(f"upscale_every must be at least 1, got {upscale_every}")
        self.min_score = min_score
        self.max_side = max_side
        self.upscale = upscale
        self.upscale_every = upscale_every
        self._calls = 0
        self._session = onnx_session(any_input_size(Path(model_path))[0], threads)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [
            f"{kind}_{stride}" for stride in _STRIDES for kind in ("cls", "obj", "bbox")
        ]

    def _detection_size(self, width: int, height: int, upscale: float) -> tuple[int, int]:
        scale = min(1.0, self.max_side / max(width, height)) * upscale
        return max(1, round(width * scale)), max(1, round(height * scale))

    def detect(self, frame: Frame) -> Detections:
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        upscale = self.upscale if self._calls % self.upscale_every == 0 else 1.0
        self._calls += 1
        return self._detect(frame, *self._detection_size(width, height, upscale))

    def detect_at(self, frame: Frame, scale: float) -> Detections:
        """Faces in `frame` enlarged (or shrunk) by exactly `scale`, whatever its size:
        for a caller that chooses the scale of each part of a picture itself."""
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not has_pixels(frame):
            return Detections.empty()
        height, width = frame.shape[:2]
        return self._detect(frame, max(1, round(width * scale)), max(1, round(height * scale)))

    def _detect(self, frame: Frame, det_w: int, det_h: int) -> Detections:
        height, width = frame.shape[:2]
        image = frame
        if (det_w, det_h) != (width, height):
            shrinking = det_w < width
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            image = cv2.resize(frame, (det_w, det_h), interpolation=interpolation)
        # the network wants sides that are multiples of 32: pad right and bottom with black
        pad_w, pad_h = -(-det_w // 32) * 32, -(-det_h // 32) * 32
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, :det_h, :det_w] = image.transpose(2, 0, 1)
        outputs = self._session.run(self._outputs, {self._input: blob})
        boxes, scores = self._decode(outputs, pad_w, pad_h)
        if not len(scores):
            return Detections.empty()
        kept = nms(boxes, scores, _NMS_IOU)
        found = Detections.create(boxes[kept], scores[kept], TargetClass.FACE)
        return found.scaled(width / det_w, height / det_h).clipped(width, height)

    def _decode(
        self, outputs: list[np.ndarray], width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Anchor-free decoding, as OpenCV's FaceDetectorYN does it, for likely faces only."""
        all_boxes, all_scores = [], []
        for level, stride in enumerate(_STRIDES):
            cls, obj, bbox = (o[0] for o in outputs[3 * level : 3 * level + 3])
            scores = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            index = np.flatnonzero(scores >= self.min_score)
            cols = width // stride
            col, row = (index % cols).astype(np.float32), (index // cols).astype(np.float32)
            b = bbox[index]
            cx, cy = (col + b[:, 0]) * stride, (row + b[:, 1]) * stride
            w, h = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
            all_boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
            all_scores.append(scores[index])
        return (
            np.concatenate(all_boxes).astype(np.float32),
            np.concatenate(all_scores).astype(np.float32),
        )
