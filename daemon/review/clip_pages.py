"""A clip's review page: its contact sheet, a timeline per subject, the preview frame masked
as the package will be with the current choice, the areas drawn on it, and the decision.

The contact sheet and the preview show unmasked people: every response that carries one is
recorded through `ReviewQueue.viewed` before it is sent (and is never cached: `Guard`). The
choice is checked by `preview.ClipPreview`, the decision by the queue; either refusal is
one line on the page (status 400) and nothing changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from privmask.daemon.pipeline.analysis import ANALYSIS_FILE
from privmask.daemon.pipeline.sheet import best_sighting
from privmask.daemon.pipeline.subjects import Subject, likely_part_of
from privmask.daemon.review.preview import ClipPreview, PreviewError
from privmask.daemon.review.queue import ClipUnderReview, Decision, ReviewError, ReviewQueue
from privmask.daemon.review.sessions import Session

MAX_REASON = 500  # characters: a reason is one line
MAX_JOB_DIGITS = 19  # the journal's ids fit SQLite's integer
PREVIEWS_KEPT = 4  # clips whose analysis is kept read, for the next toggle

_log = structlog.get_logger("privmask.review")
PostHandler = Callable[[Request, FormData, Session | None], Awaitable[Response]]


class Site(Protocol):
    """What the clip pages need of the review page (`web._Page`)."""

    templates: Jinja2Templates
    review_queue: ReviewQueue

    def session(self, request: Request) -> Session | None: ...

    def signed_out(self, request: Request) -> Response: ...


@dataclass(frozen=True)
class _Open:
    """A signed-in request for a clip that is waiting."""

    session: Session
    clip: ClipUnderReview
    preview: ClipPreview


class ClipPages:
    def __init__(self, site: Site) -> None:
        self._site = site
        # by job: (the clip, when its analysis was written) and its preview
        self._previews: OrderedDict[str, tuple[tuple[ClipUnderReview, int | None], ClipPreview]]
        self._previews = OrderedDict()
        self._lock = threading.Lock()  # previews are made in the server's threads

    def routes(self, post: Callable[[PostHandler], Callable[[Request], Awaitable[Response]]]
               ) -> list[Route]:  # fmt: skip
        """The routes; `post` puts a form handler behind the CSRF check."""
        return [
            Route("/clip/{job}", self.page),
            Route("/clip/{job}/sheet.png", self.sheet),
            Route("/clip/{job}/preview", self.preview_fragment),
            Route("/clip/{job}/preview.jpg", self.preview_image),
            Route("/clip/{job}/decide", post(self.decide), methods=["POST"]),
        ]

    async def page(self, request: Request) -> Response:
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        query = request.query_params
        frame = query.get("frame")
        try:
            frame_index = opened.preview.choice(frame, [], []).frame
        except PreviewError:
            frame_index = opened.preview.busiest_frame()
        return self._render(request, opened, frame_index, [], [], "", None, status=200)

    async def sheet(self, request: Request) -> Response:
        opened = await self._open(request, plain=True)
        if isinstance(opened, Response):
            return opened
        path = opened.clip.analysis / "sheet.png"
        try:
            data = await run_in_threadpool(path.read_bytes)
        except OSError:
            return PlainTextResponse("this clip's analysis has no contact sheet", status_code=404)
        refused = await self._viewed(opened, "sheet")
        return refused or Response(data, media_type="image/png")

    async def preview_fragment(self, request: Request) -> Response:
        opened = await self._open(request, plain=True)
        if isinstance(opened, Response):
            return opened
        query = request.query_params
        try:
            opened.preview.choice(query.get("frame"), query.getlist("keep"), query.getlist("area"))
        except PreviewError as exc:
            context = {"preview_error": str(exc)}
            return self._site.templates.TemplateResponse(
                request, "clip_preview.html", context, status_code=400
            )
        job = opened.clip.clip.job
        context = {"src": _preview_src(job, query.multi_items()), "size": opened.preview.size}
        return self._site.templates.TemplateResponse(request, "clip_preview.html", context)

    async def preview_image(self, request: Request) -> Response:
        opened = await self._open(request, plain=True)
        if isinstance(opened, Response):
            return opened
        query = request.query_params
        preview = opened.preview
        try:
            choice = preview.choice(
                query.get("frame"), query.getlist("keep"), query.getlist("area")
            )
            data = await run_in_threadpool(preview.jpeg, choice)
        except PreviewError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        refused = None
        if choice.keep:  # on record before a pixel is sent; with none kept, all are masked
            kept = ", ".join(map(str, sorted(choice.keep)))
            refused = await self._viewed(opened, f"preview frame {choice.frame} keeping {kept}")
        return refused or Response(data, media_type="image/jpeg")

    async def decide(self, request: Request, form: FormData, session: Session | None) -> Response:
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        keep, areas = _texts(form, "keep"), _texts(form, "area")
        reason = " ".join((_text(form, "reason") or "").split())
        verdict = _text(form, "decision")
        preview = opened.preview

        def refused(message: str) -> Response:
            try:
                frame = preview.choice(_text(form, "frame"), [], []).frame
            except PreviewError:
                frame = preview.busiest_frame()
            return self._render(request, opened, frame, keep, areas, reason, message, status=400)

        try:
            choice = preview.choice(None, keep, areas)
        except PreviewError as exc:
            return refused(str(exc))
        if verdict not in ("approve", "reject"):
            return refused("Choose approve or reject.")
        if not reason:
            return refused("A decision needs a reason.")
        if len(reason) > MAX_REASON:
            return refused(f"The reason is too long (at most {MAX_REASON} characters).")
        job, user = opened.clip.clip.job, opened.session.user
        decision = Decision(verdict == "approve", choice.keep, choice.regions, reason, user)
        try:
            await run_in_threadpool(self._site.review_queue.decide, job, decision)
        except ReviewError as exc:
            return refused(_one_line(str(exc)))
        with self._lock:
            self._previews.pop(job, None)
        _log.info("review.decided", job=job, user=user, approve=decision.approve,
                  kept=len(choice.keep), areas=len(choice.regions))  # fmt: skip
        outcome = "approved" if decision.approve else "rejected"
        return RedirectResponse(f"/queue?{outcome}={job}", status_code=303)

    async def _open(self, request: Request, *, plain: bool = False) -> _Open | Response:
        """The session and the waiting clip of the request, or the response that says why
        not (to the login page; not found)."""
        session = self._site.session(request)
        if session is None:
            return self._site.signed_out(request)
        job = request.path_params["job"]
        clip = None
        if job.isdigit() and len(job) <= MAX_JOB_DIGITS:
            try:
                clip = await run_in_threadpool(self._site.review_queue.get, job)
            except ReviewError as exc:
                return self._message(request, session, _one_line(str(exc)), status=400,
                                     plain=plain)  # fmt: skip
        if clip is None:
            return self._not_found(request, job, session, plain)
        try:
            preview = await run_in_threadpool(self._preview, clip)
        except PreviewError as exc:
            _log.error("review.clip_unreadable", job=job, error=str(exc))
            message = f"This clip cannot be shown: {exc}"
            return self._message(request, session, message, status=500, plain=plain)
        return _Open(session, clip, preview)

    def _preview(self, clip: ClipUnderReview) -> ClipPreview:
        """The clip's preview, read again when the clip or its analysis has changed."""
        job = clip.clip.job
        try:
            written = (clip.analysis / ANALYSIS_FILE).stat().st_mtime_ns
        except OSError:
            written = None  # ClipPreview says what is wrong
        with self._lock:
            kept = self._previews.get(job)
            if kept is not None and kept[0] == (clip, written):
                self._previews.move_to_end(job)
                return kept[1]
        preview = ClipPreview(clip)
        with self._lock:
            self._previews[job] = ((clip, written), preview)
            while len(self._previews) > PREVIEWS_KEPT:
                self._previews.popitem(last=False)
        return preview

    async def _viewed(self, opened: _Open, what: str) -> Response | None:
        """Record the view; a refusal (the record could not be made) instead of the
        pictures, which are then not shown."""
        job, user = opened.clip.clip.job, opened.session.user
        try:
            await run_in_threadpool(self._site.review_queue.viewed, job, user, what)
        except ReviewError as exc:
            _log.error("review.view_not_recorded", job=job, user=user, what=what, error=str(exc))
            return PlainTextResponse(_one_line(str(exc)), status_code=400)
        _log.info("review.viewed", job=job, user=user, what=what)
        return None

    def _not_found(self, request: Request, job: str, session: Session, plain: bool) -> Response:
        shown = job if job.isdigit() and len(job) <= MAX_JOB_DIGITS else "?"
        message = f"Clip {shown} is not waiting for review."
        return self._message(request, session, message, status=404, plain=plain)

    def _message(
        self, request: Request, session: Session, message: str, *, status: int, plain: bool
    ) -> Response:
        if request.headers.get("hx-request"):  # the preview's place says it, escaped
            context = {"preview_error": message}
            return self._site.templates.TemplateResponse(
                request, "clip_preview.html", context, status_code=status
            )
        if plain:
            return PlainTextResponse(message, status_code=status)
        context = {"user": session.user, "csrf": session.csrf, "message": message}
        return self._site.templates.TemplateResponse(
            request, "clip_gone.html", context, status_code=status
        )

    def _render(
        self,
        request: Request,
        opened: _Open,
        frame: int,
        keep: Sequence[str],
        areas: Sequence[str],
        reason: str,
        message: str | None,
        *,
        status: int,
    ) -> Response:
        preview, job = opened.preview, opened.clip.clip.job
        query = [("frame", str(frame)), *(("keep", k) for k in keep),
                 *(("area", a) for a in areas)]  # fmt: skip
        context: dict[str, Any] = {
            "user": opened.session.user,
            "csrf": opened.session.csrf,
            "clip": opened.clip.clip,
            "job": job,
            "subjects": _subject_rows(preview, set(keep)),
            "frames": preview.frames,
            "frame": frame,
            "busiest": preview.busiest_frame(),
            "fps": preview.fps,
            "size": preview.size,
            "src": _preview_src(job, query),
            "areas": areas,
            "reason": reason,
            "message": message,
        }
        return self._site.templates.TemplateResponse(
            request, "clip.html", context, status_code=status
        )


