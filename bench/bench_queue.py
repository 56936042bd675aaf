"""Scale: one daemon feeding 1, 2 and 4 `privmask worker` processes through RabbitMQ,
against the same daemon alone; what the queue costs, and what N machines would sweep.

    PRIVMASK_MODELS=../shared/models .venv/bin/python bench/bench_queue.py \
        [--clips 12] [--seconds 8] [--workers 1,2,4] [--local 1,2]

One real RabbitMQ (tests/broker.py), one real `privmask run` per configuration (a fresh site
each time: its own state, inbox, outbox; on the broker, its own queue), the built-in rule
(faces and persons masked). The batch: `--clips` distinct cuts of `--seconds` from the shared
real footage (768x432, 10 fps, people walking through a room), re-encoded once.

For each configuration, from dropping the batch into the inbox to the daemon's last
`job_done`: wall time, clips/s, video-seconds per wall-second; the CPU seconds of the
redacting processes (worker trees, or the daemon's children) and so video-seconds per
CPU-second, which other users of the machine do not change; the daemon's own CPU per job
(/proc/<pid>/stat utime+stime of the daemon process alone, threads included, children not);
and from the JSON events, the wait from `job_sent` (queue) or `clip_queued` (local) to the
worker's `job_started`, and the hand-off: how long a worker sat idle between its jobs while
others were waiting.

Prints figures and ratios from one run; it is not a pass/fail test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from broker import Broker  # noqa: E402
from cluster import Site, Worker  # noqa: E402
from harness import Daemon, children  # noqa: E402

MEDIA = HERE.parent.parent / "shared" / "media"
FOOTAGE = "intel_one-by-one-person-detection.mp4"
TICK = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 5.0


def cut_clips(source: Path, folder: Path, count: int, seconds: float) -> list[Path]:
    """`count` distinct cuts of `seconds` from `source`, re-encoded (H.264, its size and rate);
    cuts wrap around a short source, and a few stamped pixels keep every clip distinct."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 10)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    length = round(seconds * rate)
    if length > len(frames):
        raise SystemExit(f"--seconds {seconds}: {source.name} has {len(frames) / rate:.0f} s")
    span = len(frames) - length + 1
    clips = []
    for number in range(count):
        start = number * length % span
        path = folder / f"cam{number:03d}.mp4"
        with av.open(str(path), "w") as out:
            video = out.add_stream("libx264", rate=rate)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt, video.options = "yuv420p", {"preset": "veryfast"}
            for index, picture in enumerate(frames[start : start + length]):
                picture = picture.copy()
                for bit in range(10):  # the clip's number, bottom right
                    picture[-4:, -4 * (bit + 1) :][:, :4] = 255 if number >> bit & 1 else 0
                frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
                frame.pts = index
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        clips.append(path)
    return clips


def own_cpu(pid: int) -> float:
    """utime + stime of `pid` alone (all its threads, none of its children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and everything below it, reaped children included."""
    total = 0.0
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = sum(int(f) for f in fields[11:15]) / TICK
        total += sum(tree_cpu(child) for child in children(pid))
    return total


def when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def waits(queued: dict[int, float], started: list[dict[str, Any]]) -> list[float]:
    """Seconds from a job's queued (or sent) to its first start, for each job."""
    first: dict[int, float] = {}
    for event in started:
        first.setdefault(event["job"], when(event))
    return [first[job] - at for job, at in queued.items() if job in first]


def handoffs(per_worker: list[list[dict[str, Any]]], ready: dict[int, float]) -> list[float]:
    """Idle seconds of a worker between finishing one job and starting the next, counted
    only from when that next job was ready for it (a worker with nothing to do is not slow)."""
    gaps = []
    for events in per_worker:
        ordered = sorted(events, key=when)
        for done, nxt in zip(ordered, ordered[1:], strict=False):
            if done["event"] == "job_done" and nxt["event"] == "job_started":
                gaps.append(when(nxt) - max(when(done), ready.get(nxt["job"], 0.0)))
    return gaps


@dataclass
class Batch:
    wall: float  # from the drop to the last job_done
    daemon_cpu: float  # the daemon process alone, meanwhile
    daemon_idle: float  # its CPU seconds per second with nothing to do (scans, timers)
    worker_cpu: float  # the redacting processes, meanwhile

    def daemon_per_job(self, jobs: int) -> float:
        """The daemon's CPU per job beyond what it spends idle over the same wall time."""
        return max(0.0, self.daemon_cpu - self.daemon_idle * self.wall) / jobs


@dataclass
class Result:
    label: str
    processes: int
    batch: Batch
    packages: int
    waits: list[float]
    handoffs: list[float]


def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"not done within {timeout:.0f} s")
        time.sleep(0.05)


