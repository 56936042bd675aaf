"""Working the clip page in a real browser at 1280x1000, as an investigator tried it on real
footage: the preview stays in view beside the subjects, a subject's row jumps the preview to
where it is seen, the frame steps one at a time, and what goes wrong says so on the page
(too few points for an area, a clip decided elsewhere, a view that could not be recorded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from privmask.daemon.pipeline import analysis
from privmask.daemon.pipeline.sheet import best_sighting
from privmask.daemon.review.queue import Decision

from clip_browsing import browsing, click_on_picture, open_clip, shown_preview
from clip_case import JOB, Case, OneClipQueue
from reviewing import Server, serving


@pytest.fixture
def server(users_file: Path, queue: OneClipQueue) -> Iterator[Server]:
    with serving(users_file, queue) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: Server, queue: OneClipQueue) -> Iterator[Page]:
    with browsing(browser, server.url) as tab:
        open_clip(tab, server.url, "entrance.mp4", JOB)
        shown_preview(tab, r"frame=\d+$")
        yield tab


def test_the_preview_is_beside_the_subjects_when_one_is_ticked(page: Page) -> None:
    expect(page.get_by_text("the frame with the most subjects")).to_be_visible()
    last = page.get_by_label("keep subject 3 visible")
    last.scroll_into_view_if_needed()
    last.check()
    shown_preview(page, "keep=3")
    image = page.locator("#preview-image").bounding_box()
    tick = last.bounding_box()
    assert image is not None and tick is not None
    assert image["y"] >= 0 and image["y"] + image["height"] <= 1000  # seen without scrolling
    assert image["x"] > tick["x"] + tick["width"]  # beside the table, not under it


def test_a_subject_row_jumps_to_its_best_sighting_and_frames_step(page: Page, case: Case) -> None:
    subjects = {s.subject_id: s for s in analysis.read(case.folder).subjects}
    best, _, _ = best_sighting(subjects[3])
    page.get_by_role("button", name="show subject 3").click()
    frame, _ = shown_preview(page, rf"frame={best}$")
    assert frame == best
    expect(page.locator("#frame")).to_have_value(str(best))
    page.get_by_role("button", name="Next frame").click()
    page.get_by_role("button", name="Next frame").click()
    shown_preview(page, rf"frame={best + 2}$")
    expect(page.locator("#frame-time")).to_contain_text(f"frame {best + 2}")
    page.get_by_role("button", name="Previous frame").click()
    shown_preview(page, rf"frame={best + 1}$")
    page.locator("tr[data-subject='3'] svg.timeline").click()  # its timeline does the same
    shown_preview(page, rf"frame={best}$")
    assert page.problems == []  # type: ignore[attr-defined]


def test_finishing_an_area_of_two_points_says_so_and_draws_nothing(page: Page) -> None:
    click_on_picture(page, [(100, 100), (200, 120)])
    page.get_by_role("button", name="Finish area").click()
    expect(page.get_by_text("An area needs at least 3 points.")).to_be_visible()
    expect(page.locator("input[name=area]")).to_have_count(0)
    click_on_picture(page, [(150, 200)])
    page.get_by_role("button", name="Finish area").click()
    expect(page.get_by_text("1 area drawn")).to_be_visible()


def test_a_clip_decided_elsewhere_says_so_instead_of_an_old_picture(
    page: Page, queue: OneClipQueue
) -> None:
    queue.decisions.append((JOB, Decision(False, frozenset(), (), "wrong camera", "bob")))
    page.get_by_label("keep subject 1 visible").check()
    expect(page.locator("#preview")).to_contain_text(f"Clip {JOB} is not waiting for review.")
    expect(page.locator("#preview-image")).to_have_count(0)


def test_a_preview_that_could_not_be_recorded_says_why(page: Page, queue: OneClipQueue) -> None:
    queue.view_refusal = "not recorded, so not done: the audit log is full"
    page.get_by_label("keep subject 2 visible").check()
    expect(page.locator("#preview")).to_contain_text(queue.view_refusal)
    expect(page.locator("#preview-image")).to_have_count(0)
