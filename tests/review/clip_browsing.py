"""The clip page as a reviewer works it in the browser: log in, open a clip from the queue,
read the preview the page shows, click points on it. Tests import these from here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, expect

from clip_case import WIDTH, Image, decode_jpeg
from reviewing import NAME, PASSWORD


@contextmanager
def browsing(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh tab on `url`; console errors and page errors (a CSP violation shows as one)
    are kept in `tab.problems`."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 1000})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.problems = problems  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()


def open_clip(page: Page, url: str, name: str, job: str) -> None:
    """Log in, then follow the queue's link to the clip `name`."""
    page.goto("/login")
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name=name).click()
    expect(page).to_have_url(f"{url}/clip/{job}")


def shown_preview(page: Page, wanted: str) -> tuple[int, Image]:
    """The preview the page shows once its address matches `wanted`: frame and picture."""
    image = page.locator("#preview-image")
    expect(image).to_have_attribute("src", re.compile(wanted))
    src = image.get_attribute("src") or ""
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("i => i.naturalWidth") == WIDTH  # loaded under the CSP
    found = re.search(r"frame=(\d+)", src)
    assert found is not None
    return int(found[1]), decode_jpeg(page.request.get(src).body())


def click_on_picture(page: Page, points: list[tuple[int, int]]) -> None:
    """Click `points` (pixels of the picture) on the preview, wherever it is drawn."""
    box = page.locator("#draw").bounding_box()
    assert box is not None
    scale = box["width"] / WIDTH
    for x, y in points:
        page.locator("#draw").click(position={"x": x * scale, "y": y * scale})


def draw_area(page: Page, corners: list[tuple[int, int]]) -> None:
    click_on_picture(page, corners)
    page.get_by_role("button", name="Finish area").click()
