"""What the review page and the `privmask review` commands ask of the daemon's review queue.

A clip whose rule says `review: required` is analysed, then held back from packaging until a
reviewer decides. `ReviewQueue` is that queue as the page sees it; the daemon's journal
implements it. `NoReviewQueue` is the queue of a page no daemon feeds: nothing is waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from privmask.rules.plan import RedactionPlan, Region


class ReviewError(ValueError):
    """A request the queue refuses (no such clip waiting, an unknown subject id, an empty
    reason); the message is one line for the reviewer, and nothing was changed."""


@dataclass(frozen=True)
class WaitingClip:
    """A clip analysed and held back from packaging until a reviewer decides."""

    job: str  # the journal's job id, as digits
    name: str  # the clip's file name, as the inbox had it
    camera: str | None
    waiting_since: datetime  # aware


@dataclass(frozen=True)
class ClipUnderReview:
    """What a reviewer needs to decide on one waiting clip."""

    clip: WaitingClip
    source: Path  # the clip as taken in; preview frames are read from it
    analysis: Path  # its analysis folder: analysis.json, sheet.png, sheet.html (mode 700)
    plan: RedactionPlan  # the matching rule's plan: a preview masks as the package will


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision. Approved: every subject is masked except `keep_visible`, and
    `regions` are masked on every frame besides the rule's own. Rejected: no package is made
    and the source is kept as it is."""

    approve: bool
    keep_visible: frozenset[int]  # subject ids of the clip's analysis
    regions: tuple[Region, ...]  # drawn by the reviewer, on top of the rule's regions
    reason: str  # required, one line
    reviewer: str  # the page's login name, or the operating-system user of the command


class ReviewQueue(Protocol):
    def waiting(self) -> Sequence[WaitingClip]:
        """The clips waiting for review, oldest first."""
        ...

    def get(self, job: str) -> ClipUnderReview | None:
        """The clip of `job` if it is waiting for review, else None."""
        ...

    def decide(self, job: str, decision: Decision) -> None:
        """Record `decision` (who, when, why) and let the job go on: ReviewError if the job
        is not waiting or a subject id is not in its analysis."""
        ...

    def viewed(self, job: str, reviewer: str, what: str) -> None:
        """Record that `reviewer` was shown unmasked pictures of `job` (`what`: "sheet",
        "preview", ...): every view of unmasked crops is on record."""
        ...


class NoReviewQueue:
    """The queue of a page that no daemon feeds: nothing is ever waiting."""

    def waiting(self) -> Sequence[WaitingClip]:
        return ()

    def get(self, job: str) -> ClipUnderReview | None:
        return None

    def decide(self, job: str, decision: Decision) -> None:
        raise ReviewError(f"job {job} is not waiting for review")

    def viewed(self, job: str, reviewer: str, what: str) -> None:
        return None
