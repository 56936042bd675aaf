"""`privmask verify PACKAGE`: is this package what the site made, unchanged?

For a recipient (a court, the police, an insurer), not only the site: with `--pubkey` it
needs no configuration and no state folder. It checks the zip and its encryption, the site
signature over the manifest, the video against the manifest's sha256 and size, and, where
the escrow store is at hand, that the escrow copy the manifest names is there unchanged.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from privmask.adapters.minisign import PublicKey
    from privmask.daemon.config import Config

_ESCROW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.age")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verify = commands.add_parser(
        "verify",
        help="check that a package is the site's, unchanged (no config needed)",
        description="Check a package: it opens with the password and every entry is "
        "encrypted; its manifest.json carries the site's signature (manifest.json.minisig); "
        "the video is the one the manifest describes (sha256 and size); and, when the escrow "
        "store is reachable, the escrow copy the manifest names is there unchanged. One line "
        "per check; exit 1 if any fails. The site's public key comes from --pubkey (from the "
        "site: privmask keys show), else from --config/--state. The same check without "
        "privmask: 7z x PACKAGE, then minisign -Vm manifest.json -P KEY and sha256sum video.*",
    )
    verify.set_defaults(run=run_verify)
    verify.add_argument("package", type=Path, metavar="PACKAGE", help="the .zip package")
    verify.add_argument(
        "--password-file", type=Path, metavar="FILE",
        help="the package password (else asked for on the terminal)",
    )  # fmt: skip
    verify.add_argument(
        "--pubkey", metavar="KEY",
        help="the site's public key: the base64 line (RW...) or a minisign .pub file",
    )  # fmt: skip
    verify.add_argument(
        "--escrow", type=Path, metavar="DIR",
        help="the escrow store, to check the escrow copy (default: the config's, if reachable)",
    )  # fmt: skip
    options.add_config(verify)


def run_verify(args: argparse.Namespace) -> int:
    from privmask.adapters.package import PackageError, check_package

    config = _site(args)
    public = _public_key(args.pubkey, config)
    store = _escrow_store(args.escrow, config)
    password = _password(args.password_file)
    try:
        checked = check_package(args.package, password, public)
    except PackageError as exc:
        print(f"FAILED  {exc}")
        return EXIT_FAILED
    print(f"ok      package: {args.package} opens with the password, every entry encrypted")
    print(f"ok      signature: manifest.json signed by site key {checked.signed_by}")
    print(
        f"ok      video: sha256 {checked.video_sha256}, {checked.video_bytes} bytes, "
        "as the manifest says"
    )
    good, line = _escrow_line(checked.manifest.get("escrow"), store, config)
    print(line)
    return EXIT_OK if good else EXIT_FAILED


def _site(args: argparse.Namespace) -> Config | None:
    if args.config is None and args.state is None:
        return None
    from privmask.daemon.config import load_config

    return load_config(args.config, state=args.state)


def _public_key(given: str | None, config: Config | None) -> PublicKey:
    if given is None:
        if config is None:
            raise UsageError(
                "give the site's public key with --pubkey (the site prints it with: privmask "
                "keys show), or the site's --config or --state"
            )
        from privmask.daemon.custody.sitekey import site_public_key

        return site_public_key(config)
    from privmask.adapters.minisign import PublicKey, SignatureError

    path = Path(given)
    text = given
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--pubkey {given}: cannot read it ({exc})") from None
    try:
        return PublicKey.parse(text)
    except SignatureError as exc:
        raise UsageError(f"--pubkey: {exc}") from None


def _escrow_store(given: Path | None, config: Config | None) -> Path | None:
    if given is not None:
        if not given.is_dir():
            raise UsageError(f"--escrow {given} is not a folder")
        return given
    if config is not None and config.escrow_store.is_dir():
        return config.escrow_store
    return None


def _password(path: Path | None) -> bytes:
    from privmask.daemon.secrets import SecretSource, read_secret

    if path is not None:
        password = read_secret(SecretSource("file", str(path)))
    elif sys.stdin.isatty():
        password = getpass.getpass("package password: ").encode()
    else:
        raise UsageError(
            "give the package password with --password-file FILE (there is no terminal to ask on)"
        )
    if not password:
        raise UsageError("the package password is empty")
    return password


def _escrow_line(block: Any, store: Path | None, config: Config | None) -> tuple[bool, str]:
    """(passed, the line to print) for the escrow copy the manifest names."""
    if block is None:
        return True, "ok      escrow: none recorded (the job's rule named no custodians)"
    if not isinstance(block, dict) or not _ESCROW_NAME.fullmatch(str(block.get("file", ""))):
        return False, "FAILED  escrow: the manifest's escrow entry is not a plain file name"
    name, sha256 = block["file"], block.get("sha256")
    if store is None:
        return True, (
            f"skipped escrow: {name} not checked (no --escrow DIR, and no reachable store "
            "from --config/--state)"
        )
    from privmask.adapters.models import sha256_of

    copy = store / name
    try:
        found = sha256_of(copy)
    except FileNotFoundError:
        deleted = _deleted_by_retention(config, name.removesuffix(".age"))
        if deleted is not None:
            return True, f"ok      escrow: {name} was deleted by retention on {deleted} (journal)"
        return False, f"FAILED  escrow: {copy} is missing"
    except OSError as exc:
        return False, f"FAILED  escrow: {copy} cannot be read ({exc.strerror})"
    if found != sha256:
        return False, f"FAILED  escrow: {copy} is not the copy the manifest names (sha256 differs)"
    return True, f"ok      escrow: {copy} has the manifest's sha256"


def _deleted_by_retention(config: Config | None, job: str) -> str | None:
    """The day the journal says retention deleted this job's escrow copy, if it did."""
    if config is None or not config.journal_path.is_file():
        return None
    from privmask.daemon.journal import Journal

    with Journal(config.journal_path, upgrade=False) as journal:
        copy = journal.escrow(job)
    if copy is None or copy.deleted is None:
        return None
    return datetime.fromtimestamp(copy.deleted, UTC).strftime("%Y-%m-%d")
