"""One detection worker for every live camera of the daemon.

Each camera used to detect in its own thread, with its own models running on as many
threads as there are cores: four cameras on two cores made eight inference threads compete,
and each camera's detector stalled its own decoding and encoding while it ran. Here the
cameras hand their detection frames to one worker instead, which runs them one at a time,
in the order they came (so each camera's frames stay in order), while the camera threads go
on decoding, masking and encoding. A detection frame runs its models side by side on the
two cores (`detection.FrameDetector`), as offline.

Because only one detection runs at a time, the cameras whose rules run the same models share
one loaded copy of them (a person detector is not safe to run from two threads at once;
run one at a time, it is). Each camera keeps its own `FrameDetector`, which remembers where
small faces were in that camera's picture.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import av

from privmask.daemon.pipeline.detection import FrameDetector, NamedDetector, load_detectors
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.online import Sighting, sight
from privmask.rules.plan import RedactionPlan

# the models of one plan: each target's model and threshold
ModelsKey = tuple[tuple[str, str, float | None], ...]


class SharedDetection:
    """The detection worker and the loaded models of the cameras that use it.

    `models(plan)` loads (once per set of models) and checks what a plan needs, in the
    caller's thread; `camera(...)` gives one camera's `Detect`. The worker thread starts
    with the first detection and ends with `close()`; a later detection starts it again.
    """

    def __init__(self, models_dir: str | os.PathLike[str] | None) -> None:
        self.models_dir = models_dir
        self._models: dict[ModelsKey, list[NamedDetector]] = {}
        self._lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None

    def models(self, plan: RedactionPlan) -> list[NamedDetector]:
        """The plan's models, loaded once for every camera whose plan runs the same."""
        key = tuple((t.target, t.model, t.min_score) for t in plan.targets)
        with self._lock:
            if key not in self._models:
                self._models[key] = load_detectors(plan, self.models_dir)
            return self._models[key]

    def camera(
        self, plan: RedactionPlan, geometry: FrameGeometry, width: int = 0
    ) -> CameraDetection:
        """One camera's detections, on its frames scaled to `width` (0: as they are)."""
        return CameraDetection(self, FrameDetector(self.models(plan)), geometry, width)

    def submit(
        self, detector: FrameDetector, frame: av.VideoFrame, geometry: FrameGeometry, width: int
    ) -> Future[Sighting]:
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, "live-detect")
            return self._worker.submit(sight, detector, frame, geometry, width)

    def close(self) -> None:
        """End the worker once the detections handed to it are done."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)


class CameraDetection:
    """One camera's detections through the shared worker: call it with a frame."""

    def __init__(
        self, shared: SharedDetection, detector: FrameDetector, geometry: FrameGeometry, width: int
    ) -> None:
        self.shared, self.detector, self.geometry, self.width = shared, detector, geometry, width

    def __call__(self, frame: av.VideoFrame) -> Future[Sighting]:
        return self.shared.submit(self.detector, frame, self.geometry, self.width)

    def close(self) -> None:
        """End the camera detector's own threads (after its pending detections)."""
        self.detector.close()
