"""The `privmask` command line: one module per command in this package, dispatched from here.

Every error a user can cause ends in one line on stderr and a non-zero exit code: 2 for a
wrong command line, 1 for a file, model, rule or encoding problem. Never a traceback. A
reader that goes away (`privmask models list | head -1`) ends the command quietly with
141, the code of a process killed by SIGPIPE, as any other Unix tool would.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Sequence

from privmask.daemon import __version__
from privmask.daemon.cli import (
    analyze,
    audit,
    cameras,
    demo,
    keys,
    models,
    quarantine,
    redact,
    reveal,
    review,
    rules,
    run,
    sweep,
    verify,
    worker,
)
from privmask.daemon.errors import EXIT_FAILED, EXIT_USAGE, UsageError

COMMANDS = (
    redact,
    analyze,
    demo,
    run,
    quarantine,
    cameras,
    models,
    rules,
    reveal,
    audit,
    keys,
    verify,
    review,
    sweep,
    worker,
)
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# privmask's own hidden temporary names (adapters/files.temporary_name): an error names
# the file the user asked for, not the temporary one it was being written under
_TEMPORARY = re.compile(r"\.(?P<stem>.+)\.[0-9a-f]{8,}\.partial(?P<suffix>\.\w+)?")
# the errors a user can cause that end in their own message, by the module that defines
# them: each command imports only what it uses, and an error of a module never imported
# was never raised, so these are looked up among the modules loaded, not imported here
USER_ERRORS = (
    ("privmask.adapters.video", "VideoError"),
    ("privmask.adapters.models", "ModelError"),
    ("privmask.rules.plan", "PlanError"),
    ("privmask.rules.ruleset", "NoRuleApplies"),
    ("privmask.daemon.config", "ConfigError"),
    ("privmask.rules.secret", "SecretError"),
    ("privmask.adapters.package", "PackageError"),
    ("privmask.adapters.age", "AgeError"),
    ("privmask.daemon.custody.audit", "AuditError"),
    ("privmask.adapters.minisign", "SignatureError"),
    ("privmask.daemon.custody.reveal", "RevealError"),
    ("privmask.daemon.pipeline.analysis", "AnalysisError"),
    ("privmask.daemon.sweeps.source", "SourceError"),
    ("privmask.daemon.journal_schema", "JournalError"),
    ("privmask.daemon.review.queue", "ReviewError"),
)


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
        code = int(args.run(args))
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"privmask: error: {exc}\n")
    except Exception as exc:
        problems = _rule_file_problems(exc)
        if problems is not None:
            print("\n".join(str(p) for p in problems), file=sys.stderr)
        elif _is_user_error(exc):
            print(f"privmask: error: {exc}", file=sys.stderr)
        elif isinstance(exc, OSError):
            print(f"privmask: error: {describe_os_error(exc)}", file=sys.stderr)
        else:
            raise
    except KeyboardInterrupt:
        print("privmask: interrupted; nothing was written", file=sys.stderr)
        return 130
    return EXIT_FAILED


def _loaded(module: str, name: str) -> type[BaseException] | None:
    found = sys.modules.get(module)
    return None if found is None else getattr(found, name, None)


def _is_user_error(exc: Exception) -> bool:
    return any(
        error is not None and isinstance(exc, error)
        for error in (_loaded(module, name) for module, name in USER_ERRORS)
    )


def _rule_file_problems(exc: Exception) -> list[object] | None:
    """A rule file's problems, one a line, where `exc` is a RuleFileError."""
    error = _loaded("privmask.rules.files", "RuleFileError")
    if error is None or not isinstance(exc, error):
        return None
    return list(exc.problems)  # type: ignore[attr-defined]


def describe_os_error(exc: OSError) -> str:
    """`FILE: reason`, `SOURCE -> TARGET: reason` (a copy or rename), or the bare reason
    when the system named no file; hidden temporary names are shown as their targets."""
    names: list[str] = []
    for name in (exc.filename, exc.filename2):
        if name is None:
            continue
        shown = _shown(os.fsdecode(name) if isinstance(name, str | bytes) else str(name))
        if shown not in names:
            names.append(shown)
    reason = exc.strerror or str(exc)
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _shown(path: str) -> str:
    folder, _, name = path.rpartition("/")
    found = _TEMPORARY.fullmatch(name)
    if found is None:
        return path
    name = found["stem"] + (found["suffix"] or "")
    return f"{folder}/{name}" if folder else name


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's own flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