def run_batch(daemon: Daemon, clips: list[Path], redactors: Callable[[], float]) -> Batch:
    """Settle and measure the daemon idle, drop the batch, wait for the last job_done."""
    assert daemon.process is not None
    pid = daemon.process.pid
    idle_from, idle_cpu = time.monotonic(), own_cpu(pid)
    time.sleep(IDLE_SECONDS)  # also lets workers that said ready fork their pools and consume
    idle = (own_cpu(pid) - idle_cpu) / (time.monotonic() - idle_from)
    daemon_before, redactors_before = own_cpu(pid), redactors()
    started = time.monotonic()
    for clip in clips:
        shutil.copy(clip, daemon.inbox / clip.name)
    done = lambda: sum(e.get("event") == "job_done" for e in daemon.events) >= len(clips)  # noqa: E731
    until(done, timeout=120 + 60 * len(clips))
    wall = time.monotonic() - started
    return Batch(wall, own_cpu(pid) - daemon_before, idle, redactors() - redactors_before)


def queued_at(daemon: Daemon, event: str) -> dict[int, float]:
    """The first `event` of each job, by job id."""
    found: dict[int, float] = {}
    for e in daemon.events:
        if e.get("event") == event and "job" in e:
            found.setdefault(e["job"], when(e))
    return found


def bench_queue(root: Path, models: Path, broker: Broker, clips: list[Path], n: int) -> Result:
    root.mkdir()
    site = Site(root, models, broker, queue={"name": f"bench.q{n}"}, workers=1)
    try:
        site.daemon.start()
        workers = [site.worker() for _ in range(n)]
        for worker in workers:
            worker.wait_for("worker_ready")
        tree = lambda: sum(tree_cpu(w.process.pid) for w in workers)  # noqa: E731
        batch = run_batch(site.daemon, clips, tree)
        for worker in workers:
            worker.stop()
        site.daemon.stop()
        sent = queued_at(site.daemon, "job_sent")
        per_worker = [_jobs(w) for w in workers]
        label = f"queue, {n} worker{'s' * (n > 1)}"
        started = waits(sent, site.events("job_started"))
        return Result(
            label, n, batch, len(site.daemon.packages()), started, handoffs(per_worker, sent)
        )
    finally:
        site.close()


def _jobs(worker: Worker) -> list[dict[str, Any]]:
    return [e for e in worker.events() if e.get("event") in ("job_started", "job_done")]


def bench_local(root: Path, models: Path, clips: list[Path], n: int) -> Result:
    root.mkdir()
    daemon = Daemon(root, models, workers=n)
    try:
        daemon.start()
        assert daemon.process is not None
        pid = daemon.process.pid
        pool = lambda: tree_cpu(pid) - own_cpu(pid)  # noqa: E731
        batch = run_batch(daemon, clips, pool)
        daemon.stop()
        queued = queued_at(daemon, "clip_queued")
        jobs = [e for e in daemon.events if e.get("event") in ("job_started", "job_done")]
        by_pid: dict[Any, list[dict[str, Any]]] = {}
        for e in jobs:  # local workers log to the daemon's stderr, each with its name
            by_pid.setdefault(e.get("worker"), []).append(e)
        started = [e for e in jobs if e["event"] == "job_started"]
        gaps = handoffs(list(by_pid.values()), queued) if None not in by_pid else []
        return Result(f"daemon alone, workers: {n}", n, batch, len(daemon.packages()),
                      waits(queued, started), gaps)  # fmt: skip
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()


def ms(values: list[float], pick: Callable[[list[float]], float]) -> str:
    return f"{pick(values) * 1000:.0f}" if values else "-"


