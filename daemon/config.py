"""The daemon's configuration: one YAML file, overridden by flags, validated once here.

With no file at all it runs on an embedded default: folders under the current directory,
faces and people masked, and a generated package password kept in the state folder, so
that `privmask run` works out of the box. Every key has a description: the key table of
`docs/config.md` is generated from them (`python -m privmask.daemon.docs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator

from privmask.adapters.validate import Limits
from privmask.daemon.camera_settings import CamerasSpec
from privmask.daemon.queue.settings import QueueSpec
from privmask.daemon.review.settings import USERS_FILE_NAME, ReviewSpec
from privmask.daemon.sweeps.settings import KINDS, SweepSpec, unique_names
from privmask.daemon.timezones import host_timezone, zone_named
from privmask.rules import yamlfile
from privmask.rules.base import StrictModel
from privmask.rules.custody import MAX_RETENTION_DAYS, Recipient
from privmask.rules.files import Located
from privmask.rules.schema import SecretRef
from privmask.rules.secret import SecretSource

DEFAULT_ROOT = Path("privmask")

# the rule used when no rules folder is configured: everyone masked
DEFAULT_RULES = """\
version: 1
rules:
  - name: built-in-default
    targets:
      face: {}
      person: {}
"""


class InboxSpec(StrictModel):
    path: str = Field(description="the folder; it must exist when the daemon starts")
    camera: str | None = Field(
        default=None, description="camera id of this folder's clips, for rules to match on"
    )
    poll: bool | None = Field(
        default=None,
        description="force polling (true) or inotify (false); none: polling on network mounts "
        "(cifs, smb3, nfs, fuse), inotify elsewhere",
    )


class RetrySpec(StrictModel):
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="tries of a failing job before it is quarantined"
    )
    backoff_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="wait before the first retry; it doubles with each try, up to an hour",
    )


class LimitsSpec(StrictModel):
    max_gigabytes: float = Field(default=64, gt=0, description="largest clip taken in, GiB")
    max_hours: float = Field(default=24, gt=0, description="longest clip taken in, hours")
    max_width: int = Field(default=7680, ge=16, description="widest picture taken in, pixels")
    max_height: int = Field(default=4320, ge=16, description="tallest picture taken in, pixels")


class EscrowSpec(StrictModel):
    store: str | None = Field(
        default=None,
        description="folder or mounted share the encrypted originals are kept in, one file "
        "per job named by its job id (never by camera or person); a configured one must exist "
        "when the daemon starts; none: `privmask/escrow` (created, mode 700)",
    )
    recipients: list[Recipient] = Field(
        default_factory=list,
        description="the site's custodians, who may see originals: each job's unmasked clip, "
        "and each quarantined clip, is encrypted to their public keys, and only their secret "
        "keys open it (privmask itself cannot); each entry an age public key (`age1...`), "
        "an SSH ed25519 public key (`ssh-ed25519 AAAA...`) or the absolute path of a "
        "recipients file (one key a line). A rule's `escrow` takes the place of this list; "
        "empty: no original is escrowed unless a rule names recipients",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="days escrow copies and quarantine copies are kept (a rule's "
        "`retention_days` takes its place for its jobs); then they are deleted, each deletion "
        "recorded in the audit log. Packages are never deleted by privmask; none: kept",
    )


class ConfigFile(StrictModel):
    inboxes: list[str | InboxSpec] = Field(
        default_factory=list,
        description="folders clips are dropped into: paths, or mappings with `path`, `camera`, "
        "`poll`; empty: `privmask/inbox` (flag `--inbox`)",
    )
    outbox: str | None = Field(
        default=None,
        description="folder or mounted share packages are dropped into; it must exist when "
        "the daemon starts; none: `privmask/outbox` (flag `--outbox`)",
    )
    quarantine: str | None = Field(
        default=None,
        description="where rejected clips are copied, each with `reason.json`; none: "
        "`privmask/quarantine` (flag `--quarantine`)",
    )
    quarantine_group_readable: bool = Field(
        default=False,
        description="quarantine folders 750 and files 640 instead of 700 and 600, for a group "
        "of reviewers (give the folder that group and its setgid bit)",
    )
    outbox_mount_point: bool = Field(
        default=False,
        description="the outbox must be a mount point (a share): while it is not, the daemon "
        "waits instead of writing packages onto the local disk beneath it",
    )
    state: str | None = Field(
        default=None,
        description="the journal, work files, rule-set snapshots, camera inventory and any "
        "generated password; none: `privmask/state` (flag `--state`)",
    )
    rules: str | None = Field(
        default=None,
        description="rules folder; none: the built-in rule, faces and people masked "
        "(flag `--rules`)",
    )
    password: SecretRef | None = Field(
        default=None,
        description="where the package password is found: exactly one of `file`, `env`, "
        "`credential`; none: a random one generated once into `state/package-password` "
        "(flag `--password-file`)",
    )
    models: str | None = Field(
        default=None,
        description="model folder, searched before `$PRIVMASK_MODELS` and the user's model store",
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="worker processes redacting clips (flag `--workers`)"
    )
    quiet_seconds: float = Field(
        default=5.0,
        ge=0,
        description="a file is complete once its size, mtime and inode are unchanged this long",
    )
    network_quiet_seconds: float = Field(
        default=30.0,
        ge=0,
        description="the same quiet window for inboxes on a network mount or polled",
    )
    scan_seconds: float = Field(
        default=30.0,
        gt=0,
        description="period of the full reconciliation scan, which also finds clips that "
        "arrived while the daemon was down",
    )
    storage_check_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="how often a worker waiting for storage (a full or unmounted outbox, "
        "escrow, work or state folder) looks again",
    )
    done_marker: bool = Field(default=False, description="take `FILE` only once `FILE.done` exists")
    retry: RetrySpec = Field(default_factory=RetrySpec, description="retries of failed jobs")
    limits: LimitsSpec = Field(
        default_factory=LimitsSpec, description="a clip beyond any limit is quarantined"
    )
    cameras: CamerasSpec = Field(
        default_factory=CamerasSpec, description="ONVIF discovery and live streams"
    )
    escrow: EscrowSpec = Field(
        default_factory=EscrowSpec,
        description="where originals are kept, encrypted to the site's custodians, and for "
        "how long",
    )
    signing_key: SecretRef | None = Field(
        default=None,
        description="the site's Ed25519 signing key, a minisign secret key file made without "
        "a password (`minisign -G -W`): exactly one of `file`, `env`, `credential`. It signs "
        "package manifests and audit checkpoints; its public key (`privmask keys show`) is "
        "what courts and partners verify them with; none: generated once into "
        "`state/signing.key` (mode 600)",
    )
    audit_checkpoint_every: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="sign a checkpoint of the audit log every this many entries (and at "
        "shutdown): a log cut back to before the newest checkpoint is detected",
    )
    timezone: str | None = Field(
        default=None,
        description="the site's time zone, an IANA name such as `Europe/Berlin`: rules match "
        "`times` and `dates` on recording times as this clock shows them, and package names "
        "carry them; none: the host's zone (`$TZ`, else `/etc/localtime`)",
    )
    review: ReviewSpec | None = Field(
        default=None,
        description="the review page, where reviewers log in to decide on clips held for "
        "review (rules with `review: required`): given, `privmask run` serves it beside "
        "the daemon (`privmask review serve` serves it alone); none: not served by "
        "`privmask run`, and `privmask review serve` uses its defaults",
    )

    queue: QueueSpec | None = Field(
        default=None,
        description="many machines: redaction jobs go to this RabbitMQ broker and `privmask "
        "worker` processes anywhere take them; intake, sweeps, live masking, review and the "
        "journal stay on the daemon host, whose own `workers` then only redact clips held "
        "for review (README: Many machines); none: all jobs on this host's workers",
    )

    sweeps: list[SweepSpec] = Field(
        default_factory=list,
        description="scheduled archive sweeps: recordings taken from a folder tree or a "
        "recorder on a cron schedule (site time), each chunk once (README: Scheduled "
        "archive sweeps); empty: none",
    )

    @field_validator("sweeps")
    @classmethod
    def _unique_sweeps(cls, sweeps: list[SweepSpec]) -> list[SweepSpec]:
        return unique_names(sweeps)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None:
            zone_named(name)
        return name


@dataclass(frozen=True)
class Inbox:
    path: Path
    camera: str | None
    poll: bool | None


@dataclass(frozen=True)
class Config:
    """Plain, validated settings: what the service uses."""

    inboxes: tuple[Inbox, ...]
    outbox: Path
    quarantine: Path
    quarantine_group_readable: bool
    outbox_mount_point: bool
    state: Path
    rules: Path | None
    password: SecretSource | None
    models: str | None
    workers: int
    quiet_seconds: float
    network_quiet_seconds: float
    scan_seconds: float
    storage_check_seconds: float
    done_marker: bool
    max_attempts: int
    backoff_seconds: float
    limits: LimitsSpec
    cameras: CamerasSpec
    timezone: tzinfo  # the site's clock: recording times, rule times, package names
    escrow_store: Path
    escrow_recipients: tuple[str, ...]  # the site's; entries as written, parsed by the daemon
    retention_days: int | None  # escrow and quarantine copies; None: kept
    signing_key: SecretSource | None  # None: state/signing.key, generated once
    audit_checkpoint_every: int
    review: ReviewSpec | None = None  # the review page's settings; None: not served
    sweeps: tuple[SweepSpec, ...] = ()  # scheduled archive sweeps
    queue: QueueSpec | None = None  # jobs on a broker for `privmask worker`s; None: local

    @property
    def intake_limits(self) -> Limits:
        """What intake accepts: the one place the config's limits become bytes and seconds."""
        limits = self.limits
        return Limits(
            max_bytes=int(limits.max_gigabytes * (1 << 30)),
            max_seconds=limits.max_hours * 3600,
            max_width=limits.max_width,
            max_height=limits.max_height,
        )

    @property
    def journal_path(self) -> Path:
        return self.state / "journal.sqlite"

    @property
    def review_users(self) -> Path:
        """The reviewers' file: `review.users`, else `review-users` in the state folder."""
        if self.review is not None and self.review.users is not None:
            return Path(self.review.users)
        return self.state / USERS_FILE_NAME

    @property
    def work(self) -> Path:
        return self.state / "work"

    @property
    def audit_folder(self) -> Path:
        return self.state / "audit"

    @property
    def signing_key_path(self) -> Path:
        """Where the site key is generated when `signing_key` is not configured."""
        return self.state / "signing.key"