def _subject_rows(preview: ClipPreview, keep: set[str]) -> list[dict[str, Any]]:
    """Per subject: id, classes, time span, the runs of frames it was seen in, the frame of
    its best sighting (its contact sheet crop's), and the subjects it is probably part of."""
    every = int(preview.analysis.detection.get("detect_every", 1) or 1)
    notes = subject_notes(preview.subjects)
    rows = []
    for subject in preview.subjects:
        seen = sorted({f for t in subject.tracks for f in t.frames})
        rows.append({
            "best": best_sighting(subject)[0],
            "note": notes.get(subject.subject_id),
            "id": subject.subject_id,
            "classes": ", ".join(subject.classes),
            "first": subject.first_frame,
            "last": subject.last_frame,
            "start_s": subject.first_frame / preview.fps,
            "end_s": subject.last_frame / preview.fps,
            "runs": _runs(seen, every),
            "kept": str(subject.subject_id) in keep,
        })  # fmt: skip
    return rows


def subject_notes(subjects: Sequence[Subject]) -> dict[int, str]:
    """What the page says beside a subject that is probably part of another (a face seen
    once or twice on one person's head, kept apart on purpose), and beside that other."""
    part_of = likely_part_of(subjects)
    notes = {glimpse: f"probably part of #{other}" for glimpse, other in part_of.items()}
    for other in sorted(set(part_of.values())):
        parts = ", ".join(f"#{g}" for g in sorted(g for g, o in part_of.items() if o == other))
        notes[other] = f"see also {parts}"
    return notes


def _runs(frames: Sequence[int], gap: int) -> list[tuple[int, int]]:
    """Sighting frames as (first, last) runs: detection runs on every `gap`-th frame, so
    sightings that far apart are one stretch of being seen."""
    runs: list[tuple[int, int]] = []
    for frame in frames:
        if runs and frame - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], frame)
        else:
            runs.append((frame, frame))
    return runs


def _preview_src(job: str, query: Sequence[tuple[str, str]]) -> str:
    wanted = [(k, v) for k, v in query if k in ("frame", "keep", "area")]
    return f"/clip/{job}/preview.jpg?{urlencode(wanted)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None