def report(results: list[Result], clips: int, video: float, frames: int) -> None:
    print()
    header = (f"{'configuration':<26}{'wall s':>7}{'clips/s':>8}{'vid-s/s':>8}{'cpu s':>7}"
              f"{'cores':>6}{'vid-s/cpu-s':>12}{'daemon ms/job':>14}{'net':>5}"
              f"{'wait ms med/min':>16}"
              f"{'hand-off ms':>12}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in results:
        b = r.batch
        wait = f"{ms(r.waits, statistics.median)}/{ms(r.waits, min)}"
        print(f"{r.label:<26}{b.wall:>7.1f}{clips / b.wall:>8.2f}{video / b.wall:>8.2f}"
              f"{b.worker_cpu:>7.1f}{b.worker_cpu / b.wall:>6.2f}{video / b.worker_cpu:>12.2f}"
              f"{b.daemon_cpu / clips * 1000:>14.0f}{b.daemon_per_job(clips) * 1000:>5.0f}"
              f"{wait:>16}{ms(r.handoffs, statistics.median):>12}"
              + ("" if r.packages == clips else f"   ({r.packages} packages!)"))  # fmt: skip
    print(
        "(cpu s: the redacting processes; cores: cpu s / wall s; daemon ms/job: its own CPU "
        "over the batch per job, "
        "net: less what it spends idle in as long; wait: job_sent (queue) or clip_queued "
        "(local) to job_started; hand-off: a worker idle between jobs while one was ready)"
    )
    local = {r.processes: r for r in results if r.label.startswith("daemon")}
    queued = {r.processes: r for r in results if r.label.startswith("queue")}
    print()
    for n in sorted(set(local) & set(queued)):
        q, lo = queued[n].batch, local[n].batch
        print(f"{n} process{'es' * (n > 1)}: queue / daemon alone, wall {q.wall / lo.wall:.2f}; "
              f"daemon CPU per job, net, {q.daemon_per_job(clips) * 1000:.0f} ms (queue) vs "
              f"{lo.daemon_per_job(clips) * 1000:.0f} ms (local)")  # fmt: skip
    if len(queued) > 1:
        one = queued[min(queued)].batch
        speedups = [f"{n}: {one.wall / r.batch.wall:.2f}x" for n, r in sorted(queued.items())]
        print("queue speed-up over 1 worker: " + ", ".join(speedups))
    cores = os.cpu_count() or 1
    used = max(r.batch.worker_cpu / r.batch.wall for r in results)
    print(f"on this machine the cores bound it: {cores} cores, shared with whatever else runs "
          f"here; the redacting processes got at most {used:.2f} of them. Workers beyond "
          f"{cores} add no capacity: they only take a bigger share of a busy machine, and "
          "vid-s/cpu-s stays flat")  # fmt: skip
    estimate(results, queued, clips, video, frames)


def estimate(
    results: list[Result], queued: dict[int, Result], clips: int, video: float, frames: int
) -> None:
    """Per core, and how many worker cores one daemon core keeps fed, from this run."""
    per_cpu = statistics.median(video / r.batch.worker_cpu for r in results)
    fps = frames / video
    print(f"\nper core (median of the runs): {per_cpu:.2f} video-s per CPU-s "
          f"({per_cpu * fps:.0f} frames of {fps:g} fps 768x432 per CPU-s): one busy core "
          f"redacts {per_cpu * 24:.0f} h of such footage a day")  # fmt: skip
    if not queued:
        return
    per_job = statistics.median(r.batch.daemon_per_job(clips) for r in queued.values())
    idle = statistics.median(r.batch.daemon_idle for r in queued.values())
    clip = video / clips
    fed = clip / per_job / per_cpu if per_job > 0 else float("inf")
    print(f"daemon, queue mode: {idle * 1000:.0f} ms CPU per s idle, {per_job * 1000:.0f} ms "
          f"per job net: one daemon core keeps about {fed:.0f} worker cores busy with "
          f"{clip:g}-s clips (most of that is per job, not per video-second: validation "
          "decodes 1 s at each end; longer clips let it feed more)")  # fmt: skip


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=8, help="length of each clip")
    parser.add_argument("--workers", default="1,2,4", help="`privmask worker` processes")
    parser.add_argument("--local", default="1,2", help="daemon-alone `workers:` for baseline")
    parser.add_argument("--footage", default=FOOTAGE, help="a file in the shared media")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n]
    local = [int(n) for n in args.local.split(",") if n]
    models = Path(os.environ.get("PRIVMASK_MODELS", HERE.parent.parent / "shared" / "models"))
    print(f"{os.cpu_count()} CPUs; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
          f"load average at start {loadavg()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "clips").mkdir()
        clips = cut_clips(MEDIA / args.footage, root / "clips", args.clips, args.seconds)
        with av.open(str(clips[0])) as c:
            fps = float(c.streams.video[0].average_rate or 10)
        video = args.clips * args.seconds
        print(f"batch: {len(clips)} clips x {args.seconds:g} s of {args.footage} "
              f"(768x432, {fps:g} fps): {video:g} video-s", flush=True)  # fmt: skip
        broker = Broker(root / "rabbitmq")
        print(f"RabbitMQ up in {broker.start():.1f} s", flush=True)
        results = []
        try:
            for n in counts:
                results.append(bench_queue(root / f"queue{n}", models, broker, clips, n))
                print(f"  {results[-1].label}: {results[-1].batch.wall:.1f} s", flush=True)
            for n in local:
                results.append(bench_local(root / f"local{n}", models, clips, n))
                print(f"  {results[-1].label}: {results[-1].batch.wall:.1f} s", flush=True)
        finally:
            broker.stop()
        report(results, len(clips), video, round(video * fps))
    print(f"\nload average at end {loadavg()}")


if __name__ == "__main__":
    main()
