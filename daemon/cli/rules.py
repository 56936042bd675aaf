"""`privmask rules check|explain`: validate rule files, and show which rule a job gets."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from privmask.daemon.errors import EXIT_FAILED, EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = commands.add_parser("rules", help="check rule files, explain which rule applies")
    rules.set_defaults(run=run)
    actions = rules.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate rule files (keys, types, polygons, secret references)",
        description="Exit code 0 when every file is valid (warnings allowed), 1 otherwise. "
        "Each problem is printed as FILE:LINE:COLUMN: error|warning: message.",
    )
    check.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    check.add_argument(
        "--no-secrets",
        action="store_true",
        help="skip the deployment checks: whether the password files, variables and "
        "credentials the rules name exist here (for checking rules away from the host)",
    )
    explain = actions.add_parser(
        "explain",
        help="show which rule applies to a job, and why",
        description="Match a job against the rules and print the winning rule, why every "
        "other rule lost or did not apply, and the redaction it gives.",
    )
    explain.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    explain.add_argument("--camera", help="camera id or name")
    explain.add_argument("--folder", help="the folder the clip arrived in")
    explain.add_argument("--file", help="the clip's file name")
    explain.add_argument(
        "--time", type=datetime.fromisoformat, metavar="YYYY-MM-DDTHH:MM", help="recording time"
    )


def run(args: argparse.Namespace) -> int:
    return check(args.paths, args.no_secrets) if args.action == "check" else explain(args)


def check(paths: list[Path], no_secrets: bool = False) -> int:
    from privmask.rules.files import RuleFileError
    from privmask.rules.ruleset import RuleSet, secret_problems

    empty = [p for p in paths if p.is_dir() and not RuleSet.from_paths([p]).rules]
    for folder in empty:  # "ok" for a folder that holds no rule would check nothing
        print(f"{folder}: no rule file (*.yaml, *.yml) in this folder", file=sys.stderr)
    if empty:
        return EXIT_FAILED
    try:
        ruleset = RuleSet.from_paths(paths)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        errors = sum(not p.warning for p in exc.problems)
        print(f"{errors} error(s)", file=sys.stderr)
        return EXIT_FAILED
    problems = [*ruleset.warnings, *([] if no_secrets else secret_problems(ruleset))]
    for problem in problems:
        print(problem, file=sys.stderr)
    errors = sum(not p.warning for p in problems)
    files = len({r.path for r in ruleset.rules})
    summary = f"{len(ruleset.rules)} rule(s) in {files} file(s), set {ruleset.digest[:12]}"
    if errors:
        print(f"{errors} error(s); {summary}", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: {summary}")
    return EXIT_OK


def explain(args: argparse.Namespace) -> int:
    from privmask.rules.match import Facts
    from privmask.rules.ruleset import RuleSet

    ruleset = RuleSet.from_paths(args.paths)
    job = Facts(camera=args.camera, folder=args.folder, file_name=args.file, when=args.time)
    decision = ruleset.decide(job)
    for reason in decision.reasons:
        print(reason)
    plan = decision.plan
    print("gives:")
    for target in plan.targets:
        print(
            f"  {target.target}: {target.style.value} {target.shape.value}, "
            f"padding {target.margin}, model {target.model or 'default'}"
        )
    for region in plan.regions:
        name = region.name or "(unnamed)"
        print(f"  region {name}: {region.style.value}, {len(region.points)} points")
    if plan.selection.mode != "all":
        print(f"  subjects: {plan.selection.mode} {sorted(plan.selection.subjects)}")
    output = decision.output
    if output.destination:
        print(f"  output: {output.destination}/{output.name_template}")
    print(f"rule set {decision.ruleset_hash[:12]}")
    return EXIT_OK
