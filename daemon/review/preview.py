"""The review page's preview: one frame of a clip waiting for review, masked exactly as its
package will be with the reviewer's current choice (subjects kept visible, areas drawn).

Nothing here masks on its own: the masks of a frame come from the analysis's tracks through
the pipeline's own path (`offline.masked_tracks`, `tracker.fill`, `parts.PartMasker`),
the same calls `offline.redact` makes, so what the reviewer sees is what the package gets.

The picture is the frame as the viewer sees it (turned as players turn it), at the clip's
own size; areas are drawn on it in its pixels, with that size as their reference, which is
what a rule's `Region` means by pixel points.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np
import numpy.typing as npt

from privmask.adapters.video import VideoError, fit, probe
from privmask.daemon.pipeline import analysis
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.offline import masked_tracks
from privmask.daemon.pipeline.parts import PartMasker
from privmask.daemon.pipeline.setup import tracker_settings
from privmask.daemon.pipeline.subjects import Subject
from privmask.daemon.pipeline.tracker import fill
from privmask.daemon.review.frames import FrameMissing, FrameReader
from privmask.daemon.review.queue import ClipUnderReview
from privmask.rules.plan import PlanError, RedactionPlan, Region, TrackSelection

JPEG_QUALITY = 90
MAX_AREAS = 20  # drawn areas per decision; a form with more is not a reviewer's


class PreviewError(ValueError):
    """A choice that cannot be shown (a frame outside the clip, an unknown subject, an area
    that is not a polygon in the picture); the message is one line for the reviewer."""


@dataclass(frozen=True)
class Choice:
    """What the reviewer has chosen so far, checked against the clip."""

    frame: int
    keep: frozenset[int]  # subject ids kept visible
    regions: tuple[Region, ...]  # drawn areas, pixels of the preview picture


class ClipPreview:
    """One clip under review: its analysis read and its video probed once."""

    def __init__(self, clip: ClipUnderReview) -> None:
        try:
            self.analysis = analysis.read(clip.analysis)
            self.info = probe(clip.source)
        except (analysis.AnalysisError, VideoError) as exc:
            raise PreviewError(_one_line(str(exc))) from None
        self.clip = clip
        self.geometry = FrameGeometry.of(self.info)
        self.frames = self.analysis.frames or self.info.estimated_frames
        self.fps = float(self.info.frame_rate or 0) or 25.0
        self._lock = threading.Lock()  # the page asks from several threads
        self._kept: tuple[int, npt.NDArray[np.uint8]] | None = None
        self._reader: FrameReader | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the preview picture: the clip as the viewer sees it."""
        return self.geometry.display_size

    @property
    def subjects(self) -> tuple[Subject, ...]:
        return self.analysis.subjects

    def busiest_frame(self) -> int:
        """The first frame in which the most subjects were sighted (0 when none were)."""
        seen: dict[int, set[int]] = {}
        for subject in self.subjects:
            for track in subject.tracks:
                for frame in track.frames:
                    seen.setdefault(frame, set()).add(subject.subject_id)
        if not seen:
            return 0
        return min(seen, key=lambda frame: (-len(seen[frame]), frame))

    def choice(self, frame: str | None, keep: Sequence[str], regions: Sequence[str]) -> Choice:
        """The reviewer's choice from the page's fields; PreviewError names what is wrong."""
        index = self.busiest_frame() if frame is None or frame == "" else self._frame(frame)
        choice = Choice(index, self._keep(keep), self._regions(regions))
        try:  # an area outside the picture would fail the package's redaction: refused now
            PartMasker(self.plan(choice), self.geometry, self.clip.source)
        except PlanError as exc:
            raise PreviewError(_one_line(str(exc))) from None
        return choice

    def plan(self, choice: Choice) -> RedactionPlan:
        """The clip's plan with the choice applied: every subject masked but the kept ones,
        the drawn areas masked besides the rule's own."""
        return dataclasses.replace(
            self.clip.plan,
            selection=TrackSelection("except", choice.keep),
            regions=(*self.clip.plan.regions, *choice.regions),
        )

    def jpeg(self, choice: Choice) -> bytes:
        """Frame `choice.frame` masked as the package will be, as a JPEG."""
        try:
            picture = self._masked(choice)
        except PlanError as exc:
            raise PreviewError(_one_line(str(exc))) from None
        except VideoError as exc:
            raise PreviewError(_one_line(str(exc))) from None
        done, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not done:
            raise PreviewError("the preview frame could not be encoded")
        return bytes(data)

    def _masked(self, choice: Choice) -> npt.NDArray[np.uint8]:
        plan = self.plan(choice)
        settings = tracker_settings(plan, self.geometry, self.info.frame_rate)
        masks = fill(masked_tracks(self.analysis, plan, self.info, settings), settings)
        masker = PartMasker(plan, self.geometry, self.clip.source)
        frame = self._frame_at(choice.frame)
        masker.render(choice.frame, frame, masks.get(choice.frame))
        width, height = self.geometry.width, self.geometry.height
        if (frame.width, frame.height) != (width, height):
            frame = fit(frame, width, height)  # as the package fits a part of another size
        picture = frame.to_ndarray(format="bgr24")
        return np.ascontiguousarray(np.rot90(picture, self.geometry.turns))

    def _frame_at(self, index: int) -> av.VideoFrame:
        """A writable copy of frame `index`, unmasked, reached by seeking (`frames`). The
        latest one read is kept: each toggle shows the same frame again. The lock is this
        clip's: other reviewers' clips are read meanwhile."""
        with self._lock:
            if self._kept is None or self._kept[0] != index:
                if self._reader is None:  # the clip is indexed once, on its first frame
                    self._reader = FrameReader(self.clip.source)
                try:
                    self._kept = (index, self._reader.frame(index))
                except FrameMissing:
                    raise PreviewError(f"the clip has no frame {index}") from None
            pixels = self._kept[1]
        return av.VideoFrame.from_ndarray(pixels, format="yuv420p")

    def _frame(self, text: str) -> int:
        try:
            index = int(text)
        except ValueError:
            raise PreviewError(f"frame must be a whole number, got {text[:20]!r}") from None
        if not 0 <= index < self.frames:
            raise PreviewError(f"frame must be 0..{self.frames - 1}, got {index}")
        return index

    def _keep(self, texts: Iterable[str]) -> frozenset[int]:
        try:
            ids = frozenset(int(text) for text in texts)
        except ValueError:
            raise PreviewError("subject ids are whole numbers") from None
        known = {s.subject_id for s in self.subjects}
        unknown = sorted(ids - known)
        if unknown:
            listed = ", ".join(map(str, sorted(known))) or "none"
            raise PreviewError(
                f"no subject {', '.join(map(str, unknown))} in this clip's analysis "
                f"(its subjects: {listed})"
            )
        return ids

    def _regions(self, texts: Sequence[str]) -> tuple[Region, ...]:
        if len(texts) > MAX_AREAS:
            raise PreviewError(f"at most {MAX_AREAS} areas may be drawn")
        return tuple(self._region(text, f"area {n}") for n, text in enumerate(texts, start=1))

    def _region(self, text: str, name: str) -> Region:
        """`X1,Y1,X2,Y2,...`: pixels of the preview picture (never fractions: a drawn point
        near the corner is not a share of the frame)."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise PreviewError(f"{name}: expected numbers X1,Y1,X2,Y2,...") from None
        if len(values) % 2 or len(values) < 4:
            raise PreviewError(f"{name}: expected an even count of at least 4 numbers")
        points = tuple(zip(values[0::2], values[1::2], strict=True))
        try:
            return Region(points, relative=False, name=name, reference_size=self.size)
        except PlanError as exc:
            raise PreviewError(_one_line(str(exc))) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())
