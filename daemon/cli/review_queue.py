"""`privmask review list|show|decide`: the review queue for headless sites.

They only read and write the journal (and the audit log), so they work with the daemon
running or not: its workers claim an approved job. The reviewer is the operating-system
user running the command. A refused request (an unknown subject id, a job not waiting, an
analysis of another clip, no reason) is one line and exit code 2, and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar

from privmask.daemon.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from privmask.daemon.review.journal_queue import JournalReviewQueue
    from privmask.rules.plan import Region

T = TypeVar("T")


def _queue(args: argparse.Namespace) -> JournalReviewQueue:
    from privmask.daemon.config import load_config
    from privmask.daemon.review.journal_queue import JournalReviewQueue, readable_signer

    config = load_config(args.config, state=args.state)
    return JournalReviewQueue(config, readable_signer(config))


def run_list(args: argparse.Namespace) -> int:
    from privmask.daemon.pipeline import analysis
    from privmask.daemon.review.queue import ReviewError

    queue = _queue(args)
    waiting = queue.waiting()
    if not waiting:
        print("no clips are waiting for review")
        return EXIT_OK
    print(f"{'JOB':<8}{'WAITING SINCE (UTC)':<22}{'CAMERA':<16}{'SUBJECTS':>8}  CLIP")
    for clip in waiting:
        try:
            under = queue.get(clip.job)
            count = str(len(analysis.read(under.analysis).subjects)) if under else "?"
        except (ReviewError, analysis.AnalysisError):  # listed all the same; `show` says why
            count = "?"
        since = clip.waiting_since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{clip.job:<8}{since:<22}{clip.camera or '-':<16}{count:>8}  {clip.name}")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    from privmask.adapters.video import probe
    from privmask.daemon.custody.audit import actor_name
    from privmask.daemon.pipeline import analysis

    queue = _queue(args)
    under = _refused_as_usage(lambda: queue.get(args.job))
    if under is None:
        raise UsageError(f"job {args.job} is not waiting for review")
    try:
        found = analysis.read(under.analysis)
    except analysis.AnalysisError as exc:
        raise UsageError(str(exc)) from None
    fps = float(probe(under.source).frame_rate) if under.source.is_file() else 25.0
    clip = under.clip
    print(f"job {clip.job}: {clip.name}, camera {clip.camera or '-'}, waiting since "
          f"{clip.waiting_since.isoformat(timespec='seconds')}")  # fmt: skip
    print(f"{len(found.subjects)} subjects in {found.frames} frames:")
    for subject in found.subjects:
        print("  " + _subject_line(subject.summary(), fps or 25.0))
    sheet = under.analysis / "sheet.html"
    # the sheet shows unmasked faces: handing out its path counts as showing it
    _refused_as_usage(lambda: queue.viewed(clip.job, actor_name(), "sheet"))
    print(f"contact sheet (unmasked faces, keep it private): {sheet}")
    return EXIT_OK


def _subject_line(summary: dict[str, Any], fps: float) -> str:
    first, last = summary["first_frame"], summary["last_frame"]
    return (
        f"{summary['id']:>3}  {', '.join(summary['classes']):<14} "
        f"{first / fps:7.1f} s - {last / fps:7.1f} s  (frames {first}-{last})"
    )


def run_decide(args: argparse.Namespace) -> int:
    from privmask.daemon.cli.redact import parse_ids
    from privmask.daemon.custody.audit import actor_name
    from privmask.daemon.review.queue import Decision
    from privmask.rules.plan import PlanError, Region

    keep = parse_ids(args.keep_visible, "--keep-visible") if args.keep_visible else frozenset()
    try:
        regions = tuple(
            Region.parse(text, f"review {i + 1}") for i, text in enumerate(args.region or [])
        )
    except PlanError as exc:
        raise UsageError(f"--region: {exc}") from None
    queue = _queue(args)
    if regions and not all(r.relative for r in regions):
        regions = _sized(queue, args.job, regions)
    decision = Decision(args.approve, keep, regions, args.reason, actor_name())
    _refused_as_usage(lambda: queue.decide(args.job, decision))
    verb = "approved: its package will be made" if args.approve else "rejected: no package"
    print(f"job {args.job} {verb}", file=sys.stderr)
    return EXIT_OK


def _sized(queue: JournalReviewQueue, job: str, regions: tuple[Region, ...]) -> tuple[Region, ...]:
    """Pixel areas are given on the picture as a viewer sees it (turned as players turn it),
    as rule regions and the review page's areas are: record that picture's size with them."""
    import dataclasses

    from privmask.adapters.video import probe
    from privmask.daemon.pipeline.geometry import FrameGeometry

    under = _refused_as_usage(lambda: queue.get(job))
    if under is None:
        raise UsageError(f"job {job} is not waiting for review")
    size = FrameGeometry.of(probe(under.source)).display_size
    return tuple(dataclasses.replace(r, reference_size=size) for r in regions)


def _refused_as_usage(call: Callable[[], T]) -> T:
    """A request the queue refuses is the command line's fault: one line, exit code 2."""
    from privmask.daemon.review.queue import ReviewError

    try:
        return call()
    except ReviewError as exc:
        raise UsageError(str(exc)) from None
