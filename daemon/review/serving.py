"""The review page as `privmask run` and `privmask review serve` set it up: the config's
`review` settings, its reviewers' file, and the daemon's queue behind it."""

from __future__ import annotations

import socket

import structlog

from privmask.adapters.minisign import SecretKey
from privmask.daemon.config import Config, ConfigError
from privmask.daemon.review import server, users
from privmask.daemon.review.guard import LOOPBACK_HOSTS
from privmask.daemon.review.journal_queue import JournalReviewQueue
from privmask.daemon.review.settings import ReviewSpec, is_loopback, parse_listen
from privmask.daemon.review.web import ReviewSettings, create_app

log = structlog.get_logger("privmask.review")


def page_settings(config: Config, host: str, signer: SecretKey | None) -> ReviewSettings:
    """The page's settings for a daemon's config, listening on `host`: loopback host names
    only on a loopback address (no DNS rebinding), the journal's review queue."""
    spec = config.review or ReviewSpec()
    return ReviewSettings(
        users=config.review_users,
        idle_seconds=spec.session_idle_minutes * 60,
        max_seconds=spec.session_max_hours * 3600,
        allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None,
        queue=JournalReviewQueue(config, signer),
    )


def listen(config: Config) -> tuple[str, socket.socket]:
    """The daemon's page socket, bound before anything else starts: a port in use is one
    ConfigError line (exit 1), never a traceback."""
    spec = config.review or ReviewSpec()
    host, port = parse_listen(spec.listen)  # checked when the config was read
    try:
        return host, server.bind(host, port)
    except users.ReviewError as exc:
        raise ConfigError(f"review.listen: {exc}") from None


def start(config: Config, host: str, sock: socket.socket, signer: SecretKey) -> server.ServerThread:
    """Serve the page from a thread beside the daemon; `stop()` it at shutdown."""
    try:  # the page still starts: reviewers can be added while it runs
        if not users.read_users(config.review_users):
            log.warning("review_no_reviewers", users=str(config.review_users))
    except users.ReviewError as exc:
        log.warning("review_no_reviewers", reason=str(exc))
    page = server.ServerThread(create_app(page_settings(config, host, signer)), sock)
    try:
        page.start()
    except users.ReviewError as exc:
        sock.close()
        raise ConfigError(f"review page: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    log.info("review_page", url=f"http://{shown}:{sock.getsockname()[1]}/")
    return page
