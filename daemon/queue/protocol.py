"""What travels through the broker, and the queues it travels in.

- Orders (daemon -> workers): Celery task messages of `TASK_NAME` on the job queue, a
  quorum queue with a delivery limit whose dead letters go to `<name>.dead`. An order says
  everything a worker needs that is not a secret: the job as the journal has it, the file
  as intake saw it, and the rule set in force (its files and digest), so every worker
  applies the same rules and the package says which.
- Reports (workers -> daemon): plain JSON messages on `<name>.reports`, published with
  confirms before the worker acknowledges its order: `started`, `sealed` (the escrow copy
  is durable; the daemon records and audits it), `done`, `failed`, `local` (the job must
  run on the daemon host: it is held for review, whose unmasked analysis never leaves it),
  and, unsigned, `refused` (the worker cannot verify the order: its site key is not the
  daemon's; the most a forged one can do is send the job again). Apart from jobs, each
  worker says `alive` every `queue.alive_seconds`, and once more when it stops.
  The daemon applies each to the journal, which stays the only record; a report that comes
  twice changes nothing the second time.

No secret is ever in a message: package passwords and the signing key reach workers
through their own files or credentials. Every message is signed with the site key
(`signed`, `verified`): whoever can publish on the broker but holds no site key cannot make
a worker redact under rules of their own, nor the daemon record a package or delete a
source; a message that does not verify is dropped and logged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from kombu import Exchange, Queue

from privmask.adapters.minisign import PublicKey, SecretKey, SignatureError, verify
from privmask.daemon.liveness import time_limit

TASK_NAME = "privmask.redact"
EXCHANGE = "privmask"
# a worker's soft limit comes this long before the hard one: time to report the failure
SOFT_MARGIN_SECONDS = 30.0
SIGNATURE = "signature"  # the key a message's signature travels under

ReportKind = Literal["started", "sealed", "done", "failed", "local", "refused", "alive"]
FailureKind = Literal["retry", "permanent", "wait"]  # as `retry.Failure`


@dataclass(frozen=True)
class Topology:
    """The queues of one daemon, named after its job queue."""

    name: str
    delivery_limit: int

    @property
    def exchange(self) -> Exchange:
        # topic, not direct: Celery's native delayed delivery (on with quorum queues) warns
        # about direct exchanges; exact routing keys route the same
        return Exchange(EXCHANGE, type="topic", durable=True)

    @property
    def dead_exchange(self) -> Exchange:
        return Exchange(f"{EXCHANGE}.dead", type="topic", durable=True)

    @property
    def jobs(self) -> Queue:
        return Queue(
            self.name,
            self.exchange,
            routing_key=self.name,
            durable=True,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": f"{EXCHANGE}.dead",
                "x-dead-letter-routing-key": self.dead.name,
            },
        )

    @property
    def dead(self) -> Queue:
        return Queue(
            f"{self.name}.dead",
            self.dead_exchange,
            routing_key=f"{self.name}.dead",
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )

    @property
    def reports(self) -> Queue:
        return Queue(
            f"{self.name}.reports",
            self.exchange,
            routing_key=f"{self.name}.reports",
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )


@dataclass(frozen=True)
class Order:
    """One try at one job, as the daemon sends it."""

    job: int
    attempt: int
    try_id: str  # random, recorded with the claim: reports name it, stale ones are ignored
    queue: str  # the job queue it was sent on: a worker refuses another's
    path: str  # as the daemon sees it; a worker maps it (`local_path`)
    sha256: str
    size: int
    camera: str | None
    folder: str
    taken: tuple[str, int, int, int]  # FileIdentity: path, size, mtime_ns, inode
    swept: str | None  # a sweep's recording time (ISO 8601), else None
    timezone: str  # the site's zone (IANA name): recording times and package names read on it
    recipients: tuple[str, ...]  # the site's custodians (public keys): a rule may name others
    retention_days: int | None  # the site's, for escrow copies
    duration: float  # seconds of video, for the time limits; 0 when unknown
    ruleset: str  # the digest of the rule set in force
    rules: tuple[tuple[str, str], ...]  # its files: name, text
    created: float  # when intake took the clip in

    @property
    def task_id(self) -> str:
        return f"job-{self.job}-try-{self.attempt}-{self.try_id[:8]}"

    @property
    def hard_limit(self) -> float:
        return time_limit(self.duration)

    @property
    def soft_limit(self) -> float:
        return self.hard_limit - SOFT_MARGIN_SECONDS

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Order:
        fields = dict(data)
        fields["taken"] = tuple(fields["taken"])
        fields["rules"] = tuple(tuple(pair) for pair in fields["rules"])
        fields["recipients"] = tuple(fields["recipients"])
        return cls(**fields)


@dataclass(frozen=True)
class Report:
    """What a worker tells the daemon about one try."""

    kind: ReportKind
    job: int
    attempt: int
    try_id: str  # the order's: only the job's current try is applied
    worker: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Report:
        return cls(**data)


def signed(message: dict[str, Any], key: SecretKey) -> dict[str, Any]:
    """`message` with its signature by the site key."""
    return {**message, SIGNATURE: key.sign(_canonical(message), "privmask queue message")}


def verified(message: dict[str, Any], public: PublicKey) -> dict[str, Any]:
    """`message` without its signature, once the signature checks out against the site key;
    SignatureError otherwise (unsigned, altered, or signed by another site)."""
    if not isinstance(message, dict) or not isinstance(message.get(SIGNATURE), str):
        raise SignatureError("the message is not signed")
    body = {k: v for k, v in message.items() if k != SIGNATURE}
    verify(_canonical(body), message[SIGNATURE], public)
    return body


def _canonical(message: dict[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True, separators=(",", ":")).encode()


def local_path(path: str | Path, paths: dict[str, str]) -> Path:
    """Where a folder or file the daemon names is on this machine: the longest `paths`
    entry it lies in, remapped; else the same path."""
    posix = PurePosixPath(path)
    if ".." in posix.parts or not posix.is_absolute():
        raise ValueError(f"{path}: not a plain absolute path")
    for there in sorted(paths, key=len, reverse=True):
        root = PurePosixPath(there)
        if posix == root or root in posix.parents:
            return Path(paths[there]) / posix.relative_to(root)
    return Path(posix)


def daemon_path(path: str | Path, paths: dict[str, str]) -> Path:
    """The other way: where the daemon sees a path of this machine."""
    posix = PurePosixPath(path)
    for there, here in sorted(paths.items(), key=lambda p: len(p[1]), reverse=True):
        root = PurePosixPath(here)
        if posix == root or root in posix.parents:
            return Path(there) / posix.relative_to(root)
    return Path(posix)
