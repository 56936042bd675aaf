"""The contact sheet of an analysis: one crop per subject, with its id, time span and a
small timeline, as a PNG and as a self-contained HTML page (no external URL, no script).

Each subject is shown by its best sighting: its body's highest score where it has a body
(head to feet), else its face's, else its best box of any class. The crops are unmasked:
the sheet lives in the analysis folder, which only its owner may read.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.detections import TargetClass
from privmask.adapters.video import VideoInfo, decode_frames
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.subjects import Subject
from privmask.daemon.pipeline.tracks import Box

TILE = 160  # pixels: the side of a crop's square
CAPTION = 44  # pixels under each crop: id, span, timeline
COLUMNS = 6
MARGIN = {TargetClass.FACE: 0.3, TargetClass.PERSON: 0.05, TargetClass.PLATE: 0.3}
PREFERRED = (TargetClass.PERSON, TargetClass.FACE)  # what a subject's crop shows first
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Tile:
    subject: Subject
    crop: Image  # BGR, as the viewer sees the picture (turned)
    spans: list[tuple[int, int]]  # first and last sighting of each track


def tiles(source: Path, info: VideoInfo, subjects: tuple[Subject, ...]) -> list[Tile]:
    """One crop per subject, cut from its best frame (one decoding pass)."""
    best = {s.subject_id: best_sighting(s) for s in subjects}
    wanted: dict[int, list[int]] = {}
    for subject_id, (frame, _, _) in best.items():
        wanted.setdefault(frame, []).append(subject_id)
    geometry = FrameGeometry.of(info)
    crops: dict[int, Image] = {}
    for index, picture in _frames(source, set(wanted)):
        own = geometry.resized(picture.shape[1], picture.shape[0])
        sx, sy = geometry.scale_to(own)
        for subject_id in wanted[index]:
            _, box, target = best[subject_id]
            crop = _crop(picture, box * np.array([sx, sy, sx, sy], np.float32), target)
            crops[subject_id] = np.ascontiguousarray(np.rot90(crop, geometry.turns))
    blank = np.zeros((TILE, TILE, 3), np.uint8)
    return [
        Tile(s, crops.get(s.subject_id, blank), [(t.frames[0], t.frames[-1]) for t in s.tracks])
        for s in subjects
    ]


def best_sighting(subject: Subject) -> tuple[int, Box, TargetClass]:
    """The best-scored box of its body where it has one (clothes tell people apart where a
    face seen from above, or from behind, does not), else of its face, else of any class."""
    by_class = {c: [t for t in subject.tracks if t.target is c] for c in PREFERRED}
    pool = next((found for found in by_class.values() if found), list(subject.tracks))
    score, frame, box, target = max(
        ((s, f, b, t.target) for t in pool for s, f, b in zip(t.scores, t.frames, t.boxes)),
        key=lambda row: row[0],
    )
    return frame, box, target


def _frames(source: Path, wanted: set[int]) -> Iterator[tuple[int, Image]]:
    last = max(wanted, default=-1)
    for index, frame in enumerate(decode_frames(source, writable=False)):
        if index in wanted:
            yield index, frame.to_ndarray(format="bgr24")
        if index >= last:
            return


def _crop(picture: Image, box: Box, target: TargetClass) -> Image:
    height, width = picture.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * MARGIN[target], (y2 - y1) * MARGIN[target]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        return np.zeros((TILE, TILE, 3), np.uint8)
    return picture[top:bottom, left:right]


def _fitted(crop: Image) -> Image:
    """The crop scaled to fit a TILE square, centred on black."""
    h, w = crop.shape[:2]
    scale = TILE / max(h, w, 1)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(crop, size, interpolation=shrink)
    square = np.zeros((TILE, TILE, 3), np.uint8)
    top, left = (TILE - size[1]) // 2, (TILE - size[0]) // 2
    square[top : top + size[1], left : left + size[0]] = resized
    return square


def span_text(tile: Tile, fps: float) -> str:
    first, last = tile.subject.first_frame, tile.subject.last_frame
    return f"{first / fps:.1f}-{last / fps:.1f} s"


def sheet_png(found: list[Tile], frames: int, fps: float) -> bytes:
    """The sheet as a PNG: a grid of crops, each with its id, time span and timeline."""
    rows = max(1, -(-len(found) // COLUMNS))
    cell_h = TILE + CAPTION
    sheet = np.full((rows * cell_h, COLUMNS * TILE, 3), 32, np.uint8)
    for n, tile in enumerate(found):
        x, y = (n % COLUMNS) * TILE, (n // COLUMNS) * cell_h
        sheet[y : y + TILE, x : x + TILE] = _fitted(tile.crop)
        label = f"#{tile.subject.subject_id} {'+'.join(tile.subject.classes)}"
        _text(sheet, label, x + 4, y + TILE + 15)
        _text(sheet, span_text(tile, fps), x + 4, y + TILE + 31)
        bar = (x + 4, y + TILE + 36, x + TILE - 4, y + TILE + 42)
        cv2.rectangle(sheet, bar[:2], bar[2:], (80, 80, 80), -1)
        for first, last in tile.spans:
            a = bar[0] + round((bar[2] - bar[0]) * first / max(1, frames))
            b = bar[0] + round((bar[2] - bar[0]) * (last + 1) / max(1, frames))
            cv2.rectangle(sheet, (a, bar[1]), (max(a + 1, b), bar[3]), (60, 200, 255), -1)
    ok, encoded = cv2.imencode(".png", sheet)
    if not ok:
        raise ValueError("the contact sheet could not be encoded as PNG")
    return encoded.tobytes()


def _text(image: Image, text: str, x: int, y: int) -> None:
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1)


def sheet_html(found: list[Tile], frames: int, fps: float, sha256: str) -> bytes:
    """The sheet as one HTML page; images are inline, and its policy forbids fetching."""
    figures = []
    for tile in found:
        ok, png = cv2.imencode(".png", _fitted(tile.crop))
        if not ok:
            raise ValueError("a crop could not be encoded as PNG")
        data = base64.b64encode(png.tobytes()).decode("ascii")
        subject = tile.subject
        bars = "".join(
            f'<rect x="{100 * a / max(1, frames):.2f}%" y="0" '
            f'width="{max(0.5, 100 * (b + 1 - a) / max(1, frames)):.2f}%" height="8"/>'
            for a, b in tile.spans
        )
        figures.append(
            f'<figure id="subject-{subject.subject_id}"><img alt="subject '
            f'{subject.subject_id}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>#{subject.subject_id}</b> {html.escape(', '.join(subject.classes))}"
            f"<br>{html.escape(span_text(tile, fps))} (frames {subject.first_frame}-"
            f"{subject.last_frame}), best score {subject.best_score:.2f}"
            f'<svg width="100%" height="8" role="img" aria-label="when it is seen">'
            f'<rect width="100%" height="8" class="clip"/>{bars}</svg></figcaption></figure>'
        )
    page = _PAGE.format(
        sha=html.escape(sha256), count=len(found), figures="\n".join(figures) or _NONE
    )
    return page.encode("utf-8")


_NONE = "<p>No subjects were found.</p>"
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>privmask analysis: {count} subjects</title>
<style>
body {{ font: 14px sans-serif; background: #202020; color: #eee; margin: 1em; }}
main {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; width: 160px; }} img {{ display: block; width: 160px; height: 160px; }}
svg {{ display: block; margin-top: 4px; }} rect {{ fill: #3cc8ff; }} rect.clip {{ fill: #505050; }}
</style></head><body>
<h1>{count} subjects</h1>
<p>Unmasked crops: keep this page as private as the clip. Clip sha256 <code>{sha}</code>.
Keep subjects visible with <code>privmask redact INPUT OUTPUT --analysis DIR
--keep-visible ID,...</code>.</p>
<main>
{figures}
</main></body></html>
"""
