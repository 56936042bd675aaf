"""Soak: many short clips through the daemon; throughput, and lost or duplicated jobs.

    .venv/bin/python bench/bench_daemon.py [--clips 200] [--workers 2]

Writes distinct short clips (320x240, 1 s), drops them all into a running `privmask run`,
waits until every one is packaged or rejected, then counts packages per input hash.
Lost and duplicated must both be zero. Prints figures; it is not a pass/fail test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from privmask.adapters.models import sha256_of  # noqa: E402

from conftest import write_clip  # noqa: E402
from harness import Daemon, eventually  # noqa: E402


def _stamp(number: int):  # type: ignore[no-untyped-def]
    """Draw the clip's number into each frame, so that every clip has its own content."""

    def draw(index: int, image) -> None:  # type: ignore[no-untyped-def]
        for bit in range(12):
            image[8:24, 8 + bit * 16 : 24 + bit * 16] = 255 if number >> bit & 1 else 0

    return draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    models = HERE.parent.parent / "shared" / "models"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = root / "clips"
        source.mkdir()
        clips = [
            write_clip(source / f"clip{i:04d}.mp4", frames=25, draw=_stamp(i))
            for i in range(args.clips)
        ]
        expected = {sha256_of(c) for c in clips}
        (root / "site").mkdir()
        daemon = Daemon(root / "site", models, workers=args.workers)
        daemon.start()
        started = time.monotonic()
        for clip in clips:
            shutil.copy(clip, daemon.inbox / clip.name)
        finished = eventually(lambda: len(daemon.packages()) >= len(expected), timeout=3600)
        elapsed = time.monotonic() - started
        time.sleep(3)  # a few scans more: a late duplicate would show up now
        daemon.stop()
        made = [daemon.read(p)[1]["input"]["sha256"] for p in daemon.packages()]
        lost = len(expected - set(made))
        duplicated = len(made) - len(set(made))
        print(f"clips {len(clips)} ({len(expected)} distinct), workers {args.workers}, "
              f"all packaged: {finished}")  # fmt: skip
        print(f"elapsed {elapsed:.1f} s, {len(made) / elapsed:.2f} clips/s, "
              f"{25 * len(made) / elapsed:.0f} frames/s")  # fmt: skip
        print(f"lost {lost}, duplicated {duplicated}, leftovers {len(daemon.leftovers())}")


if __name__ == "__main__":
    main()
