"""Review in the daemon, as a site runs it: a rule says `review: required`, clips are
analysed and wait (no package) across a restart, `privmask review` decides from a terminal
while the daemon runs, and `privmask run` serves the review page.

One daemon run covers the whole way (the suite is near its time budget): a synthetic scene
with two faces of known truth, approved keeping one face visible, and a plain clip,
rejected. The rule escrows originals and deletes sources, so the rejected clip also shows
that a source is never deleted without a package.
"""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from privmask.daemon.custody.audit import actor_name
from privmask.daemon.journal import JobState, Journal
from privmask.daemon.testing import FaceSpec, Scene, is_masked, read_frames, write_scene

from clips import Custodian, write_clip
from harness import Daemon, privmask, run_cli

pytestmark = pytest.mark.slow

FACES = (
    FaceSpec("left", 56, (0.25, 0.45), (1.0, 0.0)),
    FaceSpec("right", 56, (0.75, 0.55), (-1.0, 0.0)),
)
CORNER = (0, 0, 64, 48)  # the reviewer's area, in pixels of the 640x360 frame
RULES = """version: 1
rules:
  - name: reviewed
    targets: {face: {}}
    review: required
    source: delete
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _review(daemon: Daemon, *args: object) -> subprocess.CompletedProcess[str]:
    return privmask("review", *args, "--config", daemon.config, timeout=120)


def _state(daemon: Daemon, job: int) -> JobState:
    with Journal(daemon.state / "journal.sqlite") as journal:
        return journal.get(job).state


def _subject_of(scene: Scene, face: str, data: dict[str, Any]) -> int:
    """The subject whose face track lies on the ground truth of `face` in most frames."""
    target = next(t for t in scene.targets if t.id == face)
    for track in data["tracks"]:
        on = [
            _overlaps(box, seen)
            for frame, box in zip(track["frames"], track["boxes"], strict=True)
            if (seen := target.boxes[frame]) is not None
        ]
        if len(on) >= 5 and sum(on) > len(on) // 2:
            return int(track["subject"])
    raise AssertionError(f"no subject on {face}: {data['subjects']}")


def _overlaps(box: list[float], truth: tuple[int, int, int, int]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]


@pytest.fixture
def site(tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]) -> Daemon:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(RULES)
    port = _free_port()
    return Daemon(
        tmp_path,
        models_dir,
        rules=str(rules),
        escrow={"recipients": [custodians["age"].recipient]},
        review={"listen": f"127.0.0.1:{port}"},
    )


def test_a_clip_waits_for_review_across_a_restart_then_is_packaged_as_decided(
    site: Daemon, tmp_path: Path
) -> None:
    made = tmp_path / "made"
    made.mkdir()
    scene = write_scene(made / "scene.mp4", width=640, height=360, seconds=2.0, faces=FACES,
                        pillar=None)  # fmt: skip
    before = list(read_frames(made / "scene.mp4"))
    write_clip(made / "plain.mp4", frames=20)
    site.start()
    try:
        shutil.move(made / "scene.mp4", site.inbox / "scene.mp4")
        site.wait_for("job_held_for_review")
        shutil.move(made / "plain.mp4", site.inbox / "plain.mp4")
        site.wait_for("job_held_for_review", count=2)
        # analysed and waiting: nothing packaged, the crops private, the original escrowed
        assert site.packages() == []
        folder = site.state / "review" / "000001"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
        assert (site.escrow / "000001.age").exists()
        # `privmask run` serves the review page
        listen = _listen(site)
        assert httpx.get(f"http://{listen}/login").status_code == 200
    finally:
        assert site.stop() == 0
    with pytest.raises(httpx.ConnectError):  # stopped with the daemon
        httpx.get(f"http://{listen}/login")

    listed = _review(site, "list")  # no daemon running: the journal is enough
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[1].split()[0] == "000001" and lines[1].endswith("scene.mp4")
    assert lines[2].split()[0] == "000002" and lines[2].endswith("plain.mp4")

    site.start()  # after a restart, both still wait; nothing is analysed again
    try:
        assert _state(site, 1) is JobState.REVIEW and _state(site, 2) is JobState.REVIEW
        data = json.loads((folder / "analysis.json").read_text())
        kept, masked = _subject_of(scene, "left", data), _subject_of(scene, "right", data)
        assert kept != masked
        _refused_decisions_change_nothing(site, kept)

        shown = _review(site, "show", "1")
        assert shown.returncode == 0, shown.stderr
        assert str(folder / "sheet.html") in shown.stdout
        assert f"{len(data['subjects'])} subjects" in shown.stdout

        region = ",".join(map(str, CORNER))
        approved = _review(site, "decide", "1", "--keep-visible", kept, "--region", region,
                           "--reason", "the victim stays visible", "--approve")  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        site.wait_for("job_done", job=1)
        rejected = _review(site, "decide", "000002", "--reason", "no one in it", "--reject")
        assert rejected.returncode == 0, rejected.stderr
        assert not [e for e in site.events if e.get("event") == "job_held_for_review"]
    finally:
        assert site.stop() == 0

    (package,) = site.packages()
    video, manifest = site.read(package)
    assert manifest["review"] == {
        "reviewer": actor_name(),
        "time": manifest["review"]["time"],
        "reason": "the victim stays visible",
        "kept_visible": [kept],
        "regions": 1,
    }
    (tmp_path / "out.mp4").write_bytes(video)
    after = list(read_frames(tmp_path / "out.mp4"))
    _judge(scene, before, after)
    assert not folder.exists()  # the unmasked crops went with the package
    assert not (site.inbox / "scene.mp4").exists()  # packaged and escrowed: `source: delete`

    assert _state(site, 2) is JobState.REJECTED
    assert (site.inbox / "plain.mp4").exists()  # rejected: no package, the source kept
    assert not (site.state / "review" / "000002").exists()

    decided = [e for e in site.audit() if e["action"] == "review_decided"]
    assert [(e["job"], e["actor"], e["reason"], e["details"]["decision"]) for e in decided] == [
        ("000001", actor_name(), "the victim stays visible", "approve"),
        ("000002", actor_name(), "no one in it", "reject"),
    ]
    assert decided[0]["details"]["kept_visible"] == [kept]
    viewed = [e for e in site.audit() if e["action"] == "review_viewed"]
    assert [(e["job"], e["details"]["what"]) for e in viewed] == [("000001", "sheet")]
    with Journal(site.state / "journal.sqlite") as journal:
        details = [d for _, _, d in journal.events(1)]
    assert f"approved by {actor_name()}: the victim stays visible" in " ".join(details)


def _listen(daemon: Daemon) -> str:
    return str(yaml.safe_load(daemon.config.read_text())["review"]["listen"])


def _refused_decisions_change_nothing(site: Daemon, kept: int) -> None:
    """Each bad request: one line, exit code 2, the job still waiting, nothing audited."""
    analysis = site.state / "review" / "000002" / "analysis.json"
    saved = analysis.read_bytes()
    shutil.copy(site.state / "review" / "000001" / "analysis.json", analysis)
    cases = [
        (("1", "--keep-visible", "99"), "no subject 99"),
        (("7",), "job 7 is not waiting for review"),
        (("2",), "another clip"),
        (("1", "--keep-visible", str(kept), "--reason", " "), "a reason is required"),
    ]
    for args, message in cases:
        reason = () if "--reason" in args else ("--reason", "why not")
        done = _review(site, "decide", *args, *reason, "--approve")
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    analysis.write_bytes(saved)
    missing = _review(site, "decide", "1", "--approve")  # no --reason at all
    assert missing.returncode == 2 and "--reason" in missing.stderr
    assert _state(site, 1) is JobState.REVIEW and _state(site, 2) is JobState.REVIEW
    assert not [e for e in site.audit() if e["action"] == "review_decided"]


def _judge(scene: Scene, before: list[Any], after: list[Any]) -> None:
    """The kept face as it was, the other face masked wherever it shows, the corner masked."""
    assert len(after) == len(before) == scene.frame_count
    faces = {t.id: t for t in scene.targets}
    kept = [(i, b) for i, b in enumerate(faces["left"].boxes) if b is not None]
    other = [(i, b) for i, b in enumerate(faces["right"].boxes) if b is not None]
    assert len(kept) > 30 and len(other) > 30
    assert [i for i, box in kept if is_masked(before[i], after[i], box)] == []
    assert [i for i, box in other if not is_masked(before[i], after[i], box)] == []
    assert all(is_masked(before[i], after[i], CORNER) for i in range(0, len(after), 10))


def test_a_review_port_in_use_stops_the_start_with_one_line(
    tmp_path: Path, models_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = Daemon(tmp_path, models_dir, review={"listen": f"127.0.0.1:{port}"})
        done = run_cli(site.config, "run")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"privmask: error: review.listen: cannot listen on 127.0.0.1:{port}: the port is in use"
    )
    assert not (site.state / "journal.sqlite").exists()  # refused before any work
