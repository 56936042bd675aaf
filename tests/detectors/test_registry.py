"""The model registry: one row per model holds its file, its default flag and its detector."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from privmask.adapters import models
from privmask.adapters.detections import TargetClass
from privmask.adapters.detectors import build_detector, builder_of

ROWS = list(models.REGISTRY.values())


@pytest.mark.parametrize("spec", ROWS, ids=[spec.name for spec in ROWS])
def test_every_row_names_an_importable_detector(spec: models.ModelSpec) -> None:
    module, colon, attribute = spec.builder.partition(":")
    assert colon and attribute, f"{spec.name}: builder {spec.builder!r} is not 'module:callable'"
    assert module.startswith("privmask.adapters.detectors."), spec.builder
    assert callable(builder_of(spec))
    assert all(isinstance(key, str) for key, _ in spec.options)


@pytest.mark.parametrize("spec", ROWS, ids=[spec.name for spec in ROWS])
def test_every_row_builds_its_own_detector(spec: models.ModelSpec, models_dir: Path) -> None:
    built = build_detector(spec.name, models.resolve(spec.name, models_dir))
    assert built.name == spec.name
    assert built.classes == frozenset({spec.detects})


def test_each_class_has_exactly_one_default_and_the_table_agrees() -> None:
    for target in TargetClass:
        marked = [spec.name for spec in ROWS if spec.default and spec.detects is target]
        assert len(marked) == 1, f"{target.label}: default rows {marked}"
        assert models.DEFAULT_MODEL[target] == marked[0]
    assert set(models.DEFAULT_MODEL) == set(TargetClass)


def test_two_defaults_for_one_class_are_refused() -> None:
    yunet = models.REGISTRY["yunet"]
    rival = dataclasses.replace(models.REGISTRY["centerface"], default=True)
    with pytest.raises(RuntimeError, match="two default models for face: yunet and centerface"):
        models._defaults([yunet, rival])


def test_the_registry_loads_no_detector_and_one_model_loads_only_its_own(models_dir: Path) -> None:
    """Imports stay deferred: the registry alone loads no detector code or runtime, and
    building a person detector loads neither the face nor the plate detectors."""
    script = """
import sys
from privmask.adapters import models
from privmask.adapters.detectors import build_detector
print(sorted(m for m in sys.modules if m.startswith("privmask.adapters.detectors.")))
print("cv2" in sys.modules, "onnxruntime" in sys.modules)
build_detector("light-person", models.resolve("light-person", sys.argv[1]))
print(sorted(m for m in sys.modules if m.startswith("privmask.adapters.detectors.")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(models_dir)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    before, runtimes, after = result.stdout.strip().splitlines()
    assert before == "['privmask.adapters.detectors.base']"
    assert runtimes == "False False"
    assert after == "['privmask.adapters.detectors.base', 'privmask.adapters.detectors.yolox']"


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known: centerface, hyperlpr-plate, light-person"):
        build_detector("retinaface", Path("retinaface.onnx"))


def test_fetch_errors_hide_tokens_but_keep_other_query_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://reader:hunter2@127.0.0.1:{port}/m.onnx?token=s3cret&v=2"
    spec = dataclasses.replace(models.REGISTRY["yunet"], urls=(url,))
    monkeypatch.setitem(models.REGISTRY, "yunet", spec)
    monkeypatch.delenv("PRIVMASK_MODEL_MIRROR", raising=False)
    with pytest.raises(models.ModelError, match="could not fetch yunet") as caught:
        models.fetch("yunet", tmp_path / "store", timeout=5)
    message = str(caught.value)
    assert "hunter2" not in message and "s3cret" not in message, message
    assert f"127.0.0.1:{port}/m.onnx?v=2" in message, message


def test_import_publishes_whole_files_and_leaves_nothing_else(
    models_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "any-name.onnx"
    source.write_bytes((models_dir / "light_person_detector_192.onnx").read_bytes())
    store = tmp_path / "store"
    spec, path = models.import_file(source, store)
    assert spec.name == "light-person"
    assert path == store / spec.filename
    assert models.sha256_of(path) == spec.sha256
    spec, again = models.import_file(source, store)  # replacing an installed copy is fine
    assert again == path
    assert sorted(p.name for p in store.iterdir()) == [spec.filename]


def test_loading_a_model_writes_nothing_in_home(models_dir: Path, tmp_path: Path) -> None:
    """onnxruntime's telemetry writes a device id and a database under $HOME unless told not
    to: a privacy daemon leaves no such trace (under systemd, HOME is the state folder)."""
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import sys; from privmask.adapters.detectors.base import onnx_session; "
        "onnx_session(sys.argv[1])"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    model = models_dir / "face_detection_yunet_2023mar.onnx"
    done = subprocess.run(
        [sys.executable, "-c", script, str(model)],
        env={**env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
