"""What privmask leaves visible on the shared real clips, judged against the referee.

    .venv/bin/python bench/referee_report.py                 # redact each clip now, judge it
    .venv/bin/python bench/referee_report.py --write         # rerun the referee (minutes)
    .venv/bin/python bench/referee_report.py --clip intel_car-detection.mp4 --redacted OUT.mp4

The referee (`privmask.daemon.testing.referee`: the detectors on every frame, on a larger
input, at a lower threshold) is slow, so its boxes are stored in tests/pipeline/referee/,
one JSON file per clip, pinned to the clip's and the models' sha256 and its settings.
`--write` regenerates them. Without it, each clip of `SHARED_CLIPS` is redacted by privmask
(`offline.redact`, a plan of the clip's classes, defaults otherwise), or `--redacted` names
an output made elsewhere, and every referee box is judged (covered: >= 80 % of its
informative pixels masked, see `testing.coverage`). It prints, per clip and class, the
referee boxes, the uncovered ones and their runs, and writes side-by-side crops (original |
privmask) of the worst runs into docs/engine/. Models: $PRIVMASK_MODELS or ../shared/models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from privmask.daemon.pipeline.offline import redact
from privmask.daemon.testing import read_frames
from privmask.daemon.testing.coverage import Coverage, Run, check_coverage
from privmask.daemon.testing.referee import (
    SHARED_CLIPS,
    Annotations,
    StaleAnnotations,
    annotate,
    load_annotations,
)
from privmask.rules.plan import RedactionPlan, TargetPlan

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
ANNOTATIONS = ROOT / "tests" / "pipeline" / "referee"
CROPS = ROOT / "docs" / "engine"
CROP_HEIGHT = 160  # px of each half of a side-by-side crop


def annotation_path(clip: Path) -> Path:
    return ANNOTATIONS / f"{clip.stem}.json"


def write_annotations(clips: list[Path], models_dir: str | None) -> None:
    """Rerun the referee on each clip and store its boxes, keeping the false positives
    that were judged by eye in the file before."""
    ANNOTATIONS.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        path = annotation_path(clip)
        result = annotate(clip, SHARED_CLIPS[clip.name], models_dir)
        if path.is_file():
            before = Annotations.from_json(json.loads(path.read_text()))
            result = dataclasses.replace(result, false_positives=before.false_positives)
        result.save(path)
        counts = {t: sum(b.target == t for b in result.boxes) for t in SHARED_CLIPS[clip.name]}
        print(
            f"{clip.name}: {result.frames} frames, referee boxes {counts}, "
            f"{len(result.false_positives)} false positives by eye, "
            f"{result.seconds:.0f} s -> {path.relative_to(ROOT)}"
        )
        for stale in result.unmatched():
            print(f"  no box matches the false positive {stale} any more: review it")


def redact_now(clip: Path, folder: Path, models_dir: str | None) -> Path:
    plan = RedactionPlan(targets=tuple(TargetPlan(t) for t in SHARED_CLIPS[clip.name]))
    output = folder / f"{clip.stem}.redacted.mp4"
    redact(clip, output, plan, models_dir=models_dir)
    return output


def crop_pair(before: np.ndarray, after: np.ndarray, run: Run) -> np.ndarray:
    """Original | output around the run's worst box, the box outlined on both."""
    x1, y1, x2, y2 = run.worst.box.box
    side = max(96, 2 * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    height, width = before.shape[:2]
    left, top = (
        min(max(0, cx - side), max(0, width - 2 * side)),
        min(max(0, cy - side // 2 - side // 4), max(0, height - side)),
    )
    window = (slice(top, top + side), slice(left, left + 2 * side))
    halves = []
    for image in (before, after):
        part = image[window].copy()
        cv2.rectangle(part, (x1 - left, y1 - top), (x2 - left - 1, y2 - top - 1), (0, 0, 255), 1)
        scale = CROP_HEIGHT / part.shape[0]
        halves.append(cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    gap = np.full((CROP_HEIGHT, 4, 3), 255, dtype=np.uint8)
    return np.hstack([halves[0], gap, halves[1]])


def write_crops(clip: Path, redacted: Path, coverage: Coverage, worst: int) -> list[Path]:
    """PNGs of the `worst` runs with the most uncovered boxes."""
    runs = sorted(coverage.runs(), key=lambda r: (-len(r.boxes), r.worst.covered))[:worst]
    wanted = {r.worst.box.frame: r for r in runs}
    CROPS.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (before, after) in enumerate(zip(read_frames(clip), read_frames(redacted))):
        run = wanted.get(index)
        if run is None:
            continue
        name = f"referee_{clip.stem.removeprefix('intel_')}_{run.target}_{run.first}-{run.last}.png"
        path = CROPS / name
        cv2.imwrite(str(path), crop_pair(before, after, run), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(path)
    return written


def judge(clip: Path, redacted: Path | None, models_dir: str | None, worst: int) -> bool:
    """Print one clip's figures; True when nothing is uncovered."""
    targets = SHARED_CLIPS[clip.name]
    stored = load_annotations(annotation_path(clip), clip, targets)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        output = redacted or redact_now(clip, Path(scratch), models_dir)
        made = time.perf_counter() - start
        start = time.perf_counter()
        coverage = check_coverage(clip, output, stored.judged)
        judged = time.perf_counter() - start
        how = f"given {output}" if redacted else f"privmask now, {made:.1f} s"
        print(f"\n{clip.name} ({how}; judged in {judged:.1f} s)")
        print(coverage.summary())
        for path in write_crops(clip, output, coverage, worst) if worst else []:
            print(f"  crop: {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")
    return not coverage.uncovered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rerun the referee, store boxes")
    parser.add_argument("--clip", action="append", help="a file name of SHARED_CLIPS (repeat)")
    parser.add_argument("--redacted", type=Path, help="judge this output of the one --clip")
    parser.add_argument("--worst", type=int, default=2, help="crops per clip (0: none)")
    parser.add_argument("--models", default=os.environ.get("PRIVMASK_MODELS"))
    args = parser.parse_args(argv)
    models_dir = args.models or str(ROOT.parent / "shared" / "models")
    names = args.clip or list(SHARED_CLIPS)
    unknown = [n for n in names if n not in SHARED_CLIPS]
    if unknown or (args.redacted and len(names) != 1):
        print(
            "--clip takes one of " + ", ".join(SHARED_CLIPS) + "; --redacted needs exactly "
            "one --clip",
            file=sys.stderr,
        )
        return 2
    if args.redacted and not args.redacted.is_file():
        print(f"{args.redacted}: no such file", file=sys.stderr)
        return 2
    clips = [MEDIA / n for n in names]
    start = time.perf_counter()
    if args.write:
        write_annotations(clips, models_dir)
        print(f"\ntotal {time.perf_counter() - start:.0f} s")
        return 0
    try:
        clean = [judge(c, args.redacted, models_dir, args.worst) for c in clips]
    except StaleAnnotations as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0 if all(clean) else 3


if __name__ == "__main__":
    sys.exit(main())
