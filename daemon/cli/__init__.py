"""The `privmask` command line: one module per command in this package, dispatched from here.

Every error a user can cause ends in one line on stderr and a non-zero exit code: 2 for a
wrong command line, 1 for a file, model, rule or encoding problem. Never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from privmask.adapters.models import ModelError
from privmask.adapters.package import PackageError
from privmask.adapters.video import VideoError
from privmask.daemon import __version__
from privmask.daemon.cli import cameras, demo, models, redact, rules, run
from privmask.daemon.config import ConfigError
from privmask.daemon.errors import EXIT_FAILED, EXIT_USAGE, UsageError
from privmask.daemon.secrets import SecretError
from privmask.rules.files import RuleFileError
from privmask.rules.plan import PlanError
from privmask.rules.ruleset import NoRuleApplies

COMMANDS = (redact, demo, run, cameras, models, rules)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privmask",
        description="Redact faces, people, licence plates and fixed regions in video.",
    )
    parser.add_argument("--version", action="version", version=f"privmask {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def _terminate(signum: int, frame: object) -> None:
    # unwind like Ctrl-C, so that temporary files are removed on the way out
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.run(args))
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"privmask: error: {exc}\n")
    except RuleFileError as exc:
        print("\n".join(str(p) for p in exc.problems), file=sys.stderr)
    except (VideoError, ModelError, PlanError, NoRuleApplies) as exc:
        print(f"privmask: error: {exc}", file=sys.stderr)
    except (ConfigError, SecretError, PackageError) as exc:
        print(f"privmask: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"privmask: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("privmask: interrupted; nothing was written", file=sys.stderr)
        return 130
    return EXIT_FAILED

