"""Rules match, and packages are named, on the recording time in the site's time zone: a
vendor export name says 09:30 in Berlin, whatever time the clip is dropped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clips import write_clip
from harness import Daemon

pytestmark = pytest.mark.slow


def test_a_vendor_name_gives_recording_time_and_camera(tmp_path: Path, models_dir: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n"
        "  - {name: default, targets: {face: {}}}\n"
        "  - name: ch01-mornings\n"
        "    match: {cameras: [ch01], times: [{from: '09:00', to: '10:00'}]}\n"
        "    targets: {face: {}}\n"
        "    output: {name: '{camera}_{date}_{time}'}\n"
    )
    service = Daemon(tmp_path, models_dir, rules=str(rules), timezone="Europe/Berlin")
    try:
        service.start()
        write_clip(tmp_path / "clip.mp4", frames=12)  # a clip without a creation_time tag
        # a Hikvision export: channel 01, recorded 2024-03-15 09:30:00 on the site's clock
        shutil.move(tmp_path / "clip.mp4", service.inbox / "ch01_20240315093000.mp4")
        service.wait_for("job_done")
    finally:
        service.stop()
    (package,) = service.packages()
    assert package.name == "ch01_20240315_093000.zip"
    _, manifest = service.read(package)
    assert manifest["rule"] == "ch01-mornings" and manifest["camera"] == "ch01"
    assert manifest["recorded"] == {
        "time": "2024-03-15T09:30:00+01:00",
        "source": "file_name",
        "timezone": "Europe/Berlin",
    }
