"""Redaction speed and memory, measured in one run on one clip, with ratios.

    .venv/bin/python bench/bench_redact.py [--seconds 12] [--deface PATH]

On a 1280x720, 25 fps clip with ground truth (moving faces and people, see
`privmask.daemon.testing`), it times:
  1. a plain transcode with privmask's encoder settings (decode and encode only),
  2. privmask with static regions only,
  3. privmask with faces and persons,
  4. deface at its defaults, if installed (`bench/.venv-deface/bin/deface` or --deface),
each --repeat times in interleaved rounds, keeping the fastest (deface runs once), then counts
for each output how many ground-truth face appearances (>= 20 px, per frame) are masked, and
measures the peak memory of (3) on a 1080p clip. Nothing here is a pass or
fail: it prints figures. The machine is shared, so compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MEDIA = ROOT.parent / "shared" / "media"
RSS_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS of the child in MB)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return elapsed, peak_kb / 1024


def plain_transcode_cmd(src: Path, dst: Path) -> list[str]:
    code = (
        "import sys; from pathlib import Path; "
        "from privmask.adapters.transcode import Transcoder; "
        "from privmask.adapters.video import EncoderSettings, probe; "
        "src, dst = Path(sys.argv[1]), Path(sys.argv[2]); "
        "t = Transcoder(src, dst, EncoderSettings(), probe(src)); "
        "[t.write(f) for f in t.frames()]; t.finish()"
    )
    return [sys.executable, "-c", code, str(src), str(dst)]


def privmask_cmd(src: Path, dst: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "privmask.daemon.cli",
        "redact",
        str(src),
        str(dst),
        "--quiet",
        "--force",  # each round writes the same output again
        *args,
    ]


def faces_masked(scene, src: Path, out: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(masked, total) ground-truth face appearances of at least 20 px."""
    from privmask.daemon.testing import is_masked, read_frames

    wanted: dict[int, list[tuple[int, int, int, int]]] = {}
    for index, _, box in scene.visible("face", min_size=20):
        wanted.setdefault(index, []).append(box)
    masked = total = 0
    for index, (before, after) in enumerate(zip(read_frames(src), read_frames(out))):
        for box in wanted.get(index, []):
            total += 1
            masked += is_masked(before, after, box)
    return masked, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--deface", default=str(HERE / ".venv-deface" / "bin" / "deface"))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each privmask job; the fastest counts"
    )
    args = parser.parse_args()
    os.environ.setdefault("PRIVMASK_MODELS", str(ROOT.parent / "shared" / "models"))

    from privmask.daemon.testing import person_sprites_from_media, write_scene

    args.out.mkdir(parents=True, exist_ok=True)
    people = person_sprites_from_media(MEDIA)
    clip = args.out / "scene720.mp4"
    scene = write_scene(clip, seconds=args.seconds, person_sprites=people)
    frames = scene.frame_count
    print(f"clip: {clip.name} 1280x720 25 fps, {frames} frames ({frames / 25:.1f} s)")

    region = ["--detect", "none", "--region", "0,0,0.25,0.2", "--region", "0.6,0.7,1,1"]
    runs: dict[str, tuple[float, float]] = {}
    outputs: dict[str, Path] = {}
    jobs = {
        "1 plain transcode": plain_transcode_cmd(clip, args.out / "plain.mp4"),
        "2 privmask static regions": privmask_cmd(clip, args.out / "static.mp4", *region),
        "3 privmask faces+persons": privmask_cmd(
            clip, args.out / "dynamic.mp4", "--detect", "face,person"
        ),
    }
    outputs["3 privmask faces+persons"] = args.out / "dynamic.mp4"
    deface = shutil.which(args.deface) or (args.deface if Path(args.deface).exists() else None)
    if deface:
        jobs["4 deface defaults"] = [deface, str(clip), "-o", str(args.out / "deface.mp4")]
        outputs["4 deface defaults"] = args.out / "deface.mp4"
    # interleaved rounds, so that a noisy moment of the shared machine hits every job alike
    for round_ in range(args.repeat):
        for name, argv in jobs.items():
            if name.startswith("4") and round_:
                continue  # deface is slow and its figure far from the others: once is enough
            seconds, peak = run(argv)
            best = runs.get(name, (seconds, peak))
            runs[name] = (min(seconds, best[0]), max(peak, best[1]))
            print(f"  round {round_ + 1}: {name}: {seconds:.1f} s", flush=True)

    base = frames / runs["1 plain transcode"][0]
    print(f"\n{'run':28} {'seconds':>8} {'fps':>7} {'vs plain':>9} {'peak MB':>8}  faces masked")
    results = {}
    for name, (seconds, peak) in runs.items():
        fps = frames / seconds
        masked = faces_masked(scene, clip, outputs[name]) if name in outputs else None
        shown = f"{masked[0]}/{masked[1]}" if masked else "-"
        print(f"{name:28} {seconds:8.1f} {fps:7.1f} {fps / base:9.2f} {peak:8.0f}  {shown}")
        results[name] = {"seconds": seconds, "fps": fps, "peak_mb": peak, "faces_masked": masked}
    if "4 deface defaults" in runs:
        ratio = runs["4 deface defaults"][0] / runs["3 privmask faces+persons"][0]
        print(f"\nprivmask faces+persons is {ratio:.1f}x the speed of deface")

    big = args.out / "scene1080.mp4"
    big_scene = write_scene(big, width=1920, height=1080, seconds=4.0, person_sprites=people)
    seconds, peak = run(privmask_cmd(big, args.out / "dynamic1080.mp4", "--detect", "face,person"))
    fps = big_scene.frame_count / seconds
    print(f"1080p faces+persons: {fps:.1f} fps, peak memory {peak:.0f} MB")
    results["1080p faces+persons"] = {"fps": fps, "peak_mb": peak}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
