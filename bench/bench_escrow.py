"""Escrow throughput and memory on a clip of at least 1 GB, measured in one run, with ratios.

    .venv/bin/python bench/bench_escrow.py [--gigabytes 1.0] [--workdir /tmp]

Builds a real, playable clip of the given size by stream-copying a shared sample clip over
and over (no re-encode), then times, each in its own process so that its peak memory is its
own:
  1. a plain copy of the clip (the floor: what the disk allows),
  2. sha256 of the clip (what intake already spends on every clip),
  3. escrow: `daemon.escrow.seal` to one age X25519 recipient (read, encrypt, hash, write,
     fsync, rename), the step a job adds before its package,
  4. reveal's decryption: `adapters.age.decrypt` with the custodian's identity,
  5. the same decryption by the standard `age` CLI, if installed.
Nothing here is a pass or fail: it prints MB/s, ratios against the copy from the same run,
and peak RSS. The machine is shared, so compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE.parent.parent / "shared" / "media"
SAMPLE = MEDIA / "intel_one-by-one-person-detection.mp4"

# each step runs as `python -c STEP <args>` and prints its peak RSS (KiB) last
STEPS = {
    "copy": "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])",
    "sha256": "import sys; from pathlib import Path; "
    "from privmask.adapters.models import sha256_of; sha256_of(Path(sys.argv[1]))",
    "seal": "import sys; from pathlib import Path; import pyrage; "
    "from privmask.daemon.custody import escrow; "
    "r = pyrage.x25519.Recipient.from_str(sys.argv[3]); "
    "escrow.seal(Path(sys.argv[1]), Path(sys.argv[2]), 'bench', [r])",
    "decrypt": "import sys; from pathlib import Path; from privmask.adapters import age; "
    "ids = age.load_identities(Path(sys.argv[3])); "
    "src, dst = open(sys.argv[1], 'rb'), open(sys.argv[2], 'wb'); age.decrypt(src, dst, ids)",
}
RSS = "; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def make_clip(target: Path, gigabytes: float) -> None:
    """Stream-copy SAMPLE into `target` until it holds `gigabytes` GiB: a real clip, fast."""
    import av

    want = int(gigabytes * (1 << 30))
    with av.open(str(SAMPLE)) as source, av.open(str(target), "w") as sink:
        stream_in = source.streams.video[0]
        stream_out = sink.add_stream_from_template(stream_in)
        offset = 0
        while True:
            source.seek(0)
            last = 0
            for packet in source.demux(stream_in):
                if packet.dts is None:
                    continue
                last = max(last, packet.pts + (packet.duration or 1))
                packet.pts += offset
                packet.dts += offset
                packet.stream = stream_out
                sink.mux(packet)
            offset += last
            sink_size = target.stat().st_size
            if sink_size >= want:
                break


def step(name: str, *args: str) -> tuple[float, float]:
    """Run one step in its own process; (seconds, peak RSS in MiB)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STEPS[name] + RSS, *args], capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    return seconds, int(done.stdout.split()[-1]) / 1024


def age_cli(sealed: Path, out: Path, identity: Path) -> tuple[float, float] | None:
    if shutil.which("age") is None:
        return None
    # a fresh process whose only child is age, so that its children's peak is age's
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = ["age", "-d", "-i", str(identity), "-o", str(out), str(sealed)]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"age -d failed:\n{done.stderr[-2000:]}")
    return seconds, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0, help="clip size, GiB (1.0)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    import pyrage

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-escrow-") as scratch:
        work = Path(scratch)
        clip, store = work / "clip.mp4", work / "store"
        store.mkdir()
        make_clip(clip, args.gigabytes)
        size_mb = clip.stat().st_size / 1e6
        identity = pyrage.x25519.Identity.generate()
        key = work / "custodian.txt"
        key.write_text(str(identity) + "\n")
        key.chmod(0o600)

        figures: dict[str, tuple[float, float]] = {}
        figures["copy"] = step("copy", str(clip), str(work / "copy.mp4"))
        (work / "copy.mp4").unlink()
        figures["sha256"] = step("sha256", str(clip))
        figures["seal"] = step("seal", str(clip), str(store), str(identity.to_public()))
        sealed = store / "bench.age"
        figures["decrypt"] = step("decrypt", str(sealed), str(work / "open.mp4"), str(key))
        (work / "open.mp4").unlink()
        cli = age_cli(sealed, work / "cli.mp4", key)
        if cli:
            figures["age -d (CLI)"] = cli

        print(f"clip: {size_mb:,.0f} MB ({clip.stat().st_size:,} bytes), age file "
              f"{sealed.stat().st_size:,} bytes; {os.cpu_count()} cores")  # fmt: skip
        print(f"{'step':<16}{'seconds':>9}{'MB/s':>9}{'x copy':>9}{'peak RSS MiB':>15}")
        floor = figures["copy"][0]
        for name, (seconds, rss) in figures.items():
            print(
                f"{name:<16}{seconds:>9.2f}{size_mb / seconds:>9.0f}"
                f"{seconds / floor:>9.2f}{rss:>15.0f}"
            )


if __name__ == "__main__":
    main()
