"""`privmask redact`: redact one clip, with what to mask from flags or from rule files;
with `--analysis DIR`, the tracks of a `privmask analyze` folder, keeping some subjects
visible (`--keep-visible`) or masking only some (`--mask-only`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from privmask.adapters.video import PRESETS, EncoderSettings
from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_OK, UsageError
from privmask.rules.match import Facts
from privmask.rules.plan import (
    TARGETS,
    MaskShape,
    MaskStyle,
    PlanError,
    RedactionPlan,
    Region,
    TargetPlan,
    TrackSelection,
    parse_enum,
)

if TYPE_CHECKING:  # the engine is imported when a redaction runs
    from privmask.daemon.pipeline.analysis import Analysis

# the containers OUTPUT may name (FFmpeg picks the format from the suffix)
CONTAINERS = (".mp4", ".mov", ".mkv")
# flags that say what to mask; with --rules the rule files say it instead
PLAN_FLAGS = ("detect", "style", "shape", "padding", "region", "region_style", "min_score",
              "face_model", "person_model", "detect_every", "hold")  # fmt: skip


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    redact = commands.add_parser(
        "redact",
        help="write a redacted copy of one clip",
        description="Write a redacted copy of INPUT to OUTPUT. OUTPUT appears only when it "
        "is complete and verified; on any error nothing is left there.",
    )
    redact.set_defaults(run=run_redact)
    redact.add_argument("input", type=Path, metavar="INPUT")
    redact.add_argument(
        "output", type=Path, metavar="OUTPUT", help=f"e.g. out.mp4 ({'/'.join(CONTAINERS)})"
    )
    what = redact.add_argument_group("what to mask (or --rules)")
    what.add_argument(
        "--detect",
        metavar="CLASSES",
        help="comma list of face, person, plate; or none (fixed regions only, no detector "
        "runs). Default: face",
    )
    what.add_argument("--style", help="blur | pixelate | solid (default blur)")
    what.add_argument("--shape", help="box | ellipse (default box)")
    what.add_argument(
        "--padding",
        type=float,
        help="margin around each box, as a fraction of its size "
        "(default: face 0.25, person 0.05, plate 0.15)",
    )
    what.add_argument(
        "--region",
        action="append",
        metavar="X1,Y1,X2,Y2,...",
        help="a fixed polygon masked on every frame (repeatable); pixels, or fractions 0..1 "
        "of the picture as the viewer sees it; two points give a rectangle",
    )
    what.add_argument("--region-style", help="style of fixed regions (default solid)")
    what.add_argument("--min-score", type=float, help="detector score threshold")
    what.add_argument("--face-model", choices=("yunet", "centerface"), help="default yunet")
    what.add_argument(
        "--person-model", choices=("yolox-nano", "light-person"), help="default yolox-nano"
    )
    what.add_argument(
        "--detect-every",
        type=int,
        metavar="N",
        help="run detectors on every N-th frame; tracking covers the frames between (default 3)",
    )
    what.add_argument("--hold", type=float, metavar="S", help="bridge detector gaps up to S s (1)")
    rules = redact.add_argument_group("rule files")
    rules.add_argument(
        "--rules",
        type=Path,
        action="append",
        metavar="FILE|DIR",
        help="take what to mask from the rule that applies to this clip (repeatable)",
    )
    rules.add_argument(
        "--camera",
        help="the camera id or name the rules match on (default: from a vendor export name)",
    )
    rules.add_argument(
        "--time",
        type=datetime.fromisoformat,
        metavar="YYYY-MM-DDTHH:MM",
        help="recording time the rules match on (default: as the daemon reads it: the "
        "container's creation time, a vendor export name, else the file's modification time, "
        "on the host's clock)",
    )
    chosen = redact.add_argument_group("who stays visible (ids of privmask analyze)")
    chosen.add_argument(
        "--analysis",
        type=Path,
        metavar="DIR",
        help="mask the subjects of this analysis of INPUT, without detecting again",
    )
    only_one = chosen.add_mutually_exclusive_group()
    only_one.add_argument(
        "--keep-visible", metavar="IDS", help="comma list of subject ids left unmasked"
    )
    only_one.add_argument("--mask-only", metavar="IDS", help="comma list of subject ids masked")
    redact.add_argument("--report", type=Path, metavar="FILE.json", help="write a JSON report")
    redact.add_argument(
        "--force", action="store_true", help="replace an OUTPUT or report that exists already"
    )
    options.add_models(redact)
    encoding = redact.add_argument_group("encoding")
    encoding.add_argument("--codec", default="h264", choices=("h264", "h265"), help="(h264)")
    encoding.add_argument("--crf", type=int, default=20, help="quality, lower is better (20)")
    encoding.add_argument("--preset", default="veryfast", choices=PRESETS, help="(veryfast)")
    options.add_quiet(redact)


def plan_from_flags(args: argparse.Namespace) -> RedactionPlan:
    def given(name: str, default):  # type: ignore[no-untyped-def]
        value = getattr(args, name)
        return default if value is None else value

    style = parse_enum(MaskStyle, given("style", "blur"), "--style")
    shape = parse_enum(MaskShape, given("shape", "box"), "--shape")
    detect = given("detect", "face")
    names = [n.strip().lower() for n in detect.split(",") if n.strip()]
    if names == ["none"]:
        names = []
    if not detect.strip() or any(n not in TARGETS for n in names):
        raise PlanError(f"--detect takes {', '.join(TARGETS)} or none, got {detect!r}")
    chosen_model = {"face": args.face_model or "", "person": args.person_model or "", "plate": ""}
    targets = tuple(
        TargetPlan(
            target=name,
            model=chosen_model[name],
            min_score=args.min_score,
            padding=args.padding,
            style=style,
            shape=shape,
        )
        for name in names
    )
    region_style = parse_enum(MaskStyle, given("region_style", "solid"), "--region-style")
    regions = tuple(
        Region.parse(text, f"region {i + 1}", region_style)
        for i, text in enumerate(args.region or [])
    )
    if not targets and not regions:
        raise PlanError("nothing to mask: --detect none needs at least one --region")
    return RedactionPlan(
        targets=targets,
        regions=regions,
        detect_every=given("detect_every", 3),
        hold_seconds=given("hold", 1.0),
    )


def plan_from_rules(args: argparse.Namespace) -> RedactionPlan:
    from privmask.adapters.recording import container_metadata
    from privmask.daemon.config import host_timezone
    from privmask.daemon.recording import camera_from_name, recording_time
    from privmask.rules.ruleset import RuleSet

    flags = [f"--{f.replace('_', '-')}" for f in PLAN_FLAGS if getattr(args, f) is not None]
    if flags:
        raise UsageError(f"with --rules, the rules say what to mask; drop {', '.join(flags)}")
    ruleset = RuleSet.from_paths(args.rules)
    source = args.input.resolve()
    when = args.time
    if when is None and source.is_file():
        when, _ = recording_time(source, container_metadata(source), host_timezone())
    camera = args.camera or camera_from_name(source.name)
    job = Facts(camera=camera, folder=str(source.parent), file_name=source.name, when=when)
    decision = ruleset.decide(job)
    print(f"rules: {decision.reasons[0]}", file=sys.stderr)
    return decision.plan


def run_redact(args: argparse.Namespace) -> int:
    analysis: Analysis | None = None
    try:
        if args.analysis is not None:
            analysis = _read_analysis(args.analysis)
            plan = plan_from_rules(args) if args.rules else plan_from_analysis(args, analysis)
        else:
            plan = plan_from_rules(args) if args.rules else plan_from_flags(args)
        plan = _with_selection(plan, args)
        codec = {"h264": "libx264", "h265": "libx265"}[args.codec]
        encoder = EncoderSettings(codec=codec, crf=args.crf, preset=args.preset)
    except (PlanError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    _check_paths(args.input, args.output, args.report, args.force)
    if analysis is not None:
        _check_analysis(analysis, args.analysis, args.input, plan)
    redact_clip(
        args.input, args.output, plan, encoder, args.models, args.report, args.quiet, args.force,
        analysis,
    )  # fmt: skip
    return EXIT_OK


# detection settings: with --analysis, the analysis says them
DETECTION_FLAGS = ("detect", "min_score", "face_model", "person_model", "detect_every")


def _read_analysis(folder: Path) -> Analysis:
    from privmask.daemon.pipeline.analysis import AnalysisError, read

    try:
        return read(folder)
    except AnalysisError as exc:
        raise UsageError(str(exc)) from None


def plan_from_analysis(args: argparse.Namespace, analysis: Analysis) -> RedactionPlan:
    """The flags' plan for the classes, models and detection settings of `analysis`."""
    from privmask.adapters import models

    given = [f"--{f.replace('_', '-')}" for f in DETECTION_FLAGS if getattr(args, f) is not None]
    if given:
        raise UsageError(f"with --analysis, the analysis says what was detected; drop {given[0]}")
    detection = analysis.detection
    chosen: dict[str, str] = {}
    for entry in detection["models"]:
        try:
            chosen[f"{models.spec_for(entry['name']).detects.label}_model"] = entry["name"]
        except models.ModelError as exc:
            raise UsageError(f"{args.analysis}: {exc}") from None
    classes = ",".join(detection["classes"]) or "none"
    flags = {**vars(args), "detect": classes, **chosen, "detect_every": detection["detect_every"]}
    plan = plan_from_flags(argparse.Namespace(**flags))
    targets = tuple(
        dataclasses.replace(t, min_score=detection["min_score"].get(t.target)) for t in plan.targets
    )
    return dataclasses.replace(plan, targets=targets)


