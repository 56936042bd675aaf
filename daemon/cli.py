"""The `privmask` command line.

Every error a user can cause ends in one line on stderr and a non-zero exit code: 2 for a
wrong command line, 1 for a file, model or encoding problem. Never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privmask.adapters import models
from privmask.adapters.video import EncoderSettings, VideoError
from privmask.daemon import __version__
from privmask.rules.plan import (
    DEFAULT_PADDING,
    TARGETS,
    MaskShape,
    MaskStyle,
    PlanError,
    RedactionPlan,
    Region,
    TargetPlan,
    parse_enum,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command line itself is wrong."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privmask",
        description="Redact faces, people, licence plates and fixed regions in video.",
    )
    parser.add_argument("--version", action="version", version=f"privmask {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    redact = commands.add_parser(
        "redact",
        help="write a redacted copy of one clip",
        description="Write a redacted copy of INPUT to OUTPUT. OUTPUT appears only when it "
        "is complete and verified; on any error nothing is left there.",
    )
    redact.add_argument("input", type=Path, metavar="INPUT")
    redact.add_argument("output", type=Path, metavar="OUTPUT", help="e.g. out.mp4 (.mp4/.mov/.mkv)")
    redact.add_argument(
        "--detect",
        default="face",
        metavar="CLASSES",
        help="what to find and mask: a comma list of face, person, plate; or none "
        "(static regions only, no detector runs). Default: face",
    )
    redact.add_argument("--style", default="blur", help="blur | pixelate | solid (default blur)")
    redact.add_argument("--shape", default="box", help="box | ellipse (default box)")
    redact.add_argument(
        "--padding",
        type=float,
        default=None,
        help="extra margin around each box, as a fraction of its size "
        "(default: face 0.25, person 0.05, plate 0.15)",
    )
    redact.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="X1,Y1,X2,Y2,...",
        help="a fixed polygon masked on every frame (repeatable); pixels, or fractions "
        "0..1 of the frame; two points give a rectangle",
    )
    redact.add_argument("--region-style", default="solid", help="style of fixed regions (solid)")
    redact.add_argument("--min-score", type=float, default=None, help="detector score threshold")
    redact.add_argument(
        "--face-model", default="", help="face model (default yunet; or centerface)"
    )
    redact.add_argument(
        "--person-model", default="", help="person model (default yolox-nano; or light-person)"
    )
    redact.add_argument(
        "--detect-every",
        type=int,
        default=3,
        metavar="N",
        help="run detectors on every N-th frame; tracking covers the frames between (default 3)",
    )
    redact.add_argument(
        "--hold", type=float, default=1.0, metavar="S", help="bridge detector gaps up to S seconds"
    )
    redact.add_argument("--report", type=Path, metavar="FILE.json", help="write a JSON report")
    redact.add_argument("--models", metavar="DIR", help="model folder (also $PRIVMASK_MODELS)")
    redact.add_argument("--codec", default="h264", help="h264 (default) or h265")
    redact.add_argument("--crf", type=int, default=20, help="quality: lower is better (default 20)")
    redact.add_argument("--preset", default="veryfast", help="x264/x265 speed preset (veryfast)")
    redact.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = commands.add_parser(
        "demo",
        help="make a short clip with faces, redact it, and show what was masked",
        description="Write DIR/input.mp4 (a synthetic street scene with moving faces), redact "
        "it to DIR/redacted.mp4 with face and person detection, and write DIR/report.json.",
    )
    demo.add_argument("dir", nargs="?", type=Path, default=Path("privmask-demo"), metavar="DIR")
    demo.add_argument("--models", metavar="DIR", help="model folder (also $PRIVMASK_MODELS)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")

    model_cmd = commands.add_parser("models", help="list, fetch or import detector models")
    model_sub = model_cmd.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = model_sub.add_parser("list", help="known models and where each was found")
    listing.add_argument("--models", metavar="DIR")
    fetch = model_sub.add_parser("fetch", help="download models (connected sites)")
    fetch.add_argument("names", nargs="*", help="model names (default: the default models)")
    fetch.add_argument("--to", type=Path, help="target folder (default: the user's model store)")
    fetch.add_argument(
        "--mirror", metavar="URL", help="the site's own model mirror (also $PRIVMASK_MODEL_MIRROR)"
    )
    imp = model_sub.add_parser("import", help="add model files copied by hand (air-gapped sites)")
    imp.add_argument("files", nargs="+", type=Path)
    imp.add_argument("--to", type=Path, help="target folder (default: the user's model store)")
    return parser


def plan_from_args(args: argparse.Namespace) -> RedactionPlan:
    style = parse_enum(MaskStyle, args.style, "--style")
    shape = parse_enum(MaskShape, args.shape, "--shape")
    names = [n.strip().lower() for n in args.detect.split(",") if n.strip()]
    if names == ["none"]:
        names = []
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not args.detect.strip():
        raise PlanError(f"--detect takes {', '.join(TARGETS)} or none, got {args.detect!r}")
    chosen_model = {"face": args.face_model, "person": args.person_model, "plate": ""}
    targets = tuple(
        TargetPlan(
            target=name,
            model=chosen_model[name],
            min_score=args.min_score,
            padding=DEFAULT_PADDING[name] if args.padding is None else args.padding,
            style=style,
            shape=shape,
        )
        for name in names
    )
    regions = tuple(
        Region.parse(text, name=f"region {i + 1}") for i, text in enumerate(args.region)
    )
    if not targets and not regions:
        raise PlanError("nothing to mask: --detect none needs at least one --region")
    return RedactionPlan(
        targets=targets,
        regions=regions,
        region_style=parse_enum(MaskStyle, args.region_style, "--region-style"),
        detect_every=args.detect_every,
        hold_seconds=args.hold,
    )


def encoder_from_args(args: argparse.Namespace) -> EncoderSettings:
    codecs = {"h264": "libx264", "h265": "libx265", "hevc": "libx265"}
    if args.codec not in codecs:
        raise PlanError(f"--codec must be h264 or h265, got {args.codec!r}")
    return EncoderSettings(codec=codecs[args.codec], crf=args.crf, preset=args.preset)


def run_redact(args: argparse.Namespace) -> int:
    from privmask.daemon.pipeline import redact, write_report
    from privmask.daemon.progress import progress_bar

    try:
        plan = plan_from_args(args)
        encoder = encoder_from_args(args)
    except (PlanError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.input.resolve() == args.output.resolve():
        raise UsageError("OUTPUT must not be INPUT: sources are never overwritten")
    if not args.output.parent.is_dir():
        raise UsageError(f"{args.output.parent}: output folder does not exist")
    with progress_bar(enabled=not args.quiet and sys.stderr.isatty()) as progress:
        result = redact(args.input, args.output, plan, encoder, args.models, progress)
    if args.report:
        write_report(result, plan, args.report)
    tracks = len(result.tracks)
    print(
        f"{args.output}: {result.frames} frames, {tracks} tracked targets masked, "
        f"{result.masked_area:.1%} of the picture masked on average",
        file=sys.stderr,
    )
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from privmask.daemon.testing import write_scene

    args.dir.mkdir(parents=True, exist_ok=True)
    source = args.dir / "input.mp4"
    scene = write_scene(source, seconds=6.0)
    faces = {target_id for _, target_id, _ in scene.visible("face")}
    print(f"{source}: {scene.frame_count} frames with {len(faces)} moving faces", file=sys.stderr)
    argv = ["redact", str(source), str(args.dir / "redacted.mp4"), "--detect", "face,person"]
    argv += ["--report", str(args.dir / "report.json")]
    argv += ["--models", args.models] if args.models else []
    argv += ["--quiet"] if args.quiet else []
    return run_redact(build_parser().parse_args(argv))


def run_models(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        dirs = models.search_dirs(args.models)
        for spec in models.REGISTRY.values():
            found = models.find(spec, dirs)
            where = str(found) if found else "not installed"
            print(f"{spec.name:15} {spec.detects.label:7} {spec.license:11} {where}")
            print(f"{'':15} {spec.note}; sha256 {spec.sha256[:16]}...")
        return EXIT_OK
    if args.models_command == "fetch":
        names = args.names or list(dict.fromkeys(models.DEFAULT_MODEL.values()))
        for name in names:
            print(f"{name}: {models.fetch(name, args.to, args.mirror)}")
        return EXIT_OK
    for file in args.files:
        spec, path = models.import_file(file, args.to)
        print(f"{spec.name}: {path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "redact":
            return run_redact(args)
        if args.command == "demo":
            return run_demo(args)
        return run_models(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"privmask: error: {exc}\n")
    except (VideoError, models.ModelError, PlanError) as exc:
        print(f"privmask: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"privmask: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("privmask: interrupted; nothing was written", file=sys.stderr)
        return 130
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
