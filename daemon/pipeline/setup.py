"""Setup: a redaction plan and a clip's geometry become the models to load, tracker
settings and a mask renderer. Offline redaction and live masking build their stages here,
the same way (the detectors themselves are loaded and run by `detection`).

Target names of the plan ("face", "person", "plate") become `TargetClass` once, in
`classes`; nothing downstream parses them again.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from privmask.adapters import models
from privmask.adapters.detections import TargetClass
from privmask.adapters.models import ModelError
from privmask.daemon.pipeline.geometry import FrameGeometry
from privmask.daemon.pipeline.masking import ClassStyle, MaskRenderer
from privmask.daemon.pipeline.tracker import TrackerSettings
from privmask.rules.plan import PlanError, RedactionPlan, TargetPlan

if TYPE_CHECKING:  # the rule files' reader (yaml, the schema) is not needed to redact
    from privmask.rules.ruleset import RuleSet


def classes(plan: RedactionPlan) -> dict[TargetClass, TargetPlan]:
    """The plan's targets by class."""
    return {TargetClass.parse(t.target): t for t in plan.targets}


def model_list(plan: RedactionPlan) -> list[dict[str, str]]:
    """The models the plan runs, by name and pinned sha256, as reports and manifests say."""
    return [{"name": n, "sha256": models.spec_for(n).sha256} for n, _ in _models(plan)]


def needed_models(ruleset: RuleSet) -> dict[str, list[str]]:
    """Every model the set's rules run, with the names of the rules that need it, compiling
    each rule's plan as a job would. An unknown model, or one that detects another class,
    is a ModelError or PlanError naming the rule."""
    from privmask.rules.ruleset import compile_plan

    needed: dict[str, list[str]] = {}
    for placed in ruleset.rules:
        name = placed.rule.name
        plan = compile_plan(placed.rule)  # its errors name the rule already
        try:
            chosen = _models(plan)
        except (ModelError, PlanError) as exc:
            raise type(exc)(f"rule {name}: {exc}") from None
        for model, _ in chosen:
            needed.setdefault(model, []).append(name)
    return needed


def check_models(ruleset: RuleSet, models_dir: str | os.PathLike[str] | None) -> None:
    """Refuse a set whose models are not all installed (and intact): every job it matched
    would fail until someone installed them. The ModelError names the rule and says how."""
    for model, rules in needed_models(ruleset).items():
        try:
            models.resolve(model, models_dir)
        except ModelError as exc:
            who = f"rule {rules[0]} needs" if len(rules) == 1 else f"rules {', '.join(rules)} need"
            raise ModelError(f"{who} model {model}, which is not installed: {exc}") from None


def _models(plan: RedactionPlan) -> list[tuple[str, TargetPlan]]:
    chosen = []
    for wanted, target in classes(plan).items():
        name = target.model or models.DEFAULT_MODEL[wanted]
        if models.spec_for(name).detects is not wanted:
            # its boxes would be of another class, and nothing would be masked
            raise PlanError(f"model {name} does not detect {wanted.label}s")
        chosen.append((name, target))
    return chosen


# Faces scoring below this that never move on a picture that never changes, for at least
# STILL_SECONDS, are dropped as false detections (a face-like pattern on a wall): a live
# face always changes. Plates and people are never dropped this way: a parked car's plate
# is still, and so is a person sitting at a desk, much as a pattern is.
DOUBTFUL_BELOW = {TargetClass.FACE: 0.6}
STILL_SECONDS = 2.0


def tracker_settings(
    plan: RedactionPlan, geometry: FrameGeometry, frame_rate: Fraction | float
) -> dict[TargetClass, TrackerSettings]:
    """Per class of target: how long a track may go unseen, how far masks reach, and
    which doubtful tracks are dropped."""
    fps = float(frame_rate) or 25.0
    reach = plan.detect_every + round(plan.fill_seconds * fps)
    settings = {}
    for target_class, target in classes(plan).items():
        hold = plan.hold_seconds if target.hold_seconds is None else target.hold_seconds
        settings[target_class] = TrackerSettings(
            max_gap=max(plan.detect_every, round(hold * fps)),
            lead=reach,
            tail=reach,
            frame_size=(geometry.width, geometry.height),
            max_edge_frames=round(10 * fps),
            drop_still_below=DOUBTFUL_BELOW.get(target_class, 0.0),
            still_frames=round(STILL_SECONDS * fps),
        )
    return settings


def build_renderer(
    plan: RedactionPlan, geometry: FrameGeometry, picture: FrameGeometry | None = None
) -> MaskRenderer:
    """The plan's styles and fixed regions (given as the viewer sees the picture) for frames
    of this geometry; a region wholly outside the picture is an error, never skipped.

    `picture` is the clip's own geometry where `geometry` is that of a part stored at
    another size: regions placed in the picture cover the same share of every part.
    """
    placed = picture or geometry
    factors = np.array(placed.scale_to(geometry))
    styles = {c: ClassStyle(t.style, t.shape, t.margin) for c, t in classes(plan).items()}
    regions = []
    for region in plan.regions:
        shown = np.array(region.in_pixels(*placed.display_size))
        regions.append((placed.to_stored(shown) * factors, region.style))
    renderer = MaskRenderer(geometry.width, geometry.height, styles, regions, plan.strength)
    if renderer.regions_outside:
        names = ", ".join(plan.regions[i].name or str(i + 1) for i in renderer.regions_outside)
        width, height = placed.display_size
        raise PlanError(f"region {names} lies outside the {width}x{height} picture")
    return renderer
