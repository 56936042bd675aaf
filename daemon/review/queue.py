"""Where the review page learns which clips wait for a reviewer: the daemon's review queue
plugs in here. Until it does, the page runs on `NoReviewQueue`, which has nothing waiting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class WaitingClip:
    """A clip analysed and held back from packaging until a reviewer decides."""

    job: str  # the journal's job id
    name: str  # the clip's file name, as the inbox had it
    camera: str | None
    waiting_since: datetime  # aware


class ReviewQueue(Protocol):
    def waiting(self) -> Sequence[WaitingClip]:
        """The clips waiting for review, oldest first."""
        ...


class NoReviewQueue:
    """The queue of a page that no daemon feeds: nothing is ever waiting."""

    def waiting(self) -> Sequence[WaitingClip]:
        return ()
