"""Live masking: how many 720p25 cameras one machine masks at full rate, and the latency added.

    .venv/bin/python bench/bench_live.py [--plan face,person] [--cameras 1,2,3,4]
        [--seconds 40] [--delay 2.0] [--every N] [--width W] [--per-camera]

Peers are real and on loopback (see tests/live/peers.py): gst-rtsp-server plays a 1280x720,
25 fps synthetic scene (moving real faces and people, each frame's index stamped in a
corner) as one shared camera stream; masked streams are published to FFmpeg RTSP servers in
listen mode. For each number of cameras, that many `LiveCamera`s pull the stream at once,
sharing one detection worker as the daemon's cameras do (`--per-camera`: each its own, as
before that worker existed), and print:
- sustained fps per camera: frames published per second after a warm-up;
- added latency (p50, p95): a plain reader decodes the camera stream beside the pipeline and
  notes when each stamped frame arrives; the viewer of camera 0's masked stream does the
  same. It includes the delay buffer (--delay), the price of masks that reach back in time;
- the most frames any camera's buffer held, and the load average before and after (the
  machine is shared: a load above its cores means the figures are low).
Nothing here passes or fails. Rerun to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "live"))

from peers import CameraServer, Viewer, read_luma_stamp, wait_for, write_camera_clip  # noqa: E402

from privmask.daemon.live.camera import LiveCamera, LiveOutputs, LiveSettings  # noqa: E402
from privmask.daemon.live.detecting import SharedDetection  # noqa: E402
from privmask.daemon.testing import DEFAULT_FACES, person_sprites_from_media  # noqa: E402
from privmask.rules.plan import RedactionPlan, TargetPlan  # noqa: E402

MODELS = Path(os.environ.get("PRIVMASK_MODELS", ROOT.parent / "shared" / "models"))
MEDIA = ROOT.parent / "shared" / "media"
WARMUP_S = 6.0


@dataclass
class Run:
    fps: list[float]
    detections: list[float]  # per camera and second
    latency_ms: np.ndarray
    max_buffered: int
    load: tuple[float, float]  # 1-minute load average before and after
    errors: list[str]


def direct_reader(url: str, arrivals: dict[int, float], stop: threading.Event) -> None:
    """Decode the camera stream as a plain client would; note when each frame arrives."""
    with av.open(url, "r", options={"rtsp_transport": "tcp"}) as container:
        for frame in container.decode(video=0):
            arrivals.setdefault(read_luma_stamp(frame), time.monotonic())
            if stop.is_set():
                return


def run(
    clip: Path,
    seconds: float,
    count: int,
    plan: RedactionPlan,
    settings: LiveSettings,
    shared: bool,
) -> Run:
    """`count` cameras pulling one shared 720p stream of `seconds`."""
    load = os.getloadavg()[0]
    with CameraServer(clip, shared=True) as server:
        arrivals: dict[int, float] = {}
        stop = threading.Event()
        reader = threading.Thread(target=direct_reader, args=(server.url, arrivals, stop))
        reader.daemon = True
        reader.start()
        wait_for(lambda: bool(arrivals), 10)  # the shared stream is playing
        viewers = [Viewer(keep_images=False, stamps_only=True).start()]
        viewers += [Viewer(keep_images=False, decode=False).start() for _ in range(count - 1)]
        detection = SharedDetection(MODELS) if shared else None
        cameras = [
            LiveCamera(
                server.url, plan, LiveOutputs(v.url), settings, MODELS, f"c{i}", None, detection
            )
            for i, v in enumerate(viewers)
        ]
        for camera in cameras:
            camera.start()
        time.sleep(WARMUP_S)
        before = [c.status.frames_out for c in cameras]
        looked = [c.status.detections for c in cameras]
        started = time.monotonic()
        time.sleep(seconds - WARMUP_S - 4.0)  # until before the clip ends (and buffers flush)
        statuses = [c.status for c in cameras]
        ended = time.monotonic()
        window = ended - started
        for camera in cameras:
            camera.stop()
        if detection is not None:
            detection.close()
        stop.set()
        viewers[0].join(5)
    fps = [(s.frames_out - b) / window for s, b in zip(statuses, before)]
    detections = [(s.detections - d) / window for s, d in zip(statuses, looked)]
    # every frame arrives, in order: the k-th received is source frame k + offset (a mask
    # over the stamp corner, a person's, would misread a few stamps)
    received = viewers[0].frames
    offset = int(np.median([r.index - k for k, r in enumerate(received)])) if received else 0
    added = [
        (r.at - arrivals[k + offset]) * 1000
        for k, r in enumerate(received)
        if k + offset in arrivals and started <= r.at <= ended
    ]
    errors = [s.last_error for s in statuses if s.last_error and s.last_error != "stream ended"]
    return Run(
        fps,
        detections,
        np.array(added),
        max(s.max_buffered for s in statuses),
        (load, os.getloadavg()[0]),
        errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--plan", default="face,person", help="targets, comma-separated")
    parser.add_argument("--cameras", default="1,2,3,4", help="camera counts to run")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the camera clip")
    parser.add_argument("--delay", type=float, default=LiveSettings().delay_s, help="seconds")
    parser.add_argument("--every", type=int, default=None, help="detect every n-th frame")
    parser.add_argument("--width", type=int, default=0, help="detect on frames this wide")
    parser.add_argument("--per-camera", action="store_true", help="a detection worker each")
    args = parser.parse_args()
    plan = RedactionPlan(targets=tuple(TargetPlan(t) for t in args.plan.split(",")))
    settings = LiveSettings(delay_s=args.delay, detect_every=args.every, detect_width=args.width)
    every = args.every or plan.detect_every
    worker = "a detection worker per camera" if args.per_camera else "one shared detection worker"
    print(
        f"{os.cpu_count()} CPUs; 1280x720 25 fps; {args.plan}, detect every {every}th frame"
        f"{f' at {args.width} px wide' if args.width else ''}; "
        f"delay buffer {args.delay:.1f} s; {worker}; encoder {settings.encoder.preset} "
        f"crf {settings.encoder.crf} zerolatency"
    )
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "camera720.mp4"
        people = person_sprites_from_media(MEDIA) if "person" in args.plan else []
        write_camera_clip(clip, 1280, 720, args.seconds, DEFAULT_FACES, people=people)
        for count in [int(c) for c in args.cameras.split(",")]:
            r = run(clip, args.seconds, count, plan, settings, shared=not args.per_camera)
            shown = ", ".join(f"{f:.1f}" for f in r.fps)
            latency = (
                f"p50 {np.percentile(r.latency_ms, 50):.0f} ms, "
                f"p95 {np.percentile(r.latency_ms, 95):.0f} ms"
                if len(r.latency_ms)
                else "no frames matched"
            )
            print(
                f"{count} camera(s): fps per camera [{shown}] "
                f"(detections/s {min(r.detections):.1f}-{max(r.detections):.1f}); "
                f"added latency {latency}; "
                f"most buffered {r.max_buffered} frames; load {r.load[0]:.1f} -> {r.load[1]:.1f}"
            )
            for error in r.errors:
                print(f"  error: {error}")


if __name__ == "__main__":
    main()
