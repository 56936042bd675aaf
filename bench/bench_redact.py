"""Redaction speed, memory and small faces, measured in one run, with ratios.

    .venv/bin/python bench/bench_redact.py [--seconds 10] [--repeat 3] [--deface PATH]

On a 1280x720, 25 fps clip with ground truth (moving faces and people, see
`privmask.daemon.testing`), it times, as whole processes:
  1. a plain transcode with privmask's encoder settings (PyAV decode and encode only),
  2. privmask with static regions only,
  3. privmask with faces,
  4. privmask with faces and persons,
  5. deface at its defaults, if installed (`bench/.venv-deface/bin/deface` or --deface),
each --repeat times in interleaved rounds, keeping the fastest (deface runs once). For each
output it counts the ground-truth face appearances of 20 px and more that are masked.
Then it measures the peak memory of (4) on a 1080p clip, and how small the faces privmask
masks get on a scene of 12-18 px faces, clean and CCTV-like (faces only). Nothing here is
a pass or fail: it prints figures. The machine may be shared: the load average is printed,
and the CPU seconds of each run (user + system) say what the work costs whatever else
runs; compare ratios from one run.
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
    "use = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(use.ru_maxrss, use.ru_utime + use.ru_stime, file=sys.stderr); "
    "sys.exit(code)"
)


class Run:
    """One timed process: wall seconds, CPU seconds, peak memory (MB)."""

    def __init__(self, argv: list[str]) -> None:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", RSS_WRAPPER, *argv], capture_output=True, text=True
        )
        self.seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
        peak_kb, cpu = done.stderr.strip().splitlines()[-1].split()
        self.peak_mb, self.cpu = int(peak_kb) / 1024, float(cpu)


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


def faces_masked(scene, src: Path, out: Path, low: int, high: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(masked, total) ground-truth face appearances from `low` px to under `high` px."""
    from privmask.daemon.testing import is_masked, read_frames

    wanted: dict[int, list[tuple[int, int, int, int]]] = {}
    for index, _, box in scene.visible("face", min_size=low):
        if box[3] - box[1] < high:
            wanted.setdefault(index, []).append(box)
    masked = total = 0
    for index, (before, after) in enumerate(zip(read_frames(src), read_frames(out))):
        for box in wanted.get(index, []):
            total += 1
            masked += is_masked(before, after, box)
    return masked, total


def shown(counts: tuple[int, int] | None) -> str:
    return f"{counts[0]}/{counts[1]}" if counts and counts[1] else "-"


def small_faces(out: Path, people) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Share of the appearances masked, by face height, on a scene of 12-18 px faces."""
    from privmask.daemon.testing import FaceSpec, write_scene

    faces = [
        FaceSpec(f"face{h}_{k}", h, (0.12 + 0.25 * k, 0.15 + 0.11 * (h - 12)), (0.6, 0.15), 1.0)
        for h in range(12, 19)
        for k in range(4)
    ]
    result = {}
    for look in ("clean", "cctv"):
        clip = out / f"small_{look}.mp4"
        scene = write_scene(clip, faces=faces, seconds=4.0, cctv=look == "cctv", pillar=None)
        Run(privmask_cmd(clip, out / f"small_{look}_out.mp4", "--detect", "face"))
        for h in range(12, 19):
            masked, total = faces_masked(scene, clip, out / f"small_{look}_out.mp4", h, h + 1)
            result[f"{look} {h} px"] = masked / max(1, total)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
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
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    region = ["--detect", "none", "--region", "0,0,0.25,0.2", "--region", "0.6,0.7,1,1"]
    jobs = {
        "1 plain transcode": (plain_transcode_cmd(clip, args.out / "plain.mp4"), None),
        "2 privmask static regions": (
            privmask_cmd(clip, args.out / "static.mp4", *region),
            None,
        ),
        "3 privmask faces": (
            privmask_cmd(clip, args.out / "faces.mp4", "--detect", "face"),
            args.out / "faces.mp4",
        ),
        "4 privmask faces+persons": (
            privmask_cmd(clip, args.out / "dynamic.mp4", "--detect", "face,person"),
            args.out / "dynamic.mp4",
        ),
    }
    deface = shutil.which(args.deface) or (args.deface if Path(args.deface).exists() else None)
    if deface:
        output = args.out / "deface.mp4"
        jobs["5 deface defaults"] = ([deface, str(clip), "-o", str(output)], output)
    runs: dict[str, Run] = {}
    # interleaved rounds, so that a noisy moment of the shared machine hits every job alike
    for round_ in range(args.repeat):
        for name, (argv, _) in jobs.items():
            if name.startswith("5") and round_:
                continue  # deface is slow and its figure far from the others: once is enough
            run = Run(argv)
            if name not in runs or run.seconds < runs[name].seconds:
                peak = max(run.peak_mb, runs[name].peak_mb if name in runs else 0.0)
                runs[name], run.peak_mb = run, peak
            print(f"  round {round_ + 1}: {name}: {run.seconds:.2f} s", flush=True)

    base = runs["1 plain transcode"]
    print(
        f"\n{'run':28} {'seconds':>8} {'fps':>7} {'vs plain':>9} {'cpu s':>6} {'peak MB':>8}"
        f"  faces >=20 px masked"
    )
    results = {}
    for name, run in runs.items():
        fps = frames / run.seconds
        output = jobs[name][1]
        big = faces_masked(scene, clip, output, 20, 10_000) if output else None
        print(
            f"{name:28} {run.seconds:8.2f} {fps:7.1f} {base.seconds / run.seconds:9.2f} "
            f"{run.cpu:6.1f} {run.peak_mb:8.0f}  {shown(big):>13}"
        )
        results[name] = {
            "seconds": run.seconds,
            "fps": fps,
            "vs_plain": base.seconds / run.seconds,
            "cpu_seconds": run.cpu,
            "peak_mb": run.peak_mb,
            "faces_masked_20px": big,
        }
    if "5 deface defaults" in runs:
        ratio = runs["5 deface defaults"].seconds / runs["4 privmask faces+persons"].seconds
        print(f"\nprivmask faces+persons is {ratio:.1f}x the speed of deface")

    big = args.out / "scene1080.mp4"
    big_scene = write_scene(big, width=1920, height=1080, seconds=4.0, person_sprites=people)
    run = Run(privmask_cmd(big, args.out / "dynamic1080.mp4", "--detect", "face,person"))
    fps = big_scene.frame_count / run.seconds
    print(f"1080p faces+persons: {fps:.1f} fps, peak memory {run.peak_mb:.0f} MB")
    results["1080p faces+persons"] = {"fps": fps, "peak_mb": run.peak_mb, "cpu_seconds": run.cpu}

    small = small_faces(args.out, people)
    print("small faces masked (share of appearances, faces only):")
    for look in ("clean", "cctv"):
        row = [f"{h} px {small[f'{look} {h} px']:.2f}" for h in range(12, 19)]
        print(f"  {look:5}  " + "  ".join(row))
    results["small faces masked"] = small
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
