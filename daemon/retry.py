"""Retries: how often a job is tried, how long to wait between tries, and which failures
are worth another try. Pure decisions, tested on their own.

A failure is classified by its exception type (and a video error by its code), never by
its message: a clip that is not a video, or that no rule applies to, fails the same way
every time and goes to quarantine at once; a missing model or an unreadable password may
be fixed by a person, so the job is tried again after a backoff; a full, read-only or
missing disk says nothing about the clip, so the job waits for it without using a try.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from privmask.adapters.age import AgeError
from privmask.adapters.models import ModelError
from privmask.adapters.package import PackageError
from privmask.adapters.video import VideoError
from privmask.daemon.custody.audit import AuditError
from privmask.daemon.secrets import SecretError
from privmask.daemon.storage import is_storage_fault
from privmask.rules.files import RuleFileError
from privmask.rules.plan import PlanError
from privmask.rules.ruleset import NoRuleApplies

MAX_DELAY_SECONDS = 3600.0

# failures that say something about the clip: the same every time (exception -> reason code)
PERMANENT: dict[type[Exception], str] = {
    VideoError: "invalid_video",
    PlanError: "rule_not_applicable",
    NoRuleApplies: "no_rule",
}
# failures of the site, not of the clip: worth another try
TRANSIENT: tuple[type[Exception], ...] = (
    AgeError,  # a recipients file gone or changed: a person fixes it
    AuditError,  # the audit log cannot be written: nothing goes on unrecorded
    PackageError,
    ModelError,
    RuleFileError,
    SecretError,
    OSError,
)
RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True)
class Failure:
    kind: Literal["permanent", "retry", "wait"]
    code: str  # quarantine reason code, if it comes to that

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"


def classify(exc: Exception) -> Failure | None:
    """How a job's failure is handled; None for an error the worker does not expect (a bug),
    which is left to crash the worker and be counted as an interruption."""
    if is_storage_fault(exc):
        return Failure("wait", "storage")
    for kind, code in PERMANENT.items():
        if isinstance(exc, kind):
            return Failure("permanent", code)
    if isinstance(exc, TRANSIENT):
        return Failure("retry", RETRIES_EXHAUSTED)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job is tried, and how long to wait between tries."""

    max_attempts: int = 3
    backoff_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.backoff_seconds < 0:
            raise ValueError(f"backoff_seconds must not be negative, not {self.backoff_seconds}")

    def next_step(self, attempts: int, permanent: bool) -> Literal["retry", "quarantine"]:
        """After `attempts` tries (the failed one included), try again or give up."""
        if permanent or attempts >= self.max_attempts:
            return "quarantine"
        return "retry"

    def delay(self, attempts: int) -> float:
        """Seconds to wait before try `attempts + 1`: doubling from the backoff, at most 1 h."""
        exponent = max(attempts, 1) - 1
        if exponent >= 32:  # 2**32 times any backoff is past the cap; avoids huge floats
            return min(MAX_DELAY_SECONDS, self.backoff_seconds * 2.0**32)
        return min(MAX_DELAY_SECONDS, self.backoff_seconds * 2.0**exponent)
