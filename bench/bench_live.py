"""Live masking: added glass-to-glass latency, sustained fps, and how many 720p cameras fit.

    .venv/bin/python bench/bench_live.py [--seconds 20] [--max-cameras 4] [--delay 0.8]

Peers are real and on loopback (see tests/live/peers.py): gst-rtsp-server plays a 1280x720,
25 fps synthetic scene (moving real faces, each frame's index stamped in a corner) as a
shared camera stream; masked streams are published to FFmpeg RTSP servers in listen mode.

1. Latency, one camera: a plain reader pulls the camera stream beside the live pipeline and
   notes when each stamped frame decodes; the viewer of the masked stream does the same.
   Added latency = masked arrival - direct arrival, per frame (median, p95). It includes
   the delay buffer (--delay), which is the price of masks that reach back in time.
2. Capacity: 1, 2, 3 ... cameras at once (each its own thread, detector and encoder, one
   shared source), until one falls below 25 fps sustained (frames published per second,
   after a warm-up). Viewers only count packets here, to leave the CPU to the pipeline.
Nothing here passes or fails: it prints figures. The machine is shared; rerun to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "live"))

from peers import CameraServer, Viewer, read_stamp, wait_for, write_camera_clip  # noqa: E402

from privmask.daemon.live.camera import LiveCamera, LiveOutputs, LiveSettings  # noqa: E402
from privmask.daemon.testing import DEFAULT_FACES  # noqa: E402
from privmask.rules.plan import RedactionPlan, TargetPlan  # noqa: E402

PLAN = RedactionPlan(targets=(TargetPlan("face"),))
MODELS = Path(os.environ.get("PRIVMASK_MODELS", ROOT.parent / "shared" / "models"))


def direct_reader(url: str, arrivals: dict[int, float], stop: list[bool]) -> None:
    """Decode the camera stream as a plain client would; note when each frame arrives."""
    import av

    with av.open(url, "r", options={"rtsp_transport": "tcp"}) as container:
        for frame in container.decode(video=0):
            index = read_stamp(frame.to_ndarray(format="gray"))
            arrivals.setdefault(index, time.monotonic())
            if stop:
                return


def latency(clip: Path, seconds: float, delay: float) -> None:
    import threading

    settings = LiveSettings(delay_s=delay)
    with CameraServer(clip, shared=True) as server:
        viewer = Viewer(keep_images=False).start()
        arrivals: dict[int, float] = {}
        stop: list[bool] = []
        reader = threading.Thread(target=direct_reader, args=(server.url, arrivals, stop))
        reader.daemon = True
        reader.start()
        wait_for(lambda: bool(arrivals), 10)  # the shared stream is playing
        camera = LiveCamera(server.url, PLAN, LiveOutputs(viewer.url), settings, MODELS, "lat")
        camera.start()
        time.sleep(seconds - 3)
        status = camera.status
        camera.stop()
        stop.append(True)
        viewer.join(5)
    added = [(r.at - arrivals[r.index]) * 1000 for r in viewer.frames[25:] if r.index in arrivals]
    if not added:
        print(f"latency: no frames matched ({viewer.error or status.last_error})")
        return
    ms = np.array(added)
    print(
        f"added latency, 1 camera, delay buffer {delay:.2f} s ({round(delay * 25)} frames): "
        f"median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms "
        f"(processing beyond the buffer: median {np.median(ms) - delay * 1000:.0f} ms), "
        f"{len(ms)} frames, sustained {status.fps:.1f} fps"
    )


def capacity(clip: Path, count: int, delay: float, warmup: float, window: float) -> list[float]:
    """Sustained fps of each of `count` cameras pulling one shared 720p stream."""
    with CameraServer(clip, shared=True) as server:
        viewers = [Viewer(keep_images=False, decode=False).start() for _ in range(count)]
        cameras = [
            LiveCamera(
                server.url, PLAN, LiveOutputs(v.url), LiveSettings(delay_s=delay), MODELS, f"c{i}"
            )
            for i, v in enumerate(viewers)
        ]
        for camera in cameras:
            camera.start()
        time.sleep(warmup)
        before = [c.status.frames_out for c in cameras]
        time.sleep(window)
        after = [c.status.frames_out for c in cameras]
        errors = [c.status.last_error for c in cameras if c.status.last_error]
        for camera in cameras:
            camera.stop()
    if errors:
        print(f"  errors: {errors}")
    return [(a - b) / window for a, b in zip(after, before)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the camera clip")
    parser.add_argument("--max-cameras", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.8, help="delay buffer, seconds")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; 1280x720 25 fps; faces, detect every 3rd frame at 640 px")
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "camera720.mp4"
        write_camera_clip(clip, 1280, 720, args.seconds, DEFAULT_FACES)
        latency(clip, args.seconds, args.delay)
        window = max(4.0, args.seconds - 10)
        held = 0
        for count in range(1, args.max_cameras + 1):
            fps = capacity(clip, count, args.delay, warmup=5.0, window=window)
            shown = ", ".join(f"{f:.1f}" for f in fps)
            print(f"{count} camera(s): sustained fps per camera [{shown}]")
            if min(fps) < 24.5:  # 25 fps with half a frame of measuring slack
                break
            held = count
        print(f"720p25 streams held at full rate: {held}")


if __name__ == "__main__":
    main()
