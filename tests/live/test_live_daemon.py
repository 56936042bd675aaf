"""The daemon streams a camera live when its rule says so: segments become packages."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from peers import CameraServer, write_camera_clip

from privmask.adapters.package import read_package
from privmask.daemon.testing import FaceSpec

from harness import PASSWORD, Daemon

pytestmark = pytest.mark.slow


def test_a_live_rule_turns_a_camera_stream_into_encrypted_segments(
    tmp_path: Path, models_dir: Path
) -> None:
    clip = tmp_path / "camera.mp4"
    write_camera_clip(clip, 640, 360, 3.0, (FaceSpec("face", 64, (0.5, 0.5), (1.0, 0.0)),))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n"
        "  - {name: files, targets: {face: {}}}\n"
        "  - name: gate-live\n    match: {cameras: [CAM-GATE]}\n    targets: {face: {}}\n"
        "    live: {segments: true, segment_seconds: 1}\n"
    )
    with CameraServer(clip, shared=True) as server:
        daemon = Daemon(
            tmp_path,
            models_dir,
            rules=str(rules),
            cameras={"streams": [{"camera": "CAM-GATE", "url": server.url}]},
        )
        try:
            daemon.start()
            daemon.wait_for("live_started", camera="CAM-GATE")
            packaged = daemon.wait_for("live_segment_packaged", count=2, timeout=60)
        finally:
            daemon.stop()
    assert packaged["camera"] == "CAM-GATE"
    package = daemon.outbox / packaged["package"]
    video, manifest = read_package(package, PASSWORD.encode())
    assert manifest["live"] is True and manifest["rule"] == "gate-live"
    segment = tmp_path / "segment.mp4"
    segment.write_bytes(video)
    with av.open(str(segment)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert 20 <= frames <= 30  # one second at 25 fps
    assert daemon.leftovers() == []
