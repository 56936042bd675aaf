"""The one interface every detector model implements."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import Detections, TargetClass

Frame = npt.NDArray[np.uint8]  # (H, W, 3) BGR, as OpenCV and most ONNX exports expect


class Detector(Protocol):
    """A model that finds targets in a BGR frame.

    `detect` returns boxes in the pixel coordinates of the frame it was given, keeping only
    those that score at least `min_score`. Implementations are not thread-safe; use one per
    thread.
    """

    name: str
    classes: frozenset[TargetClass]

    def detect(self, frame: Frame) -> Detections: ...


@runtime_checkable
class ScalableDetector(Detector, Protocol):
    """A detector that can be told the scale to look at a frame at (face detectors): a
    caller that looks at small parts of a picture closely, and at the whole picture from
    afar, chooses the scale of each itself."""

    def detect_at(self, frame: Frame, scale: float) -> Detections:
        """Boxes in `frame` (its pixels), found in it resized by exactly `scale`. Unlike
        `detect`, safe to call from several threads at once."""
        ...


def has_pixels(frame: Frame) -> bool:
    """Check a detector's input: False for an empty frame, ValueError for a wrong layout.

    Silently finding nothing in a frame of the wrong layout would leave it unmasked.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {frame.shape} {frame.dtype}")
    return frame.size > 0


def letterbox(frame: Frame, size: int, pad_value: int) -> tuple[Frame, float]:
    """Resize `frame` to fit a `size` x `size` square at the top-left corner.

    Returns the padded square and the scale that maps model pixels back to frame pixels.
    """
    import cv2

    h, w = frame.shape[:2]
    scale = min(size / w, size / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    square = np.full((size, size, 3), pad_value, dtype=np.uint8)
    square[:new_h, :new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return square, 1.0 / scale


def any_input_size(path: Path) -> tuple[bytes, tuple[int, ...]]:
    """A fully convolutional model with its input height and width (and the lengths of its
    outputs, which follow them) left open, and the input shape the file declares. The file
    on disk, and its pinned hash, stay as they are: this is done in memory at load."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    declared = tuple(d.dim_value for d in dims)
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return model.SerializeToString(), declared


def onnx_session(model: str | bytes, threads: int = 0):  # type: ignore[no-untyped-def]
    """An onnxruntime CPU session from a path or model bytes; `threads=0`: onnxruntime picks
    (one per core). Inputs of many sizes (close looks at parts of a picture) are why the
    memory pattern, which onnxruntime plans per input shape, is off."""
    # onnxruntime's telemetry writes a device id and a database under $HOME on import: a
    # privacy daemon leaves no such trace (under systemd HOME is the state folder)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_mem_pattern = False
    # idle workers sleep instead of spinning, leaving the cores to the video decoder and
    # encoder that run between inferences
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
