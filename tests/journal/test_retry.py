"""Which failures use up a try, which quarantine at once, and which only wait."""

from __future__ import annotations

import errno

import pytest

from privmask.adapters.models import ModelError
from privmask.adapters.package import PackageError
from privmask.adapters.video import VideoError
from privmask.daemon.retry import classify
from privmask.rules.ruleset import NoRuleApplies


def package_error_from(code: int) -> PackageError:
    try:
        raise PackageError("cannot write package into /out: the disk is full") from OSError(
            code, "x"
        )
    except PackageError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (VideoError("clip.mp4: not a video", "not_a_video"), "permanent", "invalid_video"),
        (NoRuleApplies("no rule"), "permanent", "no_rule"),
        (ModelError("yunet is not installed"), "retry", "retries_exhausted"),
        (OSError(errno.EACCES, "Permission denied"), "wait", "storage"),
        (OSError(errno.EBADMSG, "Bad message"), "retry", "retries_exhausted"),
        (OSError(errno.ENOSPC, "No space left on device"), "wait", "storage"),
        (OSError(errno.EROFS, "Read-only file system"), "wait", "storage"),
        (package_error_from(errno.ENOSPC), "wait", "storage"),
        (package_error_from(errno.EACCES), "wait", "storage"),
        (PackageError("a different package already has this name"), "retry", "retries_exhausted"),
        (VideoError("out.mp4: cannot write (No space left)", "write_failed"), "wait", "storage"),
    ],
)
def test_failures_are_classified_by_type_and_code(error: Exception, kind: str, code: str) -> None:
    failure = classify(error)
    assert failure is not None and (failure.kind, failure.code) == (kind, code)


def test_an_unexpected_error_is_left_to_crash_the_worker() -> None:
    assert classify(KeyError("bug")) is None
