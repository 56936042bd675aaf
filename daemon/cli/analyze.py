"""`privmask analyze`: detect and track one clip, no encode; write who is who to a folder.

The folder gets `analysis.json` (subjects and tracks) and a contact sheet (`sheet.html`,
`sheet.png`) of one unmasked crop per subject. `privmask redact --analysis DIR
--keep-visible ID` then masks everyone else without detecting again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from datetime import datetime

    from privmask.rules.plan import RedactionPlan


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    analyze = commands.add_parser(
        "analyze",
        help="find and number the people and targets in one clip (no video is written)",
        description="Detect and track INPUT and write DIR/analysis.json and a contact sheet "
        "(DIR/sheet.html, DIR/sheet.png) of one crop per subject: a person's face and body "
        "are one subject. The crops are unmasked: DIR is made readable by you alone.",
    )
    analyze.set_defaults(run=run_analyze, style=None, shape=None, padding=None, region=None,
                         region_style=None, hold=None)  # fmt: skip
    analyze.add_argument("input", type=Path, metavar="INPUT")
    analyze.add_argument("--out", type=Path, required=True, metavar="DIR",
                         help="a new or empty folder for the analysis")  # fmt: skip
    what = analyze.add_argument_group("what to detect (or --rules)")
    what.add_argument("--detect", metavar="CLASSES",
                      help="comma list of face, person, plate. Default: face")  # fmt: skip
    what.add_argument("--min-score", type=float, help="detector score threshold")
    what.add_argument("--face-model", choices=("yunet", "centerface"), help="default yunet")
    what.add_argument(
        "--person-model", choices=("yolox-nano", "light-person"), help="default yolox-nano"
    )
    what.add_argument("--detect-every", type=int, metavar="N",
                      help="run detectors on every N-th frame (default 3)")  # fmt: skip
    rules = analyze.add_argument_group("rule files")
    rules.add_argument("--rules", type=Path, action="append", metavar="FILE|DIR",
                       help="detect what the rule for this clip says (repeatable)")  # fmt: skip
    rules.add_argument("--camera", help="the camera id or name the rules match on")
    rules.add_argument("--time", type=_iso_time, metavar="YYYY-MM-DDTHH:MM",
                       help="recording time the rules match on")  # fmt: skip
    analyze.add_argument("--force", action="store_true",
                         help="replace a former analysis in DIR")  # fmt: skip
    options.add_models(analyze)
    options.add_quiet(analyze)


def _iso_time(text: str) -> datetime:
    from datetime import datetime

    return datetime.fromisoformat(text)


def run_analyze(args: argparse.Namespace) -> int:
    from privmask.daemon.cli.redact import plan_from_flags, plan_from_rules
    from privmask.daemon.pipeline.analysis import AnalysisError, check_folder
    from privmask.rules.plan import PlanError

    if (args.detect or "").strip().lower() == "none":
        raise UsageError("nothing to analyse: --detect none detects nothing")
    try:
        plan = plan_from_rules(args) if args.rules else plan_from_flags(args)
        if not plan.targets:
            raise PlanError("nothing to analyse: the rule detects nothing")
        check_folder(args.out, args.force)
    except (PlanError, AnalysisError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not args.input.is_file():
        raise UsageError(f"{args.input}: no such file")
    analyse_to(args.input, args.out, plan, args.models, args.quiet, args.force)
    return EXIT_OK


def analyse_to(
    source: Path, out: Path, plan: RedactionPlan, models_dir: str | None, quiet: bool, force: bool
) -> None:
    """Analyse `source` and write the folder `out` whole, or nothing."""
    from privmask.daemon.cli.progress import progress_bar
    from privmask.daemon.pipeline.analysis import AnalysisError
    from privmask.daemon.pipeline.analysis_folder import analyse_into

    try:
        with progress_bar(enabled=not quiet and sys.stderr.isatty()) as progress:
            done = analyse_into(source, out, plan, models_dir, progress, force)
    except AnalysisError as exc:  # the folder changed while we worked
        raise UsageError(str(exc)) from None
    print(
        f"{out}: {len(done.subjects)} subjects in {done.frames} frames; "
        f"see {out / 'sheet.html'} (unmasked faces: keep it private)",
        file=sys.stderr,
    )
