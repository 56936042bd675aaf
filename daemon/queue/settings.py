"""The `queue:` section of the configuration: where the broker is and how jobs travel.

Without it `privmask run` redacts on its own worker processes. With it, the daemon sends
each job to RabbitMQ and `privmask worker` processes on other machines take them. The
broker's password is a secret reference (file, environment variable, systemd credential),
never part of the URL, so it never reaches a log line or a process listing.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from privmask.adapters import urls
from privmask.daemon.secrets import read_secret
from privmask.rules.base import StrictModel
from privmask.rules.schema import SecretRef
from privmask.rules.secret import SecretSource

DEFAULT_QUEUE = "privmask.jobs"


class QueueSpec(StrictModel):
    broker: str = Field(
        description="the RabbitMQ broker, `amqp://USER@HOST[:PORT]/VHOST` (`amqps://` for TLS, "
        "checked against the system's CA store), without the password (see `password`)",
    )
    password: SecretRef | None = Field(
        default=None,
        description="the broker user's password: exactly one of `file`, `env`, `credential`; "
        "none: the URL's user has none (a broker on the same host)",
    )
    name: str = Field(
        default=DEFAULT_QUEUE,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="the job queue (a quorum queue); its reports and dead letters use this "
        "name with `.reports` and `.dead` appended; one name per daemon",
    )
    delivery_limit: int = Field(
        default=3,
        ge=1,
        le=20,
        description="deliveries of one job message before RabbitMQ gives up on it (a worker "
        "that died on it each time): it is then dead-lettered and the daemon counts a failed "
        "try, quarantining the clip after `retry.max_attempts`",
    )
    backlog: int = Field(
        default=8,
        ge=1,
        le=10_000,
        description="jobs waiting in the queue before the daemon holds the next back in its "
        "journal (where `privmask status` shows them and a rule change still applies)",
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="jobs one `privmask worker` runs at once, each in its own process "
        "(flag `--concurrency`); about one per two cores",
    )
    alive_seconds: float = Field(
        default=30.0,
        ge=0.5,
        le=600,
        description="how often each worker tells the daemon it is there (`privmask status` "
        "calls a worker not heard from for three times this long silent); the same on the "
        "daemon and its workers",
    )
    recorder_chunks: Literal["local", "queue"] = Field(
        default="local",
        description="who redacts the chunks a sweep fetches from a recorder (kept in the "
        "daemon host's `state/sweeps`): `local`, the daemon's own workers; `queue`, the "
        "workers, which must then see that folder (export it, map it with `paths`)",
    )
    paths: dict[str, str] = Field(
        default_factory=dict,
        description="for workers: where folders the daemon names (inboxes, archives, outbox, "
        "escrow store, rule destinations) are mounted on this machine, e.g. "
        "`{/srv/privmask/inbox: /mnt/nvr/inbox}`; a folder not listed is read at the same path",
    )

    @field_validator("broker")
    @classmethod
    def _plain_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("expected amqp://USER@HOST[:PORT]/VHOST or amqps://...")
        try:
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError:
            raise ValueError("the port must be a number 1..65535") from None
        if parts.password is not None:
            raise ValueError("the broker URL must not hold the password: use `password`")
        return url

    @field_validator("paths")
    @classmethod
    def _absolute(cls, paths: dict[str, str]) -> dict[str, str]:
        for there, here in paths.items():
            if not (PurePosixPath(there).is_absolute() and PurePosixPath(here).is_absolute()):
                raise ValueError(f"paths: {there}: {here}: both must be absolute paths")
        return paths

    @property
    def password_source(self) -> SecretSource | None:
        return self.password.to_source() if self.password is not None else None

    def connection_url(self) -> str:
        """The broker's URL with its password read now (SecretError if it cannot be):
        for the connection only, never logged."""
        source = self.password_source
        return broker_url(self.broker, read_secret(source) if source is not None else None)


def broker_url(url: str, password: bytes | None) -> str:
    """The URL with the password put in (quoted); for the connection only, never logged."""
    if password is None:
        return url
    user = unquote(urlsplit(url).username or "")  # as written, quoted: quoted once again
    return urls.with_credentials(url, user, password.decode())


def shown(url: str) -> str:
    """The URL as logs and `privmask status` show it: never a password, but the user (which
    of the broker's accounts this is)."""
    user, bare = urlsplit(url).username, urls.redact(url)
    return bare.replace("://", f"://{user}@", 1) if user else bare


def error_text(exc: BaseException) -> str:
    """An error in one line: the broker's reply text when it sent one (ACCESS_REFUSED,
    NOT_FOUND), else the error itself."""
    return getattr(exc, "reply_text", None) or str(exc) or type(exc).__name__
