"""`privmask rules check|explain` and `redact --rules`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from privmask.daemon.testing import FaceSpec, is_masked, read_frames, render_scene, write_scene

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def privmask(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", *map(str, args)],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def test_check_passes_valid_files_and_prints_warnings(tmp_path: Path) -> None:
    result = privmask("rules", "check", EXAMPLES / "night-shift.yaml", EXAMPLES / "investigation.yaml",
                      env={"PRIVMASK_CASE_PASSWORD": "x"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 3 rule(s) in 2 file(s), set ")
    assert "investigation.yaml:10:7: warning: rule case-2026-1142 matches nothing" in result.stderr


def test_check_fails_with_every_error_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - name: a\n    targets: {face: {paddding: 1}}\n  - {name: b, output: {password: {env: PM_NOT_SET_HERE}}}\n"
    )
    result = privmask("rules", "check", bad)
    assert result.returncode == 1
    assert f"{bad}:4:22: error: rules.0.targets.face.paddding: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    bad.write_text(
        "version: 1\nrules:\n  - {name: b, targets: {face: {}}, output: {password: {env: PM_NOT_SET_HERE}}}\n"
    )
    result = privmask("rules", "check", bad)
    assert result.returncode == 1
    assert f"{bad}:3:56: error: environment variable PM_NOT_SET_HERE is not set" in result.stderr


def test_explain_names_the_winner_and_the_losers() -> None:
    result = privmask(
        "rules", "explain", EXAMPLES, "--camera", "CAM-LOBBY", "--time", "2026-11-26T21:30"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[0].startswith("lobby-closed (") and "applies (specificity 2, priority 0)" in lines[0]
    )
    assert any(
        line.startswith("everyone-masked (") and "loses: less specific" in line for line in lines
    )
    assert "  person: solid box, padding 0.05, model default" in lines


def test_explain_with_no_rule_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "version: 1\nrules:\n  - {name: gate, match: {cameras: [GATE]}, targets: {face: {}}}\n"
    )
    result = privmask("rules", "explain", tmp_path, "--camera", "LOBBY")
    assert result.returncode == 1
    assert "privmask: error: no rule applies to this job" in result.stderr


def write_faces_clip(path: Path) -> object:
    faces = (
        FaceSpec("left", 64, (0.25, 0.5), (0.5, 0.0)),
        FaceSpec("right", 64, (0.75, 0.5), (-0.5, 0.0)),
    )
    scene, frames = render_scene(width=640, height=360, seconds=1.0, faces=faces, pillar=None)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return scene


def test_redact_with_rules_keeps_the_track_an_investigation_needs(
    tmp_path: Path, models_dir: Path
) -> None:
    clip = tmp_path / "cam.mp4"
    scene = write_faces_clip(clip)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n  - {name: all-faces, targets: {face: {}}}\n"
    )
    first = privmask("redact", clip, tmp_path / "all.mp4", "--rules", rules, "--report", tmp_path / "all.json",
                     "--models", models_dir)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "rules: all-faces (" in first.stderr
    tracks = json.loads((tmp_path / "all.json").read_text())["tracks"]
    assert len(tracks) == 2
    left = min(tracks, key=lambda t: t["boxes"][0][1])["id"]

    (rules / "case.yaml").write_text(
        "version: 1\nrules:\n  - name: case\n    match: {cameras: [CAM-7]}\n    targets: {face: {}}\n"
        f"    selection: {{mode: except, tracks: [{left}]}}\n"
    )
    second = privmask("redact", clip, tmp_path / "case.mp4", "--rules", rules, "--camera", "CAM-7",
                      "--report", tmp_path / "case.json", "--models", models_dir)  # fmt: skip
    assert second.returncode == 0, second.stderr
    report = json.loads((tmp_path / "case.json").read_text())
    assert {t["id"]: t["masked"] for t in report["tracks"]} == {
        t["id"]: t["id"] != left for t in tracks
    }
    before, after = list(read_frames(clip)), list(read_frames(tmp_path / "case.mp4"))
    for index, target_id, box in scene.visible("face"):
        assert is_masked(before[index], after[index], box) == (target_id == "right"), (
            index,
            target_id,
        )


def test_rules_and_masking_flags_do_not_mix(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("version: 1\nrules:\n  - {name: a, targets: {face: {}}}\n")
    result = privmask(
        "redact",
        tmp_path / "in.mp4",
        tmp_path / "o.mp4",
        "--rules",
        tmp_path / "r.yaml",
        "--style",
        "solid",
    )
    assert result.returncode == 2
    assert "with --rules, the rules say what to mask; drop --style" in result.stderr


@pytest.mark.parametrize("what", ["missing", "invalid"])
def test_redact_with_bad_rules_fails_before_any_work(tmp_path: Path, what: str) -> None:
    rules = tmp_path / "r.yaml"
    if what == "invalid":
        rules.write_text("version: 1\nrules:\n  - {name: a, targets: {face: {min_score: 2}}}\n")
    result = privmask("redact", tmp_path / "in.mp4", tmp_path / "o.mp4", "--rules", rules)
    assert result.returncode == 1
    assert f"{rules}:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.mp4").exists()


AGE = "age128ae0y6dhx0gahr6xlc46f5fjqzzx6v0z3qs5gzq30jlk9wa5a0q6zskaz"


def test_check_accepts_the_custody_keys(tmp_path: Path) -> None:
    custodians = tmp_path / "custodians.txt"
    custodians.write_text(f"# the court's key\n{AGE}\n")
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nrules:\n  - name: a\n    targets: {face: {}}\n"
        f"    escrow: [{AGE}, {custodians}]\n    source: delete\n    retention_days: 30\n"
    )
    check = privmask("rules", "check", site)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("ok: 1 rule(s) in 1 file(s), set ")


def test_check_and_the_daemon_refuse_an_empty_escrow_list_alike(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    site = rules / "site.yaml"
    site.write_text("version: 1\nrules:\n  - name: a\n    targets: {face: {}}\n    escrow: []\n")
    expected = (
        f"{site}:5:5: error: rules.0.escrow: an empty list names no custodian; omit the key to "
        "use the site's recipients"
    )
    check = privmask("rules", "check", rules)
    assert check.returncode == 1
    assert expected in check.stderr.splitlines()
    folders = {name: tmp_path / name for name in ("inbox", "outbox")}
    for folder in folders.values():
        folder.mkdir()
    run = privmask("run", "--rules", rules, "--inbox", folders["inbox"], "--outbox",
                   folders["outbox"], "--state", tmp_path / "state", "--quarantine",
                   tmp_path / "quarantine")  # fmt: skip
    assert run.returncode == 1
    assert expected in run.stderr.splitlines() and "Traceback" not in run.stderr


def test_redact_with_rules_reads_time_and_camera_from_a_vendor_name(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n"
        "  - {name: default, targets: {face: {}}}\n"
        "  - name: ch01-mornings\n"
        "    match: {cameras: [ch01], times: [{from: '09:00', to: '10:00'}]}\n"
        "    regions: [{points: [[0, 0], [0.5, 0.5]]}]\n"
        "    targets: {}\n"
    )
    clip = tmp_path / "ch01_20240315093000.mp4"  # a Hikvision export, recorded 09:30
    write_scene(clip, width=160, height=96, seconds=0.2, faces=())
    done = privmask("redact", clip, tmp_path / "out.mp4", "--rules", rules, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "rules: ch01-mornings" in done.stderr
