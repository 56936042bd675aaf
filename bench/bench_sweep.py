"""Sweeps: minutes of recording swept per minute of wall time on this machine.

    PRIVMASK_MODELS=../shared/models .venv/bin/python bench/bench_sweep.py [--minutes 5]

(a) Fetch only: an ONVIF replay (`Rate-Control: no`) of `--minutes` of a 720p H.264
    recording from GStreamer's ONVIF replay server on loopback (the test peer), into an MP4;
    and the listing of a large folder archive (30 days x 4 cameras x 96 files, empty files
    named as a Hikvision NVR names them, in day folders).
(b) End to end: `privmask sweep run` of a folder holding the shared footage (faces and
    persons masked: the built-in rule), against `privmask redact --detect face,person` of
    the same clips in the same run: the difference is the sweep's own cost (listing, journal,
    intake checks, hashing, escrow, packaging) per chunk.

Prints figures and ratios from one run; it is not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "sweeps")]

from replay_peer import ReplayServer, Served  # noqa: E402

from privmask.adapters.replay import replay  # noqa: E402
from privmask.daemon.sweeps.folder_source import FolderSource  # noqa: E402
from privmask.daemon.sweeps.source import Span  # noqa: E402

MEDIA = HERE.parent.parent / "shared" / "media"
FOOTAGE = ("intel_one-by-one-person-detection.mp4", "intel_car-detection.mp4")
PRIVMASK = [sys.executable, "-m", "privmask.daemon.cli"]
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def write_720p(path: Path, minutes: float) -> Path:
    """A 1280x720, 25 fps recording, a keyframe every 2 s: a moving block on a gradient
    (cheap to make; what is measured is the replay, not the encode)."""
    frames = round(minutes * 60 * 25)
    base = np.tile(np.linspace(0, 255, 1280, dtype=np.uint8), (720, 1))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.time_base = Fraction(1, 25)
        stream.options = {"preset": "ultrafast", "x264-params": "keyint=50:scenecut=0:bframes=0"}
        for index in range(frames):
            picture = np.stack([base, np.roll(base, index * 4, axis=1), base], axis=2)
            x = (index * 8) % 1100
            picture[200:400, x : x + 180] = 255
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def bench_replay(scratch: Path, minutes: float) -> None:
    print(f"making a {minutes:g}-minute 720p recording ...", flush=True)
    clip = write_720p(scratch / "recorded.mp4", minutes)
    end = T0 + timedelta(minutes=minutes)
    with ReplayServer([Served("/rec", T0, clip, "h264")], "bench", "bench-pass") as server:
        started = time.monotonic()
        got = replay(server.url("/rec"), "bench", "bench-pass", T0, end, scratch / "out.mp4",
                     timeout=60)  # fmt: skip
        wall = time.monotonic() - started
    size = (scratch / "out.mp4").stat().st_size / 1e6
    rate = size * 8 / (minutes * 60)
    print(f"(a) ONVIF replay, 720p H.264, Rate-Control: no: {minutes:g} min of recording "
          f"({got.frames} frames, {size:.0f} MB, {rate:.1f} Mbit/s) in {wall:.1f} s: "
          f"{minutes / (wall / 60):.0f} min of recording per wall minute")  # fmt: skip


def bench_listing(scratch: Path) -> None:
    root = scratch / "nvr"
    days, cameras, per_day = 30, 4, 96
    old = time.time() - 86400
    for day in range(days):
        start = T0 + timedelta(days=day)
        for camera in range(1, cameras + 1):
            folder = root / f"ch{camera:02d}" / f"{start:%Y-%m-%d}"
            folder.mkdir(parents=True)
            for quarter in range(per_day):
                a = start + timedelta(minutes=15 * quarter)
                b = a + timedelta(minutes=15)
                path = folder / f"ch{camera:02d}_{a:%Y%m%d%H%M%S}_{b:%Y%m%d%H%M%S}.mp4"
                path.touch()
                os.utime(path, (old, old))
    files = days * cameras * per_day
    source = FolderSource("bench", root, UTC, None)
    window = Span(T0, T0 + timedelta(days=days))
    for label, span in (("all 30 days", window), ("one day", Span(T0, T0 + timedelta(days=1)))):
        started = time.monotonic()
        listing = source.list(span)
        wall = time.monotonic() - started
        print(f"(a) folder listing, {files} files ({days} days x {cameras} cameras x "
              f"{per_day}), window {label}: {len(listing.recordings)} recordings in "
              f"{wall:.2f} s")  # fmt: skip


def seconds_of(clip: Path) -> float:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


def site(scratch: Path, archive: Path, models: Path) -> Path:
    for name in ("outbox", "escrow", "inbox"):
        (scratch / name).mkdir()
    password = scratch / "password"
    password.write_text("bench-package-password\n")
    password.chmod(0o600)
    since = (T0 - timedelta(days=1)).isoformat()
    sweep = {"name": "archive", "schedule": "30 2 * * *", "lag": "1h", "since": since,
             "source": {"folder": str(archive)}}  # fmt: skip
    config = {
        "timezone": "UTC", "inboxes": [str(scratch / "inbox")], "outbox": str(scratch / "outbox"),
        "quarantine": str(scratch / "quarantine"), "state": str(scratch / "state"),
        "escrow": {"store": str(scratch / "escrow")}, "models": str(models),
        "password": {"file": str(password)}, "sweeps": [sweep],
    }  # fmt: skip
    path = scratch / "privmask.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def timed(command: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:6])} failed: {done.stderr.strip()[-400:]}")
    return time.monotonic() - started


def bench_end_to_end(scratch: Path, models: Path, names: list[str]) -> None:
    archive = scratch / "archive"
    (archive / "cam1").mkdir(parents=True)
    clips, old = [], time.time() - 86400
    for number, name in enumerate(names):
        when = T0 + timedelta(hours=number)
        clip = archive / "cam1" / f"cam1_{when:%Y%m%d_%H%M%S}.mp4"
        clip.write_bytes((MEDIA / name).read_bytes())
        os.utime(clip, (old, old))
        clips.append(clip)
    minutes = sum(seconds_of(c) for c in clips) / 60
    config = site(scratch, archive, models)
    swept = timed([*PRIVMASK, "sweep", "run", "archive", "--config", str(config)])
    redacted = 0.0
    for number, clip in enumerate(clips):
        out = scratch / f"redacted{number}.mp4"
        redacted += timed([*PRIVMASK, "redact", "--detect", "face,person", "--quiet",
                           "--models", str(models), str(clip), str(out)])  # fmt: skip
    packages = len(list((scratch / "outbox").glob("*.zip")))
    print(f"(b) sweep run of {len(clips)} clips, {minutes:.1f} min of 768x432 footage, faces "
          f"and persons: {swept:.0f} s, {packages} packages: {minutes / (swept / 60):.2f} min "
          "of recording per wall minute")  # fmt: skip
    print(
        f"    privmask redact of the same clips: {redacted:.0f} s: "
        f"{minutes / (redacted / 60):.2f} min per wall minute"
    )
    per_chunk = (swept - redacted) / len(clips)
    print(
        f"    the sweep's own cost: {per_chunk:+.1f} s per chunk "
        f"(sweep / redact = {swept / redacted:.2f}); a day of wall time sweeps about "
        f"{minutes / (swept / 60) * 1440 / 60:.0f} h of such recording"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5, help="replayed recording (a)")
    parser.add_argument("--clips", nargs="+", default=list(FOOTAGE), help="shared footage (b)")
    parser.add_argument("--skip", choices=("replay", "listing", "end-to-end"), action="append",
                        default=[])  # fmt: skip
    args = parser.parse_args()
    models = Path(os.environ.get("PRIVMASK_MODELS", HERE.parent.parent / "shared" / "models"))
    print(f"{os.cpu_count()} CPUs; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if "replay" not in args.skip:
            (root / "replay").mkdir()
            bench_replay(root / "replay", args.minutes)
        if "listing" not in args.skip:
            (root / "listing").mkdir()
            bench_listing(root / "listing")
        if "end-to-end" not in args.skip:
            (root / "e2e").mkdir()
            bench_end_to_end(root / "e2e", models, args.clips)


if __name__ == "__main__":
    main()
