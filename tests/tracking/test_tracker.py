"""The offline tracker: link sightings, follow them through real pictures, fill every frame."""

from __future__ import annotations

import cv2
import numpy as np

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.motion import Picture
from privmask.daemon.pipeline.tracker import Linker, TrackerSettings, fill, link
from privmask.daemon.testing import render_scene

SETTINGS = dict.fromkeys(TargetClass, TrackerSettings(max_gap=10, lead=4, tail=4))


def box_at(frame: int, x0: float = 100, speed: float = 3, size: float = 24) -> list[float]:
    x = x0 + speed * frame
    return [x, 50, x + size, 50 + size]


def sightings_of(frames: list[int], target=TargetClass.FACE, **motion) -> dict[int, Detections]:  # type: ignore[no-untyped-def]
    return {f: Detections.create([box_at(f, **motion)], [0.9], target) for f in frames}


def covers(outer: np.ndarray, inner: list[float]) -> bool:
    return bool(
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def test_every_frame_between_sightings_and_a_miss_is_covered() -> None:
    frames = [0, 2, 4, 8, 10]  # frame 6 was a detector miss
    tracks = link(sightings_of(frames), SETTINGS)
    assert len(tracks) == 1
    masks = fill(tracks, SETTINGS)
    for frame in range(0, 11):
        assert covers(masks[frame].xyxy[0], box_at(frame)), frame


def test_masks_reach_back_and_forward_past_the_sightings() -> None:
    tracks = link(sightings_of([40, 42, 44, 46]), SETTINGS)
    masks = fill(tracks, SETTINGS)
    assert min(masks) == 36 and max(masks) == 50
    # extrapolated with the motion, so the target's true earlier place is still covered
    for frame in range(36, 40):
        assert covers(masks[frame].xyxy[0], box_at(frame)), frame
    for frame in range(47, 51):
        assert covers(masks[frame].xyxy[0], box_at(frame)), frame


def test_a_long_gap_starts_a_new_track() -> None:
    tracks = link(sightings_of([0, 2, 4, 30, 32]), SETTINGS)
    assert [t.frames for t in tracks] == [[0, 2, 4], [30, 32]]
    assert len({t.track_id for t in tracks}) == 2


def test_small_fast_target_is_linked_without_overlap() -> None:
    # 12 px face moving 10 px a frame: boxes two frames apart do not overlap at all
    tracks = link(sightings_of(list(range(0, 20, 2)), speed=10, size=12), SETTINGS)
    assert len(tracks) == 1


def test_two_targets_keep_their_own_tracks_and_classes_get_distinct_ids() -> None:
    left = sightings_of(list(range(0, 20, 2)), x0=0, speed=2)
    right = sightings_of(list(range(0, 20, 2)), x0=400, speed=-2)
    person = sightings_of(list(range(0, 20, 2)), target=TargetClass.PERSON, x0=200, size=80)
    merged = {f: Detections.merge([left[f], right[f], person[f]]) for f in left}
    tracks = link(merged, SETTINGS)
    assert len(tracks) == 3
    assert len({t.track_id for t in tracks}) == 3
    for track in tracks:
        xs = [b[0] for b in track.boxes]
        assert np.all(np.diff(xs) == np.diff(xs)[0])  # each followed one straight path
    masks = fill(tracks, SETTINGS)
    assert sorted(masks[5].class_id.tolist()) == [0, 0, 1]
    assert sorted(masks[5].track_id.tolist()) == sorted(t.track_id for t in tracks)


def test_no_sightings_no_tracks() -> None:
    assert link({0: Detections.empty(), 2: Detections.empty()}, SETTINGS) == []
    assert fill([], SETTINGS) == {}


def test_a_target_far_away_is_not_linked_to_an_old_sighting() -> None:
    # a stray box at frame 0 must not swallow a target entering elsewhere 12 frames later
    stray = {0: Detections.create([[900, 300, 1050, 480]], [0.5], TargetClass.PERSON)}
    entering = sightings_of([12, 14, 16], target=TargetClass.PERSON, x0=-36, speed=3, size=80)
    tracks = link({**stray, **entering}, SETTINGS)
    assert [t.frames for t in tracks] == [[0], [12, 14, 16]]


# --- the ends of a track: edges, robust velocity ---------------------------------------------

EDGES = dict.fromkeys(
    TargetClass, TrackerSettings(max_gap=10, lead=4, tail=4, frame_size=(640, 360))
)


def test_a_target_heading_out_at_an_edge_stays_masked_until_wholly_outside() -> None:
    # a person walking right at 10 px a frame; the detector loses it 60 px before the edge
    # (the intel one-by-one clip, frames 189-199: legs showed at the right edge)
    person = sightings_of([0, 3, 6, 9], TargetClass.PERSON, x0=410, speed=10, size=80)
    masks = fill(link(person, EDGES), EDGES)
    gone = next(f for f in range(9, 200) if box_at(f, x0=410, speed=10, size=80)[0] >= 640)
    for frame in range(9, gone):
        assert frame in masks, frame
        assert covers(masks[frame].xyxy[0], clip(box_at(frame, x0=410, speed=10, size=80))), frame


def test_a_target_entering_just_inside_an_edge_is_masked_from_its_first_pixel() -> None:
    # first seen 8 px above the bottom edge, walking up 9 px a frame (intel one-by-one clip,
    # frames 921-932: head and back showed before the first sighting)
    def box(frame: int) -> list[float]:
        y = 352 - 9 * (frame - 60) - 300
        return [300, y, 400, y + 300]

    found = {f: Detections.create([box(f)], [0.9], TargetClass.PERSON) for f in (60, 63, 66, 69)}
    masks = fill(link(found, EDGES), EDGES)
    entered = next(f for f in range(60, 0, -1) if box(f)[1] >= 360)
    for frame in range(entered + 1, 60):
        assert frame in masks, frame
        assert covers(masks[frame].xyxy[0], clip(box(frame))), frame


def test_the_tail_follows_the_motion_through_jittery_boxes() -> None:
    # a face moving right 4 px a frame, its boxes jittering 6 px; the last two sightings
    # happen to jitter backwards, which must not turn the extrapolated mask around
    jitter = {0: 0, 3: 6, 6: -3, 9: 4, 12: 6, 15: -6}
    found = {
        f: Detections.create([box_at(f, x0=100 + j, speed=4, size=40)], [0.9], TargetClass.FACE)
        for f, j in jitter.items()
    }
    settings = dict.fromkeys(TargetClass, TrackerSettings(max_gap=10, lead=8, tail=8))
    masks = fill(link(found, settings), settings)
    for frame in range(16, 24):
        assert covers(masks[frame].xyxy[0], box_at(frame, speed=4, size=40)), frame


def clip(box: list[float], width: int = 640, height: int = 360) -> list[float]:
    """The part of a box inside the picture: what must be masked."""
    return [max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])]


