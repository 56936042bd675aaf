"""`privmask keys show`: the site's public key, to hand to courts, police and partners."""

from __future__ import annotations

import argparse
import sys

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="the site's signing key, for those who verify")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the site's public key (a minisign .pub file)",
        description="Print the public half of the site's Ed25519 signing key as a minisign "
        "public key file. It signs every package's manifest and the audit log's checkpoints; "
        "whoever holds it can check that a package came from this site unchanged, with "
        "privmask verify or with the standalone minisign tool. Save the output as "
        "privmask.pub (privmask keys show > privmask.pub; the hint on how to check a "
        "package goes to stderr) and hand it over by a channel the recipient trusts.",
    )
    show.set_defaults(run=run_show)
    options.add_config(show)


def run_show(args: argparse.Namespace) -> int:
    from privmask.daemon.config import load_config
    from privmask.daemon.custody.sitekey import site_public_key

    public = site_public_key(load_config(args.config, state=args.state))
    print(public.to_text(), end="", flush=True)  # before the hint, wherever both go
    print(
        "to check a package's manifest (unzipped with the package password, e.g. 7z x): "
        f"minisign -Vm manifest.json -P {public.base64}",
        file=sys.stderr,
    )
    return EXIT_OK
