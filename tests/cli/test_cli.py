"""The `privmask` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clips import write_clip


def privmask(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    """Exactly one error line, last; before it at most argparse's usage lines."""
    assert result.returncode == code, result.stderr
    *before, last = result.stderr.strip().splitlines()
    assert last.startswith("privmask") and ": error: " in last, result.stderr
    assert words in last, result.stderr
    usage = before[0].startswith("usage:") if before else True
    assert usage and all(line.startswith((" ", "usage:")) for line in before), result.stderr


def test_static_regions_with_report(clip: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = privmask(
        "redact",
        clip,
        out,
        "--detect",
        "none",
        "--region",
        "10,10,100,10,100,100",
        "--report",
        report,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["totals"]["frames"] == 30
    assert data["tracks"] == []
    assert data["models"] == []
    assert data["output"]["file"] == "out.mp4"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--style", "smudge"], "--style must be one of blur|pixelate|solid"),
        (["--detect", "cats"], "--detect takes face, person, plate or none"),
        (["--detect", "none"], "nothing to mask"),
        (["--region", "1,2,3"], "expected an even count"),
        (["--region", "0,0,10,10,0,10,10,0"], "self-intersecting"),
        (["--detect-every", "0"], "detect-every must be 1..30"),
        (["--codec", "vp9"], "--codec: invalid choice: 'vp9'"),
        (["--preset", "bogus"], "--preset: invalid choice: 'bogus'"),
        (["--face-model", "yolox-nano"], "--face-model: invalid choice"),
        (["--region", "0,0,nan,nan"], "not a finite number"),
        # 1.5 is no pixel a user means beside 0.5 of the frame: refused, not read as pixels
        (["--region", "0,0,1.5,0.5"], "mixes fractions (0..1) and pixels"),
    ],
)
def test_wrong_options_exit_2_with_one_line(
    clip: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    out = tmp_path / "out.mp4"
    assert_one_clear_line(privmask("redact", clip, out, *args), 2, words)
    assert not out.exists()


def test_bad_input_exits_1_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "broken.mp4"
    src.write_text("this is not a video")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = privmask("redact", src, out_dir / "x.mp4", "--detect", "none", "--region", "0,0,1,1")
    assert_one_clear_line(result, 1, "not a readable video container")
    assert list(out_dir.iterdir()) == []


def test_missing_model_says_how_to_get_it(clip: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    result = privmask(
        "redact",
        clip,
        tmp_path / "o.mp4",
        "--models",
        empty,
        env={"PRIVMASK_MODELS": "", "XDG_DATA_HOME": str(tmp_path / "xdg")},
    )
    assert_one_clear_line(result, 1, "privmask models fetch yunet")
    assert "privmask models import" in result.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_output_must_not_overwrite_input(clip: Path) -> None:
    result = privmask("redact", clip, clip, "--detect", "none", "--region", "0,0,1,1")
    assert_one_clear_line(result, 2, "must not be INPUT")


def test_models_import_and_list(models_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    renamed = tmp_path / "whatever-name.onnx"
    renamed.write_bytes((models_dir / "light_person_detector_192.onnx").read_bytes())
    result = privmask("models", "import", renamed, "--to", store)
    assert result.returncode == 0, result.stderr
    assert (store / "light_person_detector_192.onnx").read_bytes() == renamed.read_bytes()
    listing = privmask("models", "list", "--models", store, env={"PRIVMASK_MODELS": ""})
    assert f"{store}/light_person_detector_192.onnx" in listing.stdout
    assert "not installed" in listing.stdout  # the others are not in that store

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\0" * 100)
    assert_one_clear_line(
        privmask("models", "import", junk, "--to", store), 1, "matches no known model"
    )


def test_corrupt_model_is_reported_as_such(clip: Path, models_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "models"
    bad.mkdir()
    (bad / "face_detection_yunet_2023mar.onnx").write_bytes(b"truncated")
    result = privmask(
        "redact", clip, tmp_path / "o.mp4", "--models", bad, env={"PRIVMASK_MODELS": ""}
    )
    assert_one_clear_line(result, 1, "does not match its pinned sha256")


def test_models_fetch_from_a_site_mirror_verifies_the_hash(
    models_dir: Path, tmp_path: Path
) -> None:
    import functools
    import http.server
    import threading

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "yolox_nano_416.onnx").write_bytes((models_dir / "yolox_nano_416.onnx").read_bytes())
    (mirror / "light_person_detector_192.onnx").write_bytes(b"tampered")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    secret_url = f"http://reader:hunter2@127.0.0.1:{server.server_address[1]}"
    store = tmp_path / "store"
    try:
        ok = privmask("models", "fetch", "yolox-nano", "--to", store, "--mirror", url)
        assert ok.returncode == 0, ok.stderr
        assert (store / "yolox_nano_416.onnx").read_bytes() == (
            mirror / "yolox_nano_416.onnx"
        ).read_bytes()
        bad = privmask("models", "fetch", "light-person", "--to", store, "--mirror", url)
        assert_one_clear_line(bad, 1, "sha256 mismatch")
        hidden = privmask("models", "fetch", "light-person", "--to", store, "--mirror", secret_url)
        assert_one_clear_line(hidden, 1, "could not fetch light-person")
        assert "hunter2" not in hidden.stderr
        assert not (store / "light_person_detector_192.onnx").exists()
    finally:
        server.shutdown()


def test_plates_on_real_parking_footage(media_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "cars.mp4", tmp_path / "cars.json"
    result = privmask(
        "redact", media_dir / "intel_car-detection.mp4", out,
        "--detect", "plate", "--style", "solid", "--report", report, "--models", models_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["totals"]["frames"] == 377
    plates = [t for t in data["tracks"] if t["class"] == "plate"]
    # the red car's rear plate at about (391, 332)-(420, 343) around frame 210
    assert any(
        t["masked_from"] <= 210 <= t["masked_to"]
        and any(abs(b[1] - 391) < 20 and abs(b[2] - 332) < 20 for b in t["boxes"])
        for t in plates
    ), plates


def test_mp4_output_has_its_index_first(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    assert (
        privmask("redact", clip, out, "--detect", "none", "--region", "0,0,10,10").returncode == 0
    )
    head = out.read_bytes()[:4096]
    assert 0 < head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_report_may_not_overwrite_input_or_output(clip: Path, tmp_path: Path) -> None:
    before = clip.read_bytes()
    out = tmp_path / "out.mp4"
    for report in (clip, out):
        result = privmask("redact", clip, out, "--detect", "none", "--region", "0,0,9,9",
                          "--report", report)  # fmt: skip
        assert_one_clear_line(result, 2, "--report must name a file other than INPUT and OUTPUT")
    assert clip.read_bytes() == before
    assert not out.exists()


def test_report_in_a_missing_folder_fails_before_any_work(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = privmask("redact", clip, out, "--detect", "none", "--region", "0,0,9,9",
                      "--report", tmp_path / "nodir" / "r.json")  # fmt: skip
    assert_one_clear_line(result, 2, "output folder does not exist")
    assert not out.exists()


def test_sigterm_leaves_no_partial_file(tmp_path: Path) -> None:
    import signal
    import time

    src = write_clip(tmp_path / "long.mp4", frames=300, size=(640, 360))
    outbox = tmp_path / "out"
    outbox.mkdir()
    argv = ["redact", src, outbox / "x.mp4", "--detect", "none", "--region", "0,0,9,9"]
    process = subprocess.Popen(
        [sys.executable, "-m", "privmask.daemon.cli", *map(str, argv)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(outbox.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the temporary output exists
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert list(outbox.iterdir()) == []
