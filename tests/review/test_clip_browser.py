"""A clip reviewed in a real browser (Debian's Chromium through Playwright): the page's own
script and htmx under its CSP, a subject toggled, an area drawn by clicking on the preview,
and the decision that reaches the queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from privmask.daemon.testing import is_masked

from clip_browsing import browsing, click_on_picture, open_clip, shown_preview
from clip_case import JOB, Case, OneClipQueue
from reviewing import IDLE_SECONDS, NAME, Server, serving


@pytest.fixture
def server(users_file: Path, queue: OneClipQueue) -> Iterator[Server]:
    with serving(users_file, queue) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with browsing(browser, server.url) as tab:
        yield tab


def test_keep_one_subject_draw_an_area_and_approve(
    page: Page, server: Server, queue: OneClipQueue, case: Case
) -> None:
    open_clip(page, server.url, "entrance.mp4", JOB)
    expect(page.get_by_role("checkbox")).to_have_count(3)
    sheet = page.locator("img.sheet")
    expect(sheet).to_have_js_property("complete", True)
    assert sheet.evaluate("i => i.naturalWidth") > 0
    frame, picture = shown_preview(page, r"frame=\d+$")
    source = case.frames[frame]
    boxes = {s: case.boxes[s][frame] for s in case.boxes}
    assert all(is_masked(source, picture, box) for box in boxes.values())  # type: ignore[arg-type]

    page.get_by_label("keep subject 2 visible").check()
    _, picture = shown_preview(page, "keep=2")
    assert not is_masked(source, picture, boxes[2])  # type: ignore[arg-type]
    assert is_masked(source, picture, boxes[1]) and is_masked(source, picture, boxes[3])  # type: ignore[arg-type]

    x1, y1, x2, y2 = boxes[2]  # type: ignore[misc]
    corners = [(x1 - 6, y1 - 6), (x2 + 6, y1 - 6), (x2 + 6, y2 + 6), (x1 - 6, y2 + 6)]
    click_on_picture(page, corners[:2])
    page.get_by_role("button", name="Undo").click()  # one point too many
    click_on_picture(page, corners[1:])
    page.get_by_role("button", name="Finish area").click()
    expect(page.get_by_text("1 area drawn")).to_be_visible()
    _, picture = shown_preview(page, "area=")
    assert is_masked(source, picture, boxes[2])  # type: ignore[arg-type]

    page.get_by_role("button", name="Reject").click()  # no reason: the browser asks for one
    expect(page).to_have_url(f"{server.url}/clip/{JOB}")
    assert queue.decisions == []
    page.get_by_label("Reason").fill("witness, not a suspect")
    page.get_by_role("button", name="Approve").click()
    expect(page).to_have_url(f"{server.url}/queue?approved={JOB}")
    expect(page.get_by_role("status")).to_have_text(
        f"Clip {JOB} approved; it goes on to its package."
    )

    [(job, decision)] = queue.decisions
    assert (job, decision.approve, decision.keep_visible) == (JOB, True, frozenset({2}))
    assert (decision.reason, decision.reviewer) == ("witness, not a suspect", NAME)
    [area] = decision.regions
    assert area.reference_size == (640, 360) and not area.relative
    assert len(area.points) == 4
    for (x, y), (cx, cy) in zip(area.points, corners, strict=True):
        assert abs(x - cx) <= 2 and abs(y - cy) <= 2
    assert (JOB, NAME, "sheet") in queue.views
    assert (JOB, NAME, f"preview frame {frame} keeping 2") in queue.views
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_toggle_after_the_session_ended_goes_to_login(
    page: Page, server: Server, queue: OneClipQueue
) -> None:
    open_clip(page, server.url, "entrance.mp4", JOB)
    shown_preview(page, r"frame=\d+$")
    seen = len(queue.views)
    server.clock.advance(IDLE_SECONDS + 1)
    page.get_by_label("keep subject 1 visible").click()
    expect(page).to_have_url(f"{server.url}/login?expired=1")
    assert len(queue.views) == seen
