"""Review from the inbox to the package, as a site runs it: a real daemon (`privmask run`)
with a `review: required` rule serves the review page; a clip of three known faces is
dropped in, analysed and held; a reviewer in Chromium keeps one face visible, draws an area,
approves; the package in the outbox shows exactly that face and masks the others and the
area."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, expect

from privmask.daemon.testing import is_masked, read_frames

from clip_browsing import browsing, draw_area, open_clip, shown_preview
from clip_case import truth_by_subject, write_scene_clip
from clips import Custodian
from harness import Daemon
from reviewing import NAME

pytestmark = pytest.mark.slow

RULES = """version: 1
rules:
  - name: reviewed
    targets: {face: {}}
    review: required
"""
AREA = (8, 8, 120, 90)  # the reviewer's area: the top left corner, no face in it
JOB = "000001"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def site(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian], users_file: Path
) -> Daemon:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(RULES)
    listen = f"127.0.0.1:{_free_port()}"
    return Daemon(
        tmp_path,
        models_dir,
        rules=str(rules),
        escrow={"recipients": [custodians["age"].recipient]},
        review={"listen": listen, "users": str(users_file)},
    )


def test_a_reviewer_keeps_one_face_visible_and_the_package_shows_it(
    site: Daemon, browser: Browser, tmp_path: Path
) -> None:
    made = tmp_path / "made"
    made.mkdir()
    scene = write_scene_clip(made / "entrance.mp4")
    before = list(read_frames(made / "entrance.mp4"))
    site.start()
    try:
        shutil.move(made / "entrance.mp4", site.inbox / "entrance.mp4")
        site.wait_for("job_held_for_review", job=1)
        assert site.packages() == []
        truth = truth_by_subject(scene, site.state / "review" / JOB)
        middle = next(t for t in scene.targets if t.id == "middle")
        kept = next(s for s, boxes in truth.items() if boxes == list(middle.boxes))
        url = f"http://{_listen(site)}"
        with browsing(browser, url) as page:
            open_clip(page, url, "entrance.mp4", JOB)
            frame, picture = shown_preview(page, r"frame=\d+$")
            assert is_masked(before[frame], picture, truth[kept][frame])  # type: ignore[arg-type]
            page.get_by_label(f"keep subject {kept} visible").check()
            _, picture = shown_preview(page, f"keep={kept}")
            assert not is_masked(before[frame], picture, truth[kept][frame])  # type: ignore[arg-type]
            x1, y1, x2, y2 = AREA
            draw_area(page, [(x1, y1), (x2, y1), (x2, y2), (x1, y2)])
            _, picture = shown_preview(page, "area=")
            assert is_masked(before[frame], picture, AREA)
            page.get_by_label("Reason").fill("the witness stays visible")
            page.get_by_role("button", name="Approve").click()
            expect(page).to_have_url(f"{url}/queue?approved={JOB}")
            expect(page.get_by_text("No clips waiting for review.")).to_be_visible()
            assert page.problems == []  # type: ignore[attr-defined]
        site.wait_for("job_done", job=1)
    finally:
        assert site.stop() == 0

    (package,) = site.packages()
    video, manifest = site.read(package)
    assert manifest["review"]["reviewer"] == NAME
    assert manifest["review"]["kept_visible"] == [kept]
    assert manifest["review"]["regions"] == 1
    (tmp_path / "out.mp4").write_bytes(video)
    after = list(read_frames(tmp_path / "out.mp4"))
    assert len(after) == len(before)
    for subject, boxes in truth.items():
        seen = [(i, b) for i, b in enumerate(boxes) if b is not None]
        masked = [i for i, box in seen if is_masked(before[i], after[i], box)]
        assert masked == ([] if subject == kept else [i for i, _ in seen]), subject
    assert all(is_masked(before[i], after[i], AREA) for i in range(0, len(after), 5))
    viewed = {e["details"]["what"] for e in site.audit() if e["action"] == "review_viewed"}
    # the audit says what was shown unmasked: the frame and who was kept in it; the first
    # preview, every subject masked, showed nobody and is not there
    assert viewed == {"sheet", f"preview frame {frame} keeping {kept}"}


def _listen(daemon: Daemon) -> str:
    return str(yaml.safe_load(daemon.config.read_text())["review"]["listen"])
