"""The daemon refuses rules whose models are not installed: at start it exits with one line,
and a reload that needs one keeps the set in force (real processes, real model files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clips import write_clip
from harness import Daemon, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_other_models")]

FACES = "version: 1\nrules:\n  - {name: faces, targets: {face: {}}}\n"
PLATES = "version: 1\nrules:\n  - {name: plates, match: {cameras: [GATE]}, targets: {plate: {}}}\n"
YUNET = "face_detection_yunet_2023mar.onnx"


@pytest.fixture
def no_other_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Models only in the folder the configuration names: no $PRIVMASK_MODELS, an empty
    user store (the daemon inherits this environment)."""
    monkeypatch.delenv("PRIVMASK_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def faces_only(tmp_path: Path, models_dir: Path) -> Path:
    """A model folder that holds the face model and nothing else."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / YUNET, folder / YUNET)
    return folder


def error_line(stderr: str) -> str:
    """The one line that is not a JSON log event (the daemon logs JSON lines before it)."""
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if not x.startswith("{")]
    return line


def test_start_is_refused_when_a_rule_needs_a_model_that_is_not_installed(
    tmp_path: Path, faces_only: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "faces.yaml").write_text(FACES)
    (rules / "plates.yaml").write_text(PLATES)
    daemon = Daemon(tmp_path, faces_only, rules=str(rules))
    refused = run_cli(daemon.config, "run", timeout=30)
    assert refused.returncode == 1
    line = error_line(refused.stderr)
    assert line.startswith(
        "privmask: error: rule plates needs model hyperlpr-plate, which is not installed: "
    )
    assert "privmask models fetch hyperlpr-plate" in line  # and how to install it
    assert '"event": "started"' not in refused.stderr


def test_the_built_in_rule_is_checked_too(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    refused = run_cli(Daemon(tmp_path, empty).config, "run", timeout=30)
    assert refused.returncode == 1
    line = error_line(refused.stderr)
    assert line.startswith("privmask: error: rule built-in-default needs model yunet, ")


def test_a_rule_naming_an_unknown_model_is_refused_at_start(
    tmp_path: Path, faces_only: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "odd.yaml").write_text(
        "version: 1\nrules:\n  - {name: odd, targets: {face: {model: facey}}}\n"
    )
    refused = run_cli(Daemon(tmp_path, faces_only, rules=str(rules)).config, "run", timeout=30)
    assert refused.returncode == 1
    assert error_line(refused.stderr).startswith("privmask: error: rule odd: unknown model 'facey'")


def test_a_reload_that_needs_a_missing_model_keeps_the_last_good_set(
    tmp_path: Path, faces_only: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "faces.yaml").write_text(FACES)
    daemon = Daemon(tmp_path, faces_only, rules=str(rules))
    try:
        daemon.start()
        good = daemon.wait_for("rules_loaded")["rule_set"]
        (rules / "plates.yaml").write_text(PLATES)  # needs a model this site does not have
        kept = daemon.wait_for("rules_invalid_kept_last_good")
        assert kept["rule_set"] == good
        (problem,) = kept["problems"]
        assert problem.startswith("rule plates needs model hyperlpr-plate, which is not installed")
        # the set in force is still the last good one: a clip is masked by it
        shutil.copy(write_clip(tmp_path / "clip.mp4", frames=10), daemon.inbox / "GATE_1.mp4")
        daemon.wait_for("job_done")
        (package,) = daemon.packages()
        manifest = daemon.read(package)[1]
        assert manifest["rule"] == "faces" and manifest["rule_set_sha256"] == good
        assert daemon.stop() == 0
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
    assert "Traceback" not in "".join(daemon.lines)
    assert all(json.loads(line) for line in daemon.lines)  # every line one event
