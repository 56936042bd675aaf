"""privmask.adapters.detectors"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from privmask.adapters.detectors.base import Detector


def _yunet(path: Path, **kwargs: Any) -> Detector:
    from privmask.adapters.detectors.yunet import YuNetFaceDetector

    return YuNetFaceDetector(path, **kwargs)


def _centerface(path: Path, **kwargs: Any) -> Detector:
    from privmask.adapters.detectors.centerface import CenterFaceDetector

    return CenterFaceDetector(path, **kwargs)


def _yolox_nano(path: Path, **kwargs: Any) -> Detector:
    from privmask.adapters.detectors.yolox import YoloxPersonDetector

    return YoloxPersonDetector(path, input_size=416, name="yolox-nano", **kwargs)


def _light_person(path: Path, **kwargs: Any) -> Detector:
    from privmask.adapters.detectors.yolox import YoloxPersonDetector

    return YoloxPersonDetector(path, input_size=192, name="light-person", **kwargs)


def _plates(path: Path, **kwargs: Any) -> Detector:
    from privmask.adapters.detectors.plates import PlateDetector

    return PlateDetector(path, **kwargs)


# Registry name (see `privmask.adapters.models`) -> constructor. Imports are deferred so that
# using one model does not load the code, or the runtime, of the others.
_BUILDERS: dict[str, Callable[..., Detector]] = {
    "yunet": _yunet,
    "centerface": _centerface,
    "yolox-nano": _yolox_nano,
    "light-person": _light_person,
    "hyperlpr-plate": _plates,
}


def build_detector(model_name: str, model_path: Path, min_score: float | None = None) -> Detector:
    """The detector for registry model `model_name`, loaded from `model_path`.

    `min_score=None` keeps the detector's own measured default.
    """
    try:
        builder = _BUILDERS[model_name]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS))
        raise ValueError(f"no detector for model {model_name!r} (known: {known})") from None
    kwargs: dict[str, Any] = {} if min_score is None else {"min_score": min_score}
    return builder(model_path, **kwargs)
