"""Regenerate the key tables of `docs/rules.md` and `docs/config.md` from the schemas.

    python -m privmask.daemon.docs            # from the repository root: rewrite what is stale
    python -m privmask.daemon.docs --check    # change nothing; exit 1 if a table is stale

Only the marked sections are written (see `privmask.rules.docs`); the prose around them is
kept as it is. `tests/rules/test_docs.py` fails when a committed table is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privmask.daemon.config import ConfigFile
from privmask.rules.docs import RULES_SECTIONS, Part, fill, render

COMMAND = "python -m privmask.daemon.docs"
CONFIG_SECTIONS: dict[str, tuple[Part, ...]] = {"config keys": (Part(ConfigFile),)}
DOCS = {"rules.md": RULES_SECTIONS, "config.md": CONFIG_SECTIONS}


def generate(folder: Path) -> dict[Path, str]:
    """Each doc of `folder` as it should read, its tables rendered from the schemas."""
    result = {}
    for name, sections in DOCS.items():
        path = folder / name
        tables = {section: render(parts) for section, parts in sections.items()}
        result[path] = fill(path.read_text(encoding="utf-8"), tables)
    return result


def stale(folder: Path) -> dict[Path, str]:
    """The docs whose tables differ from the schemas, with the text they should have."""
    return {p: t for p, t in generate(folder).items() if p.read_text(encoding="utf-8") != t}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="regenerate the docs' key tables")
    parser.add_argument("folder", nargs="?", type=Path, default=Path("docs"), help="(docs)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a table is stale")
    args = parser.parse_args(argv)
    try:
        outdated = stale(args.folder)
    except (OSError, ValueError) as exc:  # a doc missing, or its markers out of step
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return 2
    for path, text in outdated.items():
        if args.check:
            print(f"{path}: key tables are stale; run: {COMMAND}", file=sys.stderr)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"{path}: key tables regenerated")
    return 1 if args.check and outdated else 0


if __name__ == "__main__":
    sys.exit(main())