# --- picture motion: where a target went while the detector did not see it -------------------

PICTURE = (320, 240)  # width, height of the pictures below
MOVING = dict.fromkeys(TargetClass, TrackerSettings(max_gap=15, lead=4, tail=4, frame_size=PICTURE))


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random texture, like a real scene at detector scale."""
    noise = np.random.default_rng(seed).normal(0, 1, (height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.clip(128 + 60 * smooth / smooth.std(), 0, 255).astype(np.uint8)


def pictures_of(boxes: dict[int, list[float]], background_seed: int = 1) -> dict[int, Picture]:
    """Grey pictures of a textured target at `boxes`, over a still textured background."""
    background = texture(PICTURE[1], PICTURE[0], background_seed)
    sprite = texture(24, 24, 2)
    pictures = {}
    for frame, (x1, y1, _, _) in boxes.items():
        image = background.copy()
        x, y = round(x1), round(y1)
        image[y : y + 24, x : x + 24] = sprite
        pictures[frame] = Picture(image, 1.0, 1.0)
    return pictures


def run_linker(
    found: dict[int, Detections], pictures: dict[int, Picture], settings=MOVING
) -> Linker:  # type: ignore[no-untyped-def]
    linker = Linker(settings)
    for frame in sorted(pictures):
        linker.add(frame, found.get(frame, Detections.empty()), pictures[frame])
    return linker


def diagonal(frame: int) -> list[float]:
    x, y = 40 + 4 * frame, 30 + 2 * frame
    return [x, y, x + 24, y + 24]


def test_a_track_seen_once_follows_the_picture_motion_both_ways() -> None:
    # the detector ran on every third frame and saw the target once, at frame 30 (the silver
    # car's plate in intel_car-detection.mp4, frame 195); it kept moving 4.5 px a frame
    frames = list(range(0, 61, 3))
    pictures = pictures_of({f: diagonal(f) for f in frames})
    found = {30: Detections.create([diagonal(30)], [0.5], TargetClass.PLATE)}
    tracks = run_linker(found, pictures).tracks()
    assert len(tracks) == 1
    masks = fill(tracks, MOVING)
    for frame in range(17, 44):
        assert frame in masks, frame
        assert covers(masks[frame].xyxy[0], diagonal(frame)), frame


def test_a_followed_target_is_linked_again_when_the_detector_finds_it() -> None:
    # seen at 0 and 3, missed for 9 frames while it kept moving, found again at 15
    frames = list(range(0, 22, 3))
    pictures = pictures_of({f: diagonal(f) for f in frames})
    found = {
        f: Detections.create([diagonal(f)], [0.8], TargetClass.FACE) for f in (0, 3, 15, 18, 21)
    }
    tracks = run_linker(found, pictures).tracks()
    assert [t.frames for t in tracks] == [[0, 3, 15, 18, 21]]


def test_without_texture_nothing_is_followed() -> None:
    # a flat picture gives no motion to follow: the mask keeps the plain lead and tail
    flat = {f: Picture(np.full((240, 320), 90, np.uint8), 1.0, 1.0) for f in range(0, 61, 3)}
    found = {30: Detections.create([diagonal(30)], [0.5], TargetClass.PLATE)}
    masks = fill(run_linker(found, flat).tracks(), MOVING)
    assert min(masks) == 26 and max(masks) == 34


# --- doubtful boxes that never move on a still picture ----------------------------------------

DOUBT = dict.fromkeys(
    TargetClass,
    TrackerSettings(
        max_gap=10, lead=4, tail=4, frame_size=PICTURE, drop_still_below=0.6, still_frames=25
    ),
)
STILL_BOX = [150.0, 100.0, 174.0, 124.0]


def still_scene(scores: dict[int, float], box=STILL_BOX, changing: bool = False):  # type: ignore[no-untyped-def]
    frames = sorted(scores)
    pictures = (
        pictures_of({f: box for f in frames}, background_seed=1)
        if not changing
        else {f: Picture(texture(240, 320, 100 + f), 1.0, 1.0) for f in frames}
    )
    found = {f: Detections.create([box], [s], TargetClass.FACE) for f, s in scores.items()}
    return run_linker(found, pictures, DOUBT)


def test_a_doubtful_face_that_never_moves_on_a_still_picture_is_dropped_and_counted() -> None:
    # a false face (score 0.42) held for 115 frames on a static background
    linker = still_scene(dict.fromkeys(range(0, 115, 3), 0.42))
    assert linker.tracks() == []
    assert [(d.target, d.reason, d.sightings) for d in linker.dropped()] == [
        (TargetClass.FACE, "still_low_score", 39)
    ]


def test_a_doubtful_face_that_scored_high_once_stays() -> None:
    scores = dict.fromkeys(range(0, 115, 3), 0.42)
    scores[60] = 0.75
    linker = still_scene(scores)
    assert len(linker.tracks()) == 1 and linker.dropped() == []


def test_a_doubtful_face_that_moves_stays() -> None:
    frames = range(0, 115, 3)
    pictures = pictures_of({f: diagonal(f // 3) for f in frames})
    found = {f: Detections.create([diagonal(f // 3)], [0.42], TargetClass.FACE) for f in frames}
    linker = run_linker(found, pictures, DOUBT)
    assert len(linker.tracks()) == 1 and linker.dropped() == []


def test_a_still_doubtful_face_on_a_changing_picture_stays() -> None:
    linker = still_scene(dict.fromkeys(range(0, 115, 3), 0.42), changing=True)
    assert len(linker.tracks()) == 1 and linker.dropped() == []


def test_a_short_still_doubtful_face_stays() -> None:
    # too short to judge: fail closed
    linker = still_scene(dict.fromkeys(range(0, 15, 3), 0.42))
    assert len(linker.tracks()) == 1 and linker.dropped() == []


def test_without_pictures_nothing_is_dropped() -> None:
    found = {f: Detections.create([STILL_BOX], [0.42], TargetClass.FACE) for f in range(0, 115, 3)}
    assert len(link(found, DOUBT)) == 1


# --- a target walking behind a cover ---------------------------------------------------------

# What the face detector found of the 64 px face walking behind the pillar of the default
# scene (`privmask.daemon.testing`, face64_pillar), on the benchmark's 10 s clip: as the
# face goes behind the pillar, the close look boxes the visible part, ever smaller (frame 72:
# 19x37 px of a face 48x64 px, of which an 11 px sliver still showed).
BEHIND_PILLAR = {
    42: ([530, 367, 583, 430], 0.90),
    45: ([540, 366, 592, 428], 0.90),
    48: ([548, 368, 600, 429], 0.88),
    51: ([560, 366, 612, 427], 0.89),
    54: ([570, 369, 618, 426], 0.87),
    57: ([579, 369, 630, 431], 0.89),
    60: ([588, 366, 638, 428], 0.88),
    63: ([599, 369, 644, 429], 0.86),
    66: ([609, 371, 645, 421], 0.44),
    69: ([615, 366, 644, 420], 0.72),
    72: ([625, 369, 644, 406], 0.55),
}
# the command's defaults at 25 fps: detect every 3rd frame, hold 1 s, fill 0.2 s
SCENE_SETTINGS = dict.fromkeys(
    TargetClass, TrackerSettings(max_gap=25, lead=8, tail=8, frame_size=(1280, 720))
)
FACE_PADDING = 0.25  # the default padding of a face mask, on every side


def covered_share(mask: np.ndarray, box: tuple[int, int, int, int], padding: float) -> float:
    """Share of `box` inside the mask box as drawn (padded on every side)."""
    w, h = mask[2] - mask[0], mask[3] - mask[1]
    x1, y1 = mask[0] - padding * w, mask[1] - padding * h
    x2, y2 = mask[2] + padding * w, mask[3] + padding * h
    across = max(0.0, min(x2, box[2]) - max(x1, box[0]))
    down = max(0.0, min(y2, box[3]) - max(y1, box[1]))
    return float(across * down / ((box[2] - box[0]) * (box[3] - box[1])))


def test_a_face_going_behind_a_pillar_stays_masked_to_its_last_visible_sliver() -> None:
    scene, _ = render_scene()  # the ground truth only; no frame is rendered
    truth = next(t for t in scene.targets if t.id == "face64_pillar")
    found = {
        f: Detections.create([box], [score], TargetClass.FACE)
        for f, (box, score) in BEHIND_PILLAR.items()
    }
    masks = fill(link(found, SCENE_SETTINGS), SCENE_SETTINGS)
    shown = {}
    for frame in range(42, len(truth.boxes)):
        visible = truth.boxes[frame]
        if visible is None:
            break  # wholly behind the pillar
        assert frame in masks, frame
        share = covered_share(masks[frame].xyxy[0], visible, FACE_PADDING)
        if share < 0.9:  # what `is_masked` asks of a solid fill
            shown[frame] = round(share, 2)
    assert shown == {}


def test_a_target_that_stays_smaller_is_masked_at_its_own_size_again() -> None:
    # boxed at 60 px, then at 28 px inside that place from frame 33 on (a cover, or a
    # detector that now boxes it tighter): the whole size is kept only while a track may
    # go unseen (max_gap), then the mask is the detector's box again
    def box(frame: int) -> list[float]:
        return [100, 100, 160, 160] if frame < 33 else [110, 110, 138, 138]

    found = {f: Detections.create([box(f)], [0.9], TargetClass.FACE) for f in range(0, 91, 3)}
    tracks = link(found, SETTINGS)
    assert len(tracks) == 1
    assert sorted(tracks[0].kept) == [33, 36, 39]  # up to 10 frames after frame 30
    masks = fill(tracks, SETTINGS)
    assert covers(masks[38].xyxy[0], box(0))  # still the whole target's size
    assert covers(masks[60].xyxy[0], box(60)) and not covers(masks[60].xyxy[0], box(0))