def _with_selection(plan: RedactionPlan, args: argparse.Namespace) -> RedactionPlan:
    """The plan with --keep-visible or --mask-only as its selection (over a rule's)."""
    keep = args.keep_visible is not None
    text, mode = (args.keep_visible, "except") if keep else (args.mask_only, "only")
    if text is None:
        return plan
    option = "--keep-visible" if mode == "except" else "--mask-only"
    if args.analysis is None:
        raise UsageError(f"{option} needs --analysis DIR: the ids are those its sheet shows")
    return dataclasses.replace(plan, selection=TrackSelection(mode, parse_ids(text, option)))


def parse_ids(text: str, option: str) -> frozenset[int]:
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{option} takes subject ids, e.g. 3,7; got {text!r}") from None
    if not ids or min(ids) < 1:
        raise UsageError(f"{option} takes subject ids (1 and up), e.g. 3,7; got {text!r}")
    return ids


def _check_analysis(analysis: Analysis, folder: Path, source: Path, plan: RedactionPlan) -> None:
    """Refuse an analysis of another clip, models or settings, or unknown ids, before work."""
    from privmask.daemon.pipeline.analysis import (
        AnalysisError,
        check_ids,
        check_usable,
        detection_settings,
        sha256_of,
    )
    from privmask.daemon.pipeline.setup import model_list

    if not source.is_file():
        raise UsageError(f"{source}: no such file")
    try:
        detection = detection_settings(plan, model_list(plan))
        check_usable(analysis, sha256_of(source), detection, folder)
        check_ids(analysis, plan.selection.subjects, folder)
    except (AnalysisError, PlanError) as exc:
        raise UsageError(str(exc)) from None


