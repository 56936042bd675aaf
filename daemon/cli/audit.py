"""`privmask audit show` and `privmask audit verify`: the record of every access to originals.

`show` reads the log as it is; `verify` checks that it is the log as written: every entry
follows from the one before it (a sha256 chain), and every signed checkpoint verifies with
the site's public key and matches the entry it pins.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_FAILED, EXIT_OK

_CHECKPOINT = re.compile(r"(\d{12})\.txt")
_COLUMNS = ("seq", "time", "actor", "action", "job", "reason")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = commands.add_parser(
        "audit", help="the tamper-evident record of escrow, reveals and deletions"
    )
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="list the audit log's entries",
        description="List the audit log: who escrowed, revealed, refused or deleted which "
        "job's original, when and why. Works whether or not the daemon runs.",
    )
    show.set_defaults(run=run_show)
    show.add_argument("--job", metavar="JOB", help="only this job's entries (123 or 000123)")
    show.add_argument("--json", action="store_true", help="a JSON array of whole entries")
    options.add_config(show)

    verify = actions.add_parser(
        "verify",
        help="check that no entry was edited, removed, inserted or reordered",
        description="Check the audit log's hash chain and its signed checkpoints with the "
        "site's public key. Exit 0 when intact; otherwise exit 1 with one line per problem. "
        "A checkpoint can also be checked without privmask: minisign -Vm "
        "STATE/audit/checkpoints/N.txt -P <site public key> (privmask keys show).",
    )
    verify.set_defaults(run=run_verify)
    options.add_config(verify)


def run_show(args: argparse.Namespace) -> int:
    from privmask.daemon.config import load_config
    from privmask.daemon.custody.audit import AuditLog

    config = load_config(args.config, state=args.state)
    job = _job(args.job) if args.job else None
    entries = list(AuditLog(config.audit_folder, None).entries(job))
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not entries:
        where = f" for job {job}" if job else ""
        print(f"no audit entries{where} in {config.audit_folder}")
        return EXIT_OK
    print(_table([[_cell(entry.get(c)) for c in _COLUMNS] for entry in entries]))
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    from privmask.daemon.config import load_config
    from privmask.daemon.custody.audit import CHECKPOINTS, LOG_NAME, verify_log
    from privmask.daemon.custody.sitekey import site_public_key

    config = load_config(args.config, state=args.state)
    folder = config.audit_folder
    if not (folder / LOG_NAME).exists():
        print(
            f"privmask: error: no audit log in {folder}; the daemon writes one from its first "
            "start, so if it has run there, the log was removed",
            file=sys.stderr,
        )
        return EXIT_FAILED
    public = site_public_key(config)
    report = verify_log(folder, public)
    if report.problems:
        for problem in report.problems:
            print(f"FAILED: {problem}")
        return EXIT_FAILED
    newest = _newest_checkpoint(folder / CHECKPOINTS)
    signed = (
        f"newest checkpoint at entry {newest} signed by {public.key_id_hex}"
        if newest
        else "no signed checkpoint yet"
    )
    print(f"{report.entries} entries, {report.checkpoints} checkpoints, chain intact, {signed}")
    for note in report.notes:
        print(f"note: {note}")
    return EXIT_OK


def _job(text: str) -> str:
    return f"{int(text):06d}" if text.strip().isdigit() else text.strip()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return " ".join(str(value).split())


def _table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last (the reason) runs free."""
    header = [c.upper() for c in _COLUMNS]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _newest_checkpoint(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    found = [_CHECKPOINT.fullmatch(p.name) for p in folder.iterdir()]
    return max((int(m.group(1)) for m in found if m), default=0)
