"""Options that several commands share, defined once so they read and behave the same."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", metavar="DIR", help="model folder (also $PRIVMASK_MODELS)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_config(parser: argparse.ArgumentParser) -> None:
    """--config and --state: which daemon installation a command looks at."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration")
    parser.add_argument("--state", type=Path, metavar="DIR", help="journal and work folder")
