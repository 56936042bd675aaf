"""A redaction plan: the plain, validated values that tell the pipeline what to mask.

Rule files and command-line flags both compile to one `RedactionPlan`. This module is pure
policy: it imports nothing from the daemon or the adapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

TARGETS = ("face", "person", "plate")


class PlanError(ValueError):
    """A plan value is invalid; the message names the value and what was expected."""


class MaskStyle(StrEnum):
    BLUR = "blur"
    PIXELATE = "pixelate"
    SOLID = "solid"


class MaskShape(StrEnum):
    BOX = "box"
    ELLIPSE = "ellipse"


E = TypeVar("E", bound=StrEnum)


def parse_enum(kind: type[E], text: str, what: str) -> E:
    try:
        return kind(text.strip().lower())
    except ValueError:
        choices = "|".join(m.value for m in kind)
        raise PlanError(f"{what} must be one of {choices}, got {text!r}") from None


@dataclass(frozen=True)
class Region:
    """A fixed polygon masked on every frame.

    `points` are pixels, or fractions of the frame (0..1) when `relative` is true; two
    points mean the rectangle they span.
    """

    points: tuple[tuple[float, float], ...]
    relative: bool
    name: str = ""
    reference_size: tuple[int, int] | None = None  # pixel points drawn on a frame this size
    style: MaskStyle = MaskStyle.SOLID

    def __post_init__(self) -> None:
        label = f"region {self.name!r}" if self.name else "region"
        if len(self.points) < 2:
            raise PlanError(f"{label} needs at least 2 points (a rectangle) or 3 (a polygon)")
        if not all(math.isfinite(v) for point in self.points for v in point):
            raise PlanError(f"{label} has a coordinate that is not a finite number")
        if any(x < 0 or y < 0 for x, y in self.points):
            raise PlanError(f"{label} has a negative coordinate")
        if self.relative and any(x > 1 or y > 1 for x, y in self.points):
            raise PlanError(f"{label} mixes fractions and pixels")
        if len(self.points) >= 4 and _self_intersects(self.points):
            raise PlanError(f"{label} is self-intersecting; list its corners in order")
        if _area(self.polygon) <= 0:
            raise PlanError(f"{label} has no area")

    @property
    def polygon(self) -> tuple[tuple[float, float], ...]:
        if len(self.points) == 2:
            (x1, y1), (x2, y2) = self.points
            return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
        return self.points

    def in_pixels(self, width: int, height: int) -> tuple[tuple[float, float], ...]:
        if self.relative:
            sx, sy = float(width), float(height)
        elif self.reference_size:
            sx, sy = width / self.reference_size[0], height / self.reference_size[1]
        else:
            sx = sy = 1.0
        return tuple((x * sx, y * sy) for x, y in self.polygon)

    @classmethod
    def parse(cls, text: str, name: str = "", style: MaskStyle = MaskStyle.SOLID) -> Region:
        """`X1,Y1,X2,Y2,...`; all values in 0..1 means fractions of the frame, and a
        fraction beside a value above 1 is refused (0,0,1.5,0.5 is not a region of pixels)."""
        try:
            values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
        except ValueError:
            raise PlanError(f"region {text!r}: expected numbers X1,Y1,X2,Y2,...") from None
        if len(values) % 2 or len(values) < 4:
            raise PlanError(f"region {text!r}: expected an even count of at least 4 numbers")
        if any(0 < v < 1 for v in values) and any(v > 1 for v in values):
            raise PlanError(
                f"region {text!r} mixes fractions (0..1) and pixels; give every value as a "
                "fraction of the frame, or every value in pixels"
            )
        points = tuple(zip(values[0::2], values[1::2], strict=True))
        return cls(points, relative=all(v <= 1 for v in values), name=name, style=style)


def _area(points: tuple[tuple[float, float], ...]) -> float:
    return (
        abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1])))
        / 2
    )


def _self_intersects(points: tuple[tuple[float, float], ...]) -> bool:
    edges = list(zip(points, points[1:] + points[:1]))
    for i, (a, b) in enumerate(edges):
        for j in range(i + 1, len(edges)):
            if j == i + 1 or (i == 0 and j == len(edges) - 1):
                continue  # neighbours share a corner
            c, d = edges[j]
            if _segments_cross(a, b, c, d):
                return True
    return False


def _segments_cross(a, b, c, d) -> bool:  # type: ignore[no-untyped-def]
    def orient(p, q, r) -> float:  # type: ignore[no-untyped-def]
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    return o1 * o2 < 0 and o3 * o4 < 0


# Sensible padding per target: a face box is tight, a person box already generous.
DEFAULT_PADDING = {"face": 0.25, "person": 0.05, "plate": 0.15}


@dataclass(frozen=True)
class TargetPlan:
    """How one class of target is found and masked."""

    target: str  # one of TARGETS
    model: str = ""  # registry name; empty means the default for the target
    min_score: float | None = None  # None: the model's own default
    padding: float | None = None  # fraction of the box added on every side; None: default
    style: MaskStyle = MaskStyle.BLUR
    shape: MaskShape = MaskShape.BOX
    hold_seconds: float | None = None  # None: the plan's hold_seconds

    @property
    def margin(self) -> float:
        """The padding, or the target's default."""
        return DEFAULT_PADDING[self.target] if self.padding is None else self.padding

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise PlanError(
                f"unknown target {self.target!r} (expected one of {', '.join(TARGETS)})"
            )
        if self.min_score is not None and not 0 < self.min_score < 1:
            raise PlanError(f"min score for {self.target} must be between 0 and 1")
        if not 0 <= self.margin <= 2:
            raise PlanError(f"padding for {self.target} must be 0..2 (a fraction of the box)")


@dataclass(frozen=True)
class TrackSelection:
    """Which subjects are masked: all, all except `subjects`, or only `subjects`.

    Ids are subject ids of an analysis (`privmask analyze`): a person's face and body are
    one subject, numbered from the detections alone, so mask settings never change them.
    """

    mode: str = "all"
    subjects: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.mode not in ("all", "except", "only"):
            raise PlanError(f"selection mode must be all, except or only, got {self.mode!r}")

    def masks(self, subject_id: int) -> bool:
        if self.mode == "except":
            return subject_id not in self.subjects
        if self.mode == "only":
            return subject_id in self.subjects
        return True


@dataclass(frozen=True)
class RedactionPlan:
    targets: tuple[TargetPlan, ...] = ()
    regions: tuple[Region, ...] = ()
    detect_every: int = 3  # run detectors on every n-th frame; tracking fills the rest
    hold_seconds: float = 1.0  # keep a lost target masked this long, and bridge gaps this long
    fill_seconds: float = (
        0.2  # extend every track this far before its first/after its last sighting
    )
    strength: float = 1.0  # blur/pixelate strength multiplier
    selection: TrackSelection = TrackSelection()

    def __post_init__(self) -> None:
        if not 1 <= self.detect_every <= 30:
            raise PlanError("detect-every must be 1..30 frames")
        if not 0 <= self.hold_seconds <= 30 or not 0 <= self.fill_seconds <= 10:
            raise PlanError("hold must be 0..30 s and fill 0..10 s")
        seen = [t.target for t in self.targets]
        if len(seen) != len(set(seen)):
            raise PlanError("each target may be listed once")
