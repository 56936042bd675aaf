"""`privmask models list|fetch|import`: the detector model files."""

from __future__ import annotations

import argparse
from pathlib import Path

from privmask.adapters import models
from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    model_cmd = commands.add_parser("models", help="list, fetch or import detector models")
    model_cmd.set_defaults(run=run)
    actions = model_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="known models and where each was found")
    options.add_models(listing)
    fetch = actions.add_parser("fetch", help="download models (connected sites)")
    fetch.add_argument("names", nargs="*", help="model names (default: the default models)")
    fetch.add_argument("--to", type=Path, help="target folder (default: the user's model store)")
    fetch.add_argument(
        "--mirror", metavar="URL", help="the site's own model mirror (also $PRIVMASK_MODEL_MIRROR)"
    )
    imp = actions.add_parser("import", help="add model files copied by hand (air-gapped sites)")
    imp.add_argument("files", nargs="+", type=Path)
    imp.add_argument("--to", type=Path, help="target folder (default: the user's model store)")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        dirs = models.search_dirs(args.models)
        for spec in models.REGISTRY.values():
            found = models.find(spec, dirs)
            where = str(found) if found else "not installed"
            print(f"{spec.name:15} {spec.detects.label:7} {spec.license:11} {where}")
            note = f"{spec.note} (default)" if spec.default else spec.note
            print(f"{'':15} {note}; sha256 {spec.sha256[:16]}...")
    elif args.action == "fetch":
        names = args.names or list(models.DEFAULT_MODEL.values())
        for name in names:
            print(f"{name}: {models.fetch(name, args.to, args.mirror)}")
    else:
        for file in args.files:
            spec, path = models.import_file(file, args.to)
            print(f"{spec.name}: {path}")
    return EXIT_OK
