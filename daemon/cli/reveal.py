"""`privmask reveal`: a custodian opens a job's unmasked original, and the access is recorded.

The work is in `daemon/reveal.py`; this module reads the command line and says what was
done. A reveal without a reason is a wrong command line (nothing is written or recorded).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from privmask.daemon.custody.reveal import Revealed, RevealRequest

DESCRIPTION = """\
Decrypt the unmasked original of one job from the escrow store, for an authorised purpose
(a court order, a police request, a subject-access review). You need the identity file of
one of the site's custodians (an age identity from age-keygen, or an unencrypted OpenSSH
ed25519 key) and a reason. Before any unmasked picture is written, the access is recorded
in the audit log with your login, the requester, the reason and what was asked for; if it
cannot be recorded, nothing is revealed. A wrong identity is refused and recorded as
refused. The file is written with mode 600 and never replaces an existing one.

--keep-visible 3,7 gives the original with everyone masked except those subjects (a
person's face and body are one), by the "subject" ids in the package's manifest.json
("tracks"), using the job's own rule. --from/--to cut a
time range without re-encoding: the cut starts at the keyframe at or before --from (often
up to a few seconds earlier), and ends at --to (a frame or two later where the video
needs it to decode); the cut comes last, after any masking.

Give the daemon's --config: it names the escrow store and the state folder (--state alone
assumes the default store, privmask/escrow)."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "reveal",
        help="decrypt a job's unmasked original for an authorised person; recorded first",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run_reveal)
    parser.add_argument(
        "target",
        metavar="JOB|PACKAGE",
        help="the job id as the package's manifest gives it (123, 000123, live-...), or the "
        "package's path as the daemon wrote it",
    )
    parser.add_argument(
        "--identity", type=Path, required=True, metavar="FILE",
        help="a custodian's secret key: age identity file or unencrypted OpenSSH ed25519 key",
    )  # fmt: skip
    parser.add_argument(
        "--reason", required=True, metavar="TEXT",
        help="why the original is needed (court order, case number); recorded, required",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE",
        help="the file to write (mode 600); an existing file is never replaced",
    )  # fmt: skip
    parser.add_argument(
        "--requester", metavar="NAME",
        help="for whom it is revealed (an officer, a court); recorded with your login",
    )  # fmt: skip
    parser.add_argument(
        "--from", dest="start", metavar="T",
        help="start of the range: an offset into the clip (90, 1:30, 0:01:30.5) or an ISO "
        "8601 time with its zone (2026-11-30T14:03:00+01:00)",
    )  # fmt: skip
    parser.add_argument("--to", dest="end", metavar="T", help="end of the range, as --from")
    parser.add_argument(
        "--keep-visible", metavar="ID,...",
        help="mask everyone except these subjects (the manifest's tracks name their subject)",
    )  # fmt: skip
    options.add_models(parser)
    options.add_config(parser)


def run_reveal(args: argparse.Namespace) -> int:
    from privmask.daemon.config import load_config
    from privmask.daemon.custody.reveal import reveal

    request = _request(args)
    config = load_config(args.config, state=args.state)
    done = reveal(config, request)
    print(_summary(done, request))
    return EXIT_OK


def _request(args: argparse.Namespace) -> RevealRequest:
    from privmask.daemon.custody.reveal import RevealRequest
    from privmask.daemon.custody.reveal_span import Span

    """The command line checked: a wrong one is refused before anything is read."""
    reason = " ".join((args.reason or "").split())
    if not reason:
        raise UsageError("--reason must say why the original is revealed; nothing was revealed")
    try:
        span = Span.parse(args.start, args.end)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return RevealRequest(
        target=args.target,
        identity=args.identity,
        reason=reason,
        out=args.out,
        requester=args.requester,
        span=span,
        keep_visible=parse_ids(args.keep_visible) if args.keep_visible is not None else None,
        models=args.models,
    )


def parse_ids(text: str) -> frozenset[int]:
    """`3,7` -> {3, 7}; anything else is a wrong command line."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(
            f"--keep-visible {text!r}: give subject ids separated by commas, as the manifest's "
            "tracks name them (e.g. 3,7)"
        )
    return frozenset(int(p) for p in parts)


def _summary(done: Revealed, request: RevealRequest) -> str:
    what = "the original"
    if request.keep_visible is not None:
        ids = ", ".join(str(t) for t in sorted(request.keep_visible))
        what = f"the original with everyone masked except track(s) {ids}"
    if not request.span.whole:
        start = f"{done.start or 0:g} s"
        if request.span.start is not None:
            start += f" (the keyframe at or before {request.span.start})"
        what += f", cut from {start} to {request.span.end or 'the end'}"
    return (
        f"job {done.job}: {what} written to {done.out} (mode 600); recorded as audit entry "
        f"{done.entry}"
    )
