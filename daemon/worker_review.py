"""A worker's part in review (`review: required`): analyse and hold, or redact as decided.

First try: the clip is analysed into `<state>/review/<job>/` (unmasked crops: mode 700,
files 600) and the job is held for review, with no package. Once a reviewer has approved,
the next try reads that analysis, checks it still fits the clip and the rule now in force
(else the clip is analysed again and waits again: a selection made on other ids is never
published), and redacts with every subject masked except the kept ones, the reviewer's
areas added to the rule's. The analysis folder goes once the package is durable.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from privmask.daemon.config import Config
from privmask.daemon.journal import Job, Review, ReviewDecision
from privmask.daemon.pipeline import analysis
from privmask.daemon.pipeline.analysis_folder import analyse_into
from privmask.daemon.pipeline.setup import model_list
from privmask.rules.plan import Region, TrackSelection
from privmask.rules.ruleset import Decision

log = structlog.get_logger("privmask.worker")


@dataclass(frozen=True)
class Held:
    """The job waits for a reviewer: its analysis folder, and why (when analysed again)."""

    analysis: Path
    why: str
    subjects: int


@dataclass(frozen=True)
class Reviewed:
    """An approved job, ready to redact: the decision with the reviewer's choice in its plan."""

    decision: Decision
    analysis: analysis.Analysis
    folder: Path
    review: ReviewDecision

    def manifest_block(self) -> dict[str, Any]:
        """What the package says of the review (who, when, why, what was chosen)."""
        review = self.review
        return {
            "reviewer": review.reviewer,
            "time": datetime.fromtimestamp(review.decided, UTC).isoformat(timespec="seconds"),
            "reason": review.reason,
            "kept_visible": sorted(review.keep_visible),
            "regions": len(review.regions),
        }


def folder_of(config: Config, job_id: int) -> Path:
    return config.state / "review" / f"{job_id:06d}"


def prepare(
    job: Job, clip: Path, decision: Decision, review: Review | None, config: Config
) -> Held | Reviewed:
    """Hold a clip not yet decided; for an approved one, its analysis and reviewed plan."""
    if review is None or review.decision is None or not review.decision.approve:
        return hold(job, clip, decision, config, "")
    folder = Path(review.analysis)
    try:
        found = analysis.read(folder)
        detection = analysis.detection_settings(decision.plan, model_list(decision.plan))
        analysis.check_usable(found, job.sha256, detection, folder)
        analysis.check_ids(found, frozenset(review.decision.keep_visible), folder)
    except analysis.AnalysisError as exc:
        why = f"analysed again, the review no longer fits: {exc}"
        log.warning("review_analysis_stale", job=job.id, reason=str(exc))
        return hold(job, clip, decision, config, why)
    return Reviewed(reviewed_decision(decision, review.decision), found, folder, review.decision)


def hold(job: Job, clip: Path, decision: Decision, config: Config, why: str) -> Held:
    """Analyse `clip` into the job's review folder (replacing a former analysis)."""
    folder = folder_of(config, job.id)
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    done = analyse_into(
        clip,
        folder,
        decision.plan,
        config.models,
        force=True,
        name=Path(job.path).name,
        sha256=job.sha256,
    )
    return Held(folder, why, len(done.subjects))


def reviewed_decision(decision: Decision, review: ReviewDecision) -> Decision:
    """Every subject masked but the kept ones; the reviewer's areas besides the rule's."""
    plan = dataclasses.replace(
        decision.plan,
        selection=TrackSelection("except", frozenset(review.keep_visible)),
        regions=decision.plan.regions + tuple(region_from(r) for r in review.regions),
    )
    return dataclasses.replace(decision, plan=plan)


def region_to(region: Region) -> dict[str, Any]:
    """A reviewer's area as the journal keeps it."""
    return {
        "points": [list(p) for p in region.points],
        "relative": region.relative,
        "reference_size": list(region.reference_size) if region.reference_size else None,
    }


def region_from(data: dict[str, Any]) -> Region:
    size = data.get("reference_size")
    return Region(
        tuple((float(x), float(y)) for x, y in data["points"]),
        relative=bool(data["relative"]),
        name="review",
        reference_size=(int(size[0]), int(size[1])) if size else None,
    )


def remove_analysis(folder: Path) -> None:
    """The analysis holds unmasked crops: removed once it is no longer needed."""
    shutil.rmtree(folder, ignore_errors=True)
