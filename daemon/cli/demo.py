"""`privmask demo`: make a short clip with moving faces, redact it, and show what was masked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from privmask.adapters.video import EncoderSettings
from privmask.daemon.cli import options
from privmask.daemon.cli.redact import redact_clip
from privmask.daemon.errors import EXIT_OK
from privmask.rules.plan import RedactionPlan, TargetPlan

# what the demo masks: every face and every person, with the defaults of `privmask redact`
DEMO_PLAN = RedactionPlan(targets=(TargetPlan("face"), TargetPlan("person")))


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = commands.add_parser(
        "demo",
        help="make a short clip with faces, redact it, and show what was masked",
        description="Write DIR/input.mp4 (a synthetic scene with moving faces), redact it to "
        "DIR/redacted.mp4 with face and person detection, and write DIR/report.json.",
    )
    demo.set_defaults(run=run)
    demo.add_argument("dir", nargs="?", type=Path, default=Path("privmask-demo"), metavar="DIR")
    options.add_models(demo)
    options.add_quiet(demo)


def run(args: argparse.Namespace) -> int:
    from privmask.daemon.testing import write_scene

    args.dir.mkdir(parents=True, exist_ok=True)
    source = args.dir / "input.mp4"
    scene = write_scene(source, seconds=6.0)
    faces = {target_id for _, target_id, _ in scene.visible("face")}
    print(f"{source}: {scene.frame_count} frames with {len(faces)} moving faces", file=sys.stderr)
    redact_clip(
        source,
        args.dir / "redacted.mp4",
        DEMO_PLAN,
        EncoderSettings(),
        args.models,
        args.dir / "report.json",
        args.quiet,
        overwrite=True,  # a demo run again makes its files again
    )
    return EXIT_OK
