"""The daemon streams a camera live when its rule says so: segments become packages whose
signed manifest says what a file package's says, from the camera's own unmasked segment."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from peers import CameraServer, read_stamp, stamped_scene, write_camera_clip

from privmask.adapters.minisign import SecretKey
from privmask.adapters.package import read_package
from privmask.daemon.testing import FaceSpec, is_masked

from clips import Custodian
from harness import PASSWORD, Daemon

pytestmark = pytest.mark.slow

SIZE = (640, 360)
SECONDS = 8.0
FACES = (FaceSpec("face", 64, (0.5, 0.5), (1.0, 0.0)),)
CAMERAS = ("CAM-GATE", "CAM-DOOR")
JOB_ID = re.compile(r"live-\d{8}T\d{6}-[0-9a-f]{6}")


def _stamped(data: bytes, path: Path) -> dict[int, np.ndarray]:
    path.write_bytes(data)
    with av.open(str(path)) as container:
        images = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return {read_stamp(image): image for image in images}


def test_live_segments_are_packaged_from_their_unmasked_original_like_files(
    tmp_path: Path, models_dir: Path
) -> None:
    clip = tmp_path / "camera.mp4"
    scene = write_camera_clip(clip, *SIZE, SECONDS, FACES, gop=20)
    share = tmp_path / "live-share"  # the live rule's destination: not mounted at first
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n"
        "  - {name: files, targets: {face: {}}}\n"
        "  - name: gate-live\n    match: {cameras: [CAM-GATE, CAM-DOOR]}\n"
        "    targets: {face: {}}\n"
        f"    output: {{destination: {share}}}\n"
        "    live: {segments: true, segment_seconds: 1}\n"
    )
    captured: dict[str, tuple[str, bytes]] = {}  # job -> camera, the original as written
    with CameraServer(clip) as server:  # each camera its own stream from the file's start
        url = server.url.replace("rtsp://", "rtsp://admin:hunter2@")
        streams = [{"camera": camera, "url": url} for camera in CAMERAS]
        daemon = Daemon(tmp_path, models_dir, rules=str(rules), cameras={"streams": streams})
        try:
            daemon.start()
            for camera in CAMERAS:
                daemon.wait_for("live_segment_not_packaged", camera=camera, count=2, timeout=60)
            # the share is away: segments wait, each beside the camera's own bytes for it
            for camera in CAMERAS:
                for original in sorted((daemon.state / "live" / camera).glob("live-*.original")):
                    captured[original.stem] = (camera, original.read_bytes())  # not .partial
            door = sorted(job for job, (camera, _) in captured.items() if camera == "CAM-DOOR")
            lost, damaged = door[0], door[1]  # one original lost, one changed while waiting
            (daemon.state / "live" / "CAM-DOOR" / f"{lost}.original").unlink()
            with open(daemon.state / "live" / "CAM-DOOR" / f"{damaged}.original", "r+b") as f:
                f.truncate(len(captured[damaged][1]) // 2)
            share.mkdir()
            for job in captured:
                daemon.wait_for("live_segment_packaged", job=job, timeout=60)
        finally:
            daemon.stop()
    public = SecretKey.parse((daemon.state / "signing.key").read_bytes()).public
    manifests = {}
    for package in sorted(share.glob("*.zip")):
        video, manifest = read_package(package, PASSWORD.encode(), public)  # signed, checked
        manifests[manifest["job"]] = (video, manifest)
    # job ids: unique across cameras, never a camera's name
    assert len(manifests) == len(list(share.glob("*.zip"))) >= len(captured) >= 4
    assert all(JOB_ID.fullmatch(job) for job in manifests), sorted(manifests)
    assert set(captured) <= set(manifests)
    _, frames = stamped_scene(*SIZE, SECONDS, FACES)
    source = list(frames)
    checked = 0
    for job, (camera, original) in captured.items():
        video, manifest = manifests[job]
        text = json.dumps(manifest)
        assert "hunter2" not in text and "admin" not in text
        assert manifest["camera"] == camera and manifest["live"] is True
        assert manifest["rule"] == "gate-live" and manifest["rule_set_sha256"]
        assert manifest["models"] and all(set(m) == {"name", "sha256"} for m in manifest["models"])
        assert manifest["escrow"] is None  # no recipients: nothing escrowed
        assert manifest["input"]["stream"] == server.url
        assert manifest["tracks"], job  # the face is in view throughout
        for track in manifest["tracks"]:
            assert set(track) == {"id", "class", "masked_from", "masked_to", "masked"}
            assert 0 <= track["masked_from"] <= track["masked_to"] < manifest["masked"]["frames"]
        if job in (lost, damaged):
            # the masked video is still delivered, but says it has no original behind it
            assert manifest["input"]["sha256"] is None and manifest["input"]["bytes"] is None
            assert manifest["input"]["missing"]
            continue
        assert manifest["input"]["sha256"] == hashlib.sha256(original).hexdigest()
        assert manifest["input"]["bytes"] == len(original)
        assert manifest["input"]["codec"] == "h264" and manifest["input"]["width"] == SIZE[0]
        masked = _stamped(video, tmp_path / "masked.mp4")
        unmasked = _stamped(original, tmp_path / "original.mp4")
        assert 20 <= len(masked) <= 30 and set(masked) <= set(unmasked)
        lead = (min(masked) - min(unmasked)) / 25  # it starts at the camera's keyframe
        assert manifest["input"]["starts_before_s"] == pytest.approx(lead)
        for index, image in masked.items():
            for target in scene.targets:
                box = target.boxes[index]
                if box is None or box[3] - box[1] < 20:
                    continue
                checked += 1
                assert is_masked(source[index], image, box)
                assert not is_masked(source[index], unmasked[index], box)
    assert checked >= 40
    assert "lost" in manifests[lost][1]["input"]["missing"]
    assert "changed" in manifests[damaged][1]["input"]["missing"]
    # packaged and gone: no unmasked segment is left behind in the daemon's state
    assert not [p for p in (daemon.state / "live").rglob("*") if p.is_file()]
    assert daemon.leftovers() == []


def test_live_originals_are_escrowed_like_files_when_the_rule_names_recipients(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    clip = tmp_path / "camera.mp4"
    write_camera_clip(clip, *SIZE, SECONDS, FACES, gop=20)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n"
        "  - {name: files, targets: {face: {}}}\n"
        "  - name: gate-live\n    match: {cameras: [CAM-GATE]}\n"
        "    targets: {face: {}}\n"
        f"    escrow: ['{custodians['ssh'].recipient}']\n"
        "    live: {segments: true, segment_seconds: 1}\n"
    )
    with CameraServer(clip) as server:
        streams = [{"camera": "CAM-GATE", "url": server.url}]
        daemon = Daemon(tmp_path, models_dir, rules=str(rules), cameras={"streams": streams})
        try:
            daemon.start()
            daemon.wait_for("live_segment_packaged", count=2, timeout=60)
        finally:
            daemon.stop()
    escrowed = 0
    for package in daemon.packages():
        _, manifest = daemon.read(package)
        job = manifest["job"]
        sealed = daemon.escrow / f"{job}.age"
        assert manifest["escrow"] == {
            "file": sealed.name,
            "sha256": hashlib.sha256(sealed.read_bytes()).hexdigest(),
            "bytes": sealed.stat().st_size,
        }
        opened = subprocess.run(
            ["age", "-d", "-i", str(custodians["ssh"].identity), str(sealed)],
            capture_output=True,
            check=True,
        ).stdout
        assert hashlib.sha256(opened).hexdigest() == manifest["input"]["sha256"]
        escrowed += 1
    assert escrowed >= 2
    audited = [e["job"] for e in daemon.audit() if e["action"] == "escrow_written"]
    assert sorted(audited) == sorted(p.stem for p in daemon.escrow.glob("*.age"))
