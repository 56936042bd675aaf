"""The daemon's configuration: one YAML file, overridden by flags, validated once here.

With no file at all it runs on an embedded default: folders under the current directory,
faces and people masked, and a generated package password kept in the state folder, so
that `privmask run` works out of the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from privmask.rules.base import StrictModel

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


class PasswordRef(StrictModel):
    file: str | None = Field(default=None, description="file holding the package password")
    env: str | None = Field(default=None, description="environment variable holding it")
    credential: str | None = Field(default=None, description="systemd credential name")


class InboxSpec(StrictModel):
    path: str
    camera: str | None = Field(default=None, description="camera id of this folder's clips")
    poll: bool | None = Field(default=None, description="force polling (true) or inotify (false)")


class RetrySpec(StrictModel):
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_seconds: float = Field(default=30.0, ge=0, le=3600)


class LimitsSpec(StrictModel):
    max_gigabytes: float = Field(default=64, gt=0)
    max_hours: float = Field(default=24, gt=0)
    max_width: int = Field(default=7680, ge=16)
    max_height: int = Field(default=4320, ge=16)


class StreamSpec(StrictModel):
    camera: str = Field(min_length=1, description="the id rules match on")
    url: str = Field(description="its main RTSP stream, without credentials (see secrets)")


class CamerasSpec(StrictModel):
    discover_seconds: float = Field(
        default=0, ge=0, description="re-discover ONVIF cameras this often; 0: never"
    )
    interface: str | None = Field(default=None, description="IPv4 address to probe from")
    timeout: float = Field(default=3.0, gt=0, le=60)
    secrets: str | None = Field(default=None, description="camera credentials file (mode 600)")
    streams: list[StreamSpec] = Field(
        default_factory=list, description="cameras known by URL, without discovery"
    )


class ConfigFile(StrictModel):
    inboxes: list[str | InboxSpec] = Field(default_factory=list)
    outbox: str | None = None
    quarantine: str | None = None
    state: str | None = None
    rules: str | None = Field(default=None, description="rules folder; none: the built-in rule")
    password: PasswordRef | None = None
    models: str | None = None
    workers: int = Field(default=1, ge=1, le=64)
    quiet_seconds: float = Field(default=5.0, ge=0, description="unchanged this long = complete")
    network_quiet_seconds: float = Field(default=30.0, ge=0)
    scan_seconds: float = Field(default=30.0, gt=0, description="full reconciliation scan period")
    done_marker: bool = Field(default=False, description="wait for FILE.done before taking FILE")
    retry: RetrySpec = Field(default_factory=RetrySpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    cameras: CamerasSpec = Field(default_factory=CamerasSpec)


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
    state: Path
    rules: Path | None
    password: tuple[Literal["file", "env", "credential"], str] | None
    models: str | None
    workers: int
    quiet_seconds: float
    network_quiet_seconds: float
    scan_seconds: float
    done_marker: bool
    max_attempts: int
    backoff_seconds: float
    limits: LimitsSpec
    cameras: CamerasSpec

    @property
    def journal_path(self) -> Path:
        return self.state / "journal.sqlite"

    @property
    def work(self) -> Path:
        return self.state / "work"


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
    raw = ConfigFile()
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            raw = ConfigFile.model_validate(data)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    specs = [InboxSpec(path=s) if isinstance(s, str) else s for s in raw.inboxes]
    boxes = tuple(Inbox(Path(s.path).absolute(), s.camera, s.poll) for s in specs)
    if inboxes:
        boxes = tuple(Inbox(p.absolute(), None, None) for p in inboxes)
    if not boxes:
        boxes = (Inbox((DEFAULT_ROOT / "inbox").absolute(), None, None),)
    password = None
    if raw.password is not None:
        given = [(k, v) for k, v in raw.password.model_dump().items() if v]
        if len(given) != 1:
            raise ConfigError("password: give exactly one of file, env or credential")
        password = given[0]
    if password_file is not None:
        password = ("file", str(password_file))
    if workers is not None and not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be 1..64, got {workers}")
    config = Config(
        inboxes=boxes,
        outbox=(outbox or Path(raw.outbox or DEFAULT_ROOT / "outbox")).absolute(),
        quarantine=(quarantine or Path(raw.quarantine or DEFAULT_ROOT / "quarantine")).absolute(),
        state=(state or Path(raw.state or DEFAULT_ROOT / "state")).absolute(),
        rules=rules or (Path(raw.rules) if raw.rules else None),
        password=password,  # type: ignore[arg-type]
        models=raw.models,
        workers=workers or raw.workers,
        quiet_seconds=raw.quiet_seconds,
        network_quiet_seconds=raw.network_quiet_seconds,
        scan_seconds=raw.scan_seconds,
        done_marker=raw.done_marker,
        max_attempts=raw.retry.max_attempts,
        backoff_seconds=raw.retry.backoff_seconds,
        limits=raw.limits,
        cameras=raw.cameras,
    )
    _check_nesting(config)
    return config


def _check_nesting(config: Config) -> None:
    """No folder of privmask's own inside an inbox, or the other way round: quarantined
    copies or work files would be taken in again, for ever."""
    own = {"outbox": config.outbox, "quarantine": config.quarantine, "state": config.state}
    for inbox in config.inboxes:
        for name, folder in own.items():
            if folder == inbox.path or inbox.path in folder.parents or folder in inbox.path.parents:
                raise ConfigError(
                    f"{name} {folder} and inbox {inbox.path} must not contain each other"
                )
