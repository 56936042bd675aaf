"""A clip's review page over plain HTTP, against the real server and a real analysis: the
contact sheet and its recorded views, the preview image and its checks, and the decision
form (exactly the reviewer's choice reaches the queue; bad, forged, cross-site or late
requests change nothing)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from privmask.daemon.review.queue import Decision, ReviewError
from privmask.rules.plan import Region

from clip_case import JOB, Case, OneClipQueue, decode_jpeg
from reviewing import IDLE_SECONDS, NAME, Server, csrf_token, log_in, serving

AREA = "10,300,200,300,200,350,10,350"


@pytest.fixture
def server(users_file: Path, queue: OneClipQueue) -> Iterator[Server]:
    with serving(users_file, queue) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=60) as http:
        assert log_in(http).status_code == 303
        yield http


def token(client: httpx.Client) -> str:
    return csrf_token(client.get(f"/clip/{JOB}").text)


def test_the_queue_links_each_clip_to_its_page(client: httpx.Client) -> None:
    assert f'href="/clip/{JOB}"' in client.get("/queue").text


def test_the_clip_page_lists_every_subject_masked_with_its_timeline(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    page = client.get(f"/clip/{JOB}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    boxes = re.findall(r'<input type="checkbox" name="keep" value="(\d+)"([^>]*)>', page.text)
    assert [(value, "checked" in rest) for value, rest in boxes] == [
        ("1", False), ("2", False), ("3", False)
    ]  # fmt: skip
    assert page.text.count('class="timeline"') == 3
    assert "0.00 s – 1.96 s" in page.text  # seen from the first frame to the last (25 fps)
    assert f'src="/clip/{JOB}/sheet.png"' in page.text
    assert "entrance.mp4" in page.text
    assert queue.views == []  # the page's text shows no face; its pictures are recorded


def test_the_sheet_is_served_uncached_and_every_view_is_recorded(
    client: httpx.Client, queue: OneClipQueue, case: Case
) -> None:
    for _ in range(2):
        sheet = client.get(f"/clip/{JOB}/sheet.png")
        assert sheet.status_code == 200
        assert sheet.headers["content-type"] == "image/png"
        assert sheet.headers["cache-control"] == "no-store"
        assert sheet.content == (case.folder / "sheet.png").read_bytes()
    assert queue.views == [(JOB, NAME, "sheet"), (JOB, NAME, "sheet")]


def test_the_preview_image_is_recorded_and_bad_choices_refused(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    image = client.get(f"/clip/{JOB}/preview.jpg", params={"frame": 20, "keep": [2, 3],
                                                          "area": AREA})  # fmt: skip
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.headers["cache-control"] == "no-store"
    assert decode_jpeg(image.content).shape == (360, 640, 3)
    assert queue.views == [(JOB, NAME, "preview frame 20 keeping 2, 3")]
    for params, words in (
        ({"frame": 99}, "frame must be 0..49, got 99"),
        ({"keep": 9}, "no subject 9 in this clip's analysis (its subjects: 1, 2, 3)"),
        ({"area": "1,2,3"}, "area 1: expected an even count of at least 4 numbers"),
    ):
        refused = client.get(f"/clip/{JOB}/preview.jpg", params=params)
        assert refused.status_code == 400, params
        assert refused.text == words
    assert len(queue.views) == 1  # nothing shown, nothing recorded


def test_a_preview_keeping_nobody_visible_is_no_view_of_unmasked_pictures(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    for params in ({"frame": 20}, {"frame": 20, "area": AREA}, {}):
        shown = client.get(f"/clip/{JOB}/preview.jpg", params=params)
        assert shown.status_code == 200, params
    assert queue.views == []  # every subject masked: nobody was shown
    kept = client.get(f"/clip/{JOB}/preview.jpg", params={"frame": 31, "keep": [3, 1]})
    assert kept.status_code == 200
    assert queue.views == [(JOB, NAME, "preview frame 31 keeping 1, 3")]


def test_a_view_that_cannot_be_recorded_is_not_shown(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    queue.view_refusal = "not recorded, so not done: the audit log is full"
    for path in ("/sheet.png", "/preview.jpg?frame=3&keep=1"):
        refused = client.get(f"/clip/{JOB}{path}")
        assert refused.status_code == 400, path
        assert refused.text == queue.view_refusal
        assert refused.headers["content-type"].startswith("text/plain")


def test_a_queue_that_cannot_give_the_clip_says_why(
    client: httpx.Client, case: Case, users_file: Path
) -> None:
    class Gone(OneClipQueue):
        def get(self, job: str) -> None:
            raise ReviewError(f"job {job}: no rule applies to it any more")

    with (
        serving(users_file, Gone(case.clip())) as running,
        httpx.Client(base_url=running.url, timeout=60) as other,
    ):
        assert log_in(other).status_code == 303
        for path in ("", "/sheet.png"):
            refused = other.get(f"/clip/{JOB}{path}")
            assert refused.status_code == 400, path
            assert f"job {JOB}: no rule applies to it any more" in refused.text


def test_the_preview_fragment_points_at_the_chosen_image(client: httpx.Client) -> None:
    fragment = client.get(f"/clip/{JOB}/preview", params={"frame": 20, "keep": [2],
                                                          "area": AREA})  # fmt: skip
    assert fragment.status_code == 200
    src = re.search(r'<img id="preview-image" src="([^"]+)"', fragment.text)
    assert src is not None
    image = client.get(src[1].replace("&amp;", "&"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    refused = client.get(f"/clip/{JOB}/preview", params={"keep": "x"})
    assert refused.status_code == 400
    assert "subject ids are whole numbers" in refused.text


def test_approving_hands_the_queue_exactly_the_choice(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    areas = [AREA, "300,10,400,10,350,80"]
    form = {"csrf_token": token(client), "keep": ["2"], "area": areas, "frame": "20",
            "reason": "  witness, not a suspect ", "decision": "approve"}  # fmt: skip
    done = client.post(f"/clip/{JOB}/decide", data=form)
    assert done.status_code == 303
    assert done.headers["location"] == f"/queue?approved={JOB}"
    size = (640, 360)
    assert queue.decisions == [
        (JOB, Decision(
            approve=True,
            keep_visible=frozenset({2}),
            regions=(
                Region(((10, 300), (200, 300), (200, 350), (10, 350)), relative=False,
                       name="area 1", reference_size=size),
                Region(((300, 10), (400, 10), (350, 80)), relative=False, name="area 2",
                       reference_size=size),
            ),
            reason="witness, not a suspect",
            reviewer=NAME,
        ))
    ]  # fmt: skip
    back = client.get(done.headers["location"]).text
    assert f"Clip {JOB} approved" in back
    assert "No clips waiting for review." in back


def test_rejecting_needs_a_reason(client: httpx.Client, queue: OneClipQueue) -> None:
    form = {"csrf_token": token(client), "reason": "   ", "decision": "reject"}
    refused = client.post(f"/clip/{JOB}/decide", data=form)
    assert refused.status_code == 400
    assert "A decision needs a reason." in refused.text
    assert queue.decisions == []
    done = client.post(f"/clip/{JOB}/decide", data={**form, "reason": "wrong camera"})
    assert done.headers["location"] == f"/queue?rejected={JOB}"
    [(_, decision)] = queue.decisions
    assert (decision.approve, decision.keep_visible, decision.regions) == (False, frozenset(), ())
    assert f"Clip {JOB} rejected" in client.get(done.headers["location"]).text


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"keep": ["9"]}, "no subject 9 in this clip&#39;s analysis"),
        ({"area": ["0,0,10,10,0,10,10,0"]}, "self-intersecting"),
        ({"area": ["700,10,800,10,800,50"]}, "lies outside the 640x360 picture"),
        ({"decision": "maybe"}, "Choose approve or reject."),
    ],
)
def test_a_bad_decision_is_refused_and_the_choice_kept_on_the_page(
    client: httpx.Client, queue: OneClipQueue, extra: dict[str, object], words: str
) -> None:
    form = {"csrf_token": token(client), "reason": "ok", "decision": "approve", "keep": ["3"],
            **extra}  # fmt: skip
    refused = client.post(f"/clip/{JOB}/decide", data=form)
    assert refused.status_code == 400
    assert words in refused.text
    assert queue.decisions == []


def test_the_queue_refusing_is_shown_as_its_one_line(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    queue.refusal = "job 17 was decided by bob a moment ago"
    form = {"csrf_token": token(client), "reason": "fine", "decision": "approve", "keep": ["1"]}
    refused = client.post(f"/clip/{JOB}/decide", data=form)
    assert refused.status_code == 400
    assert "job 17 was decided by bob a moment ago" in refused.text
    assert re.search(r'value="1"\s+checked', refused.text)  # the choice is still there
    assert queue.decisions == []


def test_forged_and_cross_site_decisions_are_refused(
    client: httpx.Client, queue: OneClipQueue
) -> None:
    form = {"csrf_token": token(client), "reason": "fine", "decision": "approve"}
    assert client.post(f"/clip/{JOB}/decide", data={**form, "csrf_token": "forged"}
                       ).status_code == 403  # fmt: skip
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(f"/clip/{JOB}/decide", data=form, headers=headers)
        assert response.status_code == 403, headers
    assert queue.decisions == []


def test_after_the_session_ends_nothing_is_shown_or_decided(
    client: httpx.Client, queue: OneClipQueue, server: Server
) -> None:
    form = {"csrf_token": token(client), "reason": "fine", "decision": "approve"}
    server.clock.advance(IDLE_SECONDS + 1)
    late = client.post(f"/clip/{JOB}/decide", data=form)
    assert late.status_code == 303
    assert late.headers["location"] == "/login?expired=1"
    for path in ("", "/sheet.png", "/preview.jpg", "/preview"):
        assert client.get(f"/clip/{JOB}{path}").status_code in (303, 401), path
    assert queue.decisions == [] and queue.views == []


def test_a_clip_not_waiting_is_not_found(client: httpx.Client, queue: OneClipQueue) -> None:
    for path in ("/clip/99", "/clip/99/sheet.png", "/clip/99/preview.jpg", "/clip/1x"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert "not waiting for review" in client.get("/clip/99").text
    assert queue.views == []
