"""privmask.adapters.detectors: the detector plug-ins, built by registry model name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privmask.adapters import models
from privmask.adapters.detectors.base import Detector


def builder_of(spec: models.ModelSpec) -> Callable[..., Detector]:
    """The callable that `spec.builder` names ("module:callable"), importing its module now.

    Only the named module is imported, so using one model does not load the code, or the
    runtime, of the others.
    """
    module_name, _, attribute = spec.builder.partition(":")
    builder: Callable[..., Detector] = getattr(importlib.import_module(module_name), attribute)
    return builder


def build_detector(
    model_name: str, model_path: Path, min_score: float | None = None, threads: int = 0
) -> Detector:
    """The detector for registry model `model_name`, loaded from `model_path`.

    `min_score=None` keeps the detector's own measured default. `threads`: the inference
    threads of one call (0: the runtime picks, one per core); 1 where the caller runs
    several detectors side by side and keeps the cores busy itself.
    """
    try:
        spec = models.REGISTRY[model_name]
    except KeyError:
        known = ", ".join(sorted(models.REGISTRY))
        raise ValueError(f"no detector for model {model_name!r} (known: {known})") from None
    kwargs: dict[str, Any] = dict(spec.options)
    if min_score is not None:
        kwargs["min_score"] = min_score
    if threads:
        kwargs["threads"] = threads
    return builder_of(spec)(model_path, **kwargs)