class ConfigError(Exception):
    """The configuration is invalid; the message names the file, key and problem."""


def load_config(
    path: Path | None,
    *,
    inboxes: list[Path] | None = None,
    outbox: Path | None = None,
    quarantine: Path | None = None,
    state: Path | None = None,
    rules: Path | None = None,
    password_file: Path | None = None,
    workers: int | None = None,
) -> Config:
    """Read `path` (or nothing: the embedded default), then apply the flags given."""
    raw = ConfigFile() if path is None else read_config_file(path)
    specs = [InboxSpec(path=s) if isinstance(s, str) else s for s in raw.inboxes]
    boxes = tuple(Inbox(Path(s.path).absolute(), s.camera, s.poll) for s in specs)
    if inboxes:
        boxes = tuple(Inbox(p.absolute(), None, None) for p in inboxes)
    if not boxes:
        boxes = (Inbox((DEFAULT_ROOT / "inbox").absolute(), None, None),)
    password = raw.password.to_source() if raw.password is not None else None
    if password_file is not None:
        password = SecretSource("file", str(password_file))
    if workers is not None and not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be 1..64, got {workers}")
    config = Config(
        inboxes=boxes,
        outbox=(outbox or Path(raw.outbox or DEFAULT_ROOT / "outbox")).absolute(),
        quarantine=(quarantine or Path(raw.quarantine or DEFAULT_ROOT / "quarantine")).absolute(),
        quarantine_group_readable=raw.quarantine_group_readable,
        outbox_mount_point=raw.outbox_mount_point,
        state=(state or Path(raw.state or DEFAULT_ROOT / "state")).absolute(),
        rules=rules or (Path(raw.rules) if raw.rules else None),
        password=password,
        models=raw.models,
        workers=workers or raw.workers,
        quiet_seconds=raw.quiet_seconds,
        network_quiet_seconds=raw.network_quiet_seconds,
        scan_seconds=raw.scan_seconds,
        storage_check_seconds=raw.storage_check_seconds,
        done_marker=raw.done_marker,
        max_attempts=raw.retry.max_attempts,
        backoff_seconds=raw.retry.backoff_seconds,
        limits=raw.limits,
        cameras=raw.cameras,
        timezone=zone_named(raw.timezone) if raw.timezone is not None else host_timezone(),
        escrow_store=Path(raw.escrow.store or DEFAULT_ROOT / "escrow").absolute(),
        escrow_recipients=tuple(raw.escrow.recipients),
        retention_days=raw.escrow.retention_days,
        signing_key=raw.signing_key.to_source() if raw.signing_key is not None else None,
        audit_checkpoint_every=raw.audit_checkpoint_every,
        review=raw.review,
        sweeps=tuple(raw.sweeps),
        queue=raw.queue,
    )
    _check_nesting(config)
    return config