def redact_clip(
    source: Path,
    output: Path,
    plan: RedactionPlan,
    encoder: EncoderSettings,
    models_dir: str | None,
    report: Path | None,
    quiet: bool,
    overwrite: bool,
    analysis: Analysis | None = None,
) -> None:
    """Redact with a progress bar on a terminal, then say in one line what was masked.
    `overwrite`: replace an OUTPUT or report that exists (or appears while we work);
    `analysis`: its tracks, checked for this clip, instead of detecting."""
    from privmask.daemon.cli.progress import progress_bar
    from privmask.daemon.pipeline.offline import redact

    with progress_bar(enabled=not quiet and sys.stderr.isatty()) as progress:
        result = redact(
            source, output, plan, encoder, models_dir, progress, report, overwrite, analysis
        )
    masked = sum(plan.selection.masks(s.subject_id) for s in result.subjects)
    kept = len(result.subjects) - masked
    visible = f" ({kept} kept visible)" if kept else ""
    print(
        f"{output}: {result.frames} frames, {masked} subjects masked{visible}, "
        f"{result.masked_area:.1%} of the picture masked on average",
        file=sys.stderr,
    )


def _check_paths(source: Path, output: Path, report: Path | None, force: bool) -> None:
    """Refuse outputs that would overwrite the source, each other, a folder or (without
    --force) an existing file, before any work: a result is never silently replaced."""
    if output.resolve() == source.resolve():
        raise UsageError("OUTPUT must not be INPUT: sources are never overwritten")
    if report is not None and report.resolve() in (source.resolve(), output.resolve()):
        raise UsageError("--report must name a file other than INPUT and OUTPUT")
    if output.suffix.lower() not in CONTAINERS and not output.is_dir():
        raise UsageError(f"{output}: OUTPUT must end in {', '.join(CONTAINERS)}")
    for path in (output, report):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise UsageError(f"{path.parent}: output folder does not exist")
        if path.is_dir():
            raise UsageError(f"{path}: is a folder; name a file in it")
        if (path.exists() or path.is_symlink()) and not force:
            raise UsageError(f"{path}: already exists (--force replaces it)")
