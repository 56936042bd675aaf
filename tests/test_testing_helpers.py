"""The synthetic-clip helper must tell the truth, or every redaction test built on it lies."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from privmask.daemon import testing

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
SMALL = {"width": 640, "height": 360, "fps": 25, "seconds": 2.0}


def _iou(a: testing.Box, b: testing.Box) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def _target(scene: testing.Scene, target_id: str) -> testing.Target:
    return next(t for t in scene.targets if t.id == target_id)


def test_written_clip_has_the_stated_frames_size_rate_and_audio(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    scene = testing.write_scene(path, **SMALL, audio=True)

    assert scene.frame_count == 50
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.format.name) == ("h264", "yuv420p")
        assert (video.width, video.height, video.average_rate) == (640, 360, 25)
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        seconds = sum(f.samples for f in container.decode(audio)) / audio.rate
        assert seconds == pytest.approx(2.0, abs=0.05)
    frames = list(testing.read_frames(path))
    assert len(frames) == 50
    assert frames[0].shape == (360, 640, 3)


def test_ground_truth_boxes_hold_the_pasted_faces_and_nothing_else() -> None:
    scene, with_faces = testing.render_scene(**SMALL)
    _, without = testing.render_scene(**SMALL, faces=())
    checked = 0
    for index, (a, b) in enumerate(zip(with_faces, without, strict=True)):
        changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0
        for target in scene.targets:
            box = target.boxes[index]
            if box is None:
                continue
            x1, y1, x2, y2 = box
            # Nearly every visible pixel of the face box is face, not background or pillar.
            fx1, fy1, fx2, fy2 = target.full_boxes[index]
            in_frame = (min(fx2, 640) - max(fx1, 0)) * (min(fy2, 360) - max(fy1, 0))
            visible = (1 - target.occluded[index]) * in_frame
            assert changed[y1:y2, x1:x2].sum() > 0.9 * visible, (index, target.id)
            checked += 1
        # And faces appear nowhere but inside their sprites.
        sprites = np.zeros_like(changed)
        for target in scene.targets:
            if (full := target.full_boxes[index]) is not None:
                x1, y1, x2, y2 = full
                h, w = y2 - y1, x2 - x1
                sprites[max(0, y1 - h) : y2 + h, max(0, x1 - w) : x2 + w] = True
        assert not (changed & ~sprites).any(), index
    assert checked > 150


def test_default_faces_cover_the_hard_cases() -> None:
    scene, _ = testing.render_scene()
    heights = {t.id: {b[3] - b[1] for b in t.boxes if b} for t in scene.targets}
    for target_id, size in [("face20", 20), ("face28", 28), ("face40_left_entry", 40)]:
        assert size in heights[target_id]
    assert {64, 120} <= heights["face64_pillar"] | heights["face120_mid_clip"]

    entering = _target(scene, "face40_left_entry")
    first = next(b for b in entering.boxes if b is not None)
    assert first[0] == 0 and first[2] - first[0] < 30  # enters through the left edge

    behind = _target(scene, "face64_pillar")
    hidden = [i for i, b in enumerate(behind.boxes) if b is None]
    assert hidden and all(behind.full_boxes[i] is not None for i in hidden)
    assert any(0.2 < share < 0.8 for share in behind.occluded)  # partly behind the pillar

    middle = _target(scene, "face120_mid_clip")
    present = [i for i, b in enumerate(middle.boxes) if b is not None]
    assert present[0] > 0 and present[-1] < scene.frame_count - 1
    assert len(list(scene.visible("face", 100))) == len(present)


def test_face_boxes_agree_with_a_face_detector() -> None:
    scene, frames = testing.render_scene()
    index = 60  # face120_mid_clip and face64_pillar (left of the pillar) both in full view
    frame = next(f for i, f in enumerate(frames) if i == index)
    detector = cv2.FaceDetectorYN.create(
        str(MODELS / "face_detection_yunet_2023mar.onnx"), "", (frame.shape[1], frame.shape[0])
    )
    _, found = detector.detect(frame)
    detected = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found[:, :4]]
    for target_id in ("face120_mid_clip", "face64_pillar"):
        truth = _target(scene, target_id).boxes[index]
        assert truth is not None
        assert max(_iou(truth, d) for d in detected) > 0.6, target_id


@pytest.mark.parametrize("cctv", [False, True], ids=["clean", "cctv"])
def test_masked_fraction_ignores_reencoding_and_sees_a_fill(tmp_path: Path, cctv: bool) -> None:
    source = tmp_path / "source.mp4"
    scene = testing.write_scene(source, **SMALL, cctv=cctv)
    original = list(testing.read_frames(source))
    testing.write_frames(tmp_path / "again.mp4", original, fps=25, size=(640, 360), crf=23)
    again = list(testing.read_frames(tmp_path / "again.mp4"))

    for index, _, box in scene.visible("face", 8):
        x1, y1, x2, y2 = box
        before, after = original[index], again[index]
        assert testing.masked_fraction(before, after, box) < 0.01
        assert testing.detail_lost(before, after, box) < 0.35

        filled = after.copy()
        filled[y1:y2, x1:x2] = (40, 200, 40)
        assert testing.masked_fraction(before, filled, box) > 0.99
        assert testing.detail_lost(before, filled, box) == pytest.approx(1.0)

        blurred = after.copy()
        sigma = max(2.0, (y2 - y1) / 6)
        blurred[y1:y2, x1:x2] = cv2.GaussianBlur(after[y1:y2, x1:x2], (0, 0), sigma)
        assert testing.detail_lost(before, blurred, box) > 0.8


def test_cctv_clip_is_darker_and_noisier(tmp_path: Path) -> None:
    def frames(cctv: bool) -> np.ndarray:
        path = tmp_path / f"cctv_{cctv}.mp4"
        testing.write_scene(path, **SMALL, faces=(), pillar=None, cctv=cctv)
        # Leave out the swaying patch (top right), so only the sensor changes the pixels.
        return np.stack([f[90:, :480] for f in testing.read_frames(path)]).astype(np.float32)

    clean, cheap = frames(False), frames(True)
    assert cheap.mean() < 0.8 * clean.mean()
    flicker_clean = np.abs(np.diff(clean, axis=0)).mean()
    flicker_cheap = np.abs(np.diff(cheap, axis=0)).mean()
    assert flicker_cheap > 2 * flicker_clean


def test_same_seed_same_clip_other_seed_other_background() -> None:
    def first(seed: int) -> np.ndarray:
        return next(testing.render_scene(**SMALL, cctv=True, seed=seed)[1])

    assert np.array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))


def test_person_sprites_come_from_the_shared_video_with_their_boxes() -> None:
    people = testing.person_sprites_from_media(MEDIA)
    assert len(people) == 3
    for person in people:
        h, w = person.image.shape[:2]
        x1, y1, x2, y2 = person.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert y2 - y1 > 300  # a whole standing body of the 432 px high video

    scene, _ = testing.render_scene(**SMALL, faces=(), person_sprites=people)
    seen = {target_id for _, target_id, _ in scene.visible("person", 150)}
    assert seen == {"person0", "person1", "person2"}