def read_config_file(path: Path) -> ConfigFile:
    """The file, validated; every problem is one line naming the file (and line, where the
    parser knows it)."""
    root = None
    try:
        root, data = yamlfile.load(yamlfile.read_text(path, "a config file"))
        return ConfigFile.model_validate(data or {})
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yamlfile.YamlLimitError as exc:
        raise ConfigError(f"{path}:{exc.line}:{exc.column}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}{where}: not valid YAML: {reason}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"][:1] == ("sweeps",):  # as `privmask rules check` points: line, column
            raise ConfigError(located_error(path, root, first["loc"], message)) from None
        raise ConfigError(f"{path}: {where}: {message}") from None


def located_error(path: Path, root: yaml.Node | None, loc: tuple[object, ...], message: str) -> str:
    """`FILE:LINE:COLUMN: error: KEY: message`, the key found in the file's node tree (a
    sweep source's kind, which pydantic puts in the location as a tag, left out)."""
    keys = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "source" and p in KINDS)]
    where = ".".join(str(p) for p in keys)
    located = Located(None, str(path), "", root)  # type: ignore[arg-type]
    return str(
        located.problem([p for p in keys if isinstance(p, str | int)], f"{where}: {message}")
    )


def _check_nesting(config: Config) -> None:
    """No folder of privmask's own inside an inbox, or the other way round: quarantined
    copies or work files would be taken in again, for ever."""
    own = {
        "outbox": config.outbox,
        "quarantine": config.quarantine,
        "state": config.state,
        "escrow store": config.escrow_store,
    }
    for inbox in config.inboxes:
        for name, folder in own.items():
            if folder == inbox.path or inbox.path in folder.parents or folder in inbox.path.parents:
                raise ConfigError(
                    f"{name} {folder} and inbox {inbox.path} must not contain each other"
                )
