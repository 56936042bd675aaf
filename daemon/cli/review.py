"""`privmask review add-user|remove-user|serve`: the reviewers and the review page;
`privmask review list|show|decide`: the review queue from a terminal (`review_queue.py`).

A password is read from the terminal without echo (twice), or from standard input with
`--password-stdin` (one line, for scripts); never from the command line, where other users
of the host can read it in the process list.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from privmask.daemon.review.settings import ReviewSpec

_NO_TERMINAL = "no terminal to read the password from; pipe it in with --password-stdin"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    review = commands.add_parser("review", help="reviewers and the review page")
    actions = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add-user",
        help="add a reviewer, or set a reviewer's password",
        description="Add a reviewer to the reviewers' file, or set a new password for one "
        "already there. The password is asked for on the terminal (not shown), or read as "
        "one line from standard input with --password-stdin. The file keeps only a salted "
        "scrypt hash and is written mode 600.",
    )
    add.add_argument("name", help="the reviewer's login name")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    _add_users(add)
    add.set_defaults(run=run_add_user)
    remove = actions.add_parser("remove-user", help="remove a reviewer")
    remove.add_argument("name", help="the reviewer's login name")
    _add_users(remove)
    remove.set_defaults(run=run_remove_user)
    serve = actions.add_parser(
        "serve",
        help="serve the review page",
        description="Serve the review page until Ctrl-C or SIGTERM, on the config's "
        "review.listen (default 127.0.0.1:8470), for the reviewers of the users file.",
    )
    serve.add_argument("--listen", metavar="HOST:PORT", help="address to listen on")
    _add_users(serve)
    serve.set_defaults(run=run_serve)
    _register_queue(actions)


def _register_queue(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    listing = actions.add_parser("list", help="the clips waiting for review, oldest first")
    options.add_config(listing)
    listing.set_defaults(run=run_list)
    show = actions.add_parser(
        "show",
        help="one waiting clip's subjects and contact sheet",
        description="List the subjects of a clip waiting for review (id, what was seen, "
        "when) and print the path of its contact sheet. The sheet shows unmasked faces: "
        "this command is recorded in the audit log as a view of them.",
    )
    show.add_argument("job", metavar="JOB", help="the job number, as `review list` shows it")
    options.add_config(show)
    show.set_defaults(run=run_show)
    decide = actions.add_parser(
        "decide",
        help="approve or reject a waiting clip",
        description="Decide on a clip waiting for review. Approved: its package is made with "
        "every subject masked except those of --keep-visible, and the --region areas masked "
        "besides the rule's own; rejected: no package, and its source is kept as it is. "
        "The decision, its reason and you (the logged-in user) are recorded in the audit log "
        "and the journal. A running daemon takes an approved clip on; else its next start.",
    )
    decide.add_argument("job", metavar="JOB", help="the job number, as `review list` shows it")
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--approve", action="store_true", help="make the package")
    choice.add_argument("--reject", action="store_true", help="make no package")
    decide.add_argument("--keep-visible", metavar="IDS",
                        help="comma list of subject ids left unmasked (default: none)")  # fmt: skip
    decide.add_argument("--region", action="append", metavar="X1,Y1,X2,Y2,...",
                        help="an area masked on every frame, in pixels of the clip's frame "
                        "(or fractions 0..1); repeatable")  # fmt: skip
    decide.add_argument("--reason", required=True, help="why (one line, recorded)")
    options.add_config(decide)
    decide.set_defaults(run=run_decide)


def _add_users(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument(
        "--users",
        type=Path,
        metavar="FILE",
        help="the reviewers' file (default: the config's review.users, else review-users "
        "in the state folder)",
    )


def run_list(args: argparse.Namespace) -> int:
    from privmask.daemon.cli.review_queue import run_list

    return run_list(args)


def run_show(args: argparse.Namespace) -> int:
    from privmask.daemon.cli.review_queue import run_show

    return run_show(args)


def run_decide(args: argparse.Namespace) -> int:
    from privmask.daemon.cli.review_queue import run_decide

    return run_decide(args)


def run_add_user(args: argparse.Namespace) -> int:
    from privmask.daemon.review import users

    _, path = _review_config(args)
    try:
        users.check_name(args.name)
        password = _read_stdin() if args.password_stdin else _ask(args.name)
        users.check_new_password(password)
    except users.ReviewError as exc:
        raise UsageError(str(exc)) from None
    return _reported(lambda: _add(path, args.name, password))


def _add(path: Path, name: str, password: str) -> None:
    from privmask.daemon.review import users

    replaced = users.add_user(path, name, password)
    print(f"{'password changed for' if replaced else 'added'} reviewer {name} in {path}")


def run_remove_user(args: argparse.Namespace) -> int:
    from privmask.daemon.review import users

    _, path = _review_config(args)

    def remove() -> None:
        users.remove_user(path, args.name)
        print(f"removed reviewer {args.name} from {path}")

    return _reported(remove)


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from privmask.daemon.config import load_config
    from privmask.daemon.logs import configure
    from privmask.daemon.review import server, users
    from privmask.daemon.review.journal_queue import readable_signer
    from privmask.daemon.review.serving import page_settings
    from privmask.daemon.review.settings import parse_listen
    from privmask.daemon.review.web import create_app

    spec, path = _review_config(args)
    try:
        host, port = parse_listen(args.listen or spec.listen)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    config = load_config(args.config, state=args.state)
    settings = dataclasses.replace(page_settings(config, host, readable_signer(config)), users=path)

    def start() -> None:
        if not users.read_users(path):
            raise users.ReviewError(
                f"{path}: no reviewers yet; add one with privmask review add-user NAME"
            )
        sock = server.bind(host, port)
        configure(json=not sys.stderr.isatty())
        shown = f"[{host}]" if ":" in host else host
        print(f"review page on http://{shown}:{port}/ (Ctrl-C stops it)", file=sys.stderr)
        server.serve(create_app(settings), sock)

    return _reported(start)


def _review_config(args: argparse.Namespace) -> tuple[ReviewSpec, Path]:
    """The config's review settings (or their defaults) and the reviewers' file: --users,
    else the config's `review.users`, else `review-users` in the state folder."""
    from privmask.daemon.config import load_config
    from privmask.daemon.review.settings import USERS_FILE_NAME, ReviewSpec

    config = load_config(args.config, state=args.state)
    spec = config.review or ReviewSpec()
    if args.users is not None:
        return spec, Path(args.users)
    if spec.users is not None:
        return spec, Path(spec.users)
    return spec, config.state / USERS_FILE_NAME


def _reported(action: Callable[[], None]) -> int:
    """Run `action`; a reviewers' file or listening problem is one line and exit code 1."""
    from privmask.daemon.review.users import ReviewError

    try:
        action()
    except ReviewError as exc:
        print(f"privmask: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _read_stdin() -> str:
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def _ask(name: str) -> str:
    import getpass

    try:  # getpass would fall back to echoing stdin when there is no terminal
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise UsageError(_NO_TERMINAL) from None
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ; nothing was changed")
    return first
