"""The rule-file schema: what a site's YAML may say, each key with its bounds and meaning.

Every model forbids unknown keys, so a typo fails loudly instead of silently masking less.
Every key has a description: the key tables of `docs/rules.md` are generated from them
(`python -m privmask.daemon.docs`).
"""

from __future__ import annotations

import string
from collections import Counter
from typing import Literal

from pydantic import Field, field_validator, model_validator

from privmask.rules.base import StrictModel
from privmask.rules.custody import MAX_RETENTION_DAYS, Recipient, SourceHandling
from privmask.rules.match import Match
from privmask.rules.plan import MaskShape, MaskStyle, PlanError, Region
from privmask.rules.secret import SECRET_KINDS, SecretError, SecretKind, SecretSource

SCHEMA_VERSION = 1
NAME_FIELDS = frozenset({"camera", "date", "time", "id", "hash"})


class RegionSpec(StrictModel):
    """A fixed polygon masked on every frame."""

    name: str = Field(default="", description="a label shown in reports and errors")
    points: list[tuple[float, float]] = Field(
        min_length=2,
        description="corners `[x, y]` in order (not self-intersecting); two points give a "
        "rectangle",
    )
    units: Literal["relative", "pixels"] = Field(
        default="relative",
        description="fractions 0..1 of the picture as the viewer sees it (rotation applied), "
        "or pixels",
    )
    resolution: tuple[int, int] | None = Field(
        default=None,
        description="with `units: pixels`: the frame size `[width, height]` the points were "
        "drawn on; they are scaled to each clip's size. Without it, pixels are used as they are",
    )
    style: MaskStyle = Field(default=MaskStyle.SOLID, description="how the region is masked")

    @model_validator(mode="after")
    def _valid_polygon(self) -> RegionSpec:
        if self.resolution is not None and self.units != "pixels":
            raise ValueError("'resolution' goes with units: pixels")
        if self.resolution is not None and min(self.resolution) < 1:
            raise ValueError("resolution must be positive")
        if self.resolution is not None:
            w, h = self.resolution
            if any(x > w or y > h for x, y in self.points):
                raise ValueError(f"a point lies outside the {w}x{h} resolution")
        try:
            self.to_region()
        except PlanError as exc:
            raise ValueError(str(exc)) from None
        return self

    def to_region(self) -> Region:
        return Region(
            tuple(self.points),
            relative=self.units == "relative",
            name=self.name,
            reference_size=self.resolution,
            style=self.style,
        )


class TargetSpec(StrictModel):
    """How one class of target is found and masked; unset values take the rule's defaults."""

    model: str = Field(
        default="",
        description="the detector, a registry name (`privmask models list`) that detects this "
        "class; empty: `yunet` (face), `yolox-nano` (person), `hyperlpr-plate` (plate)",
    )
    min_score: float | None = Field(
        default=None, gt=0, lt=1, description="detector threshold; none: the model's default"
    )
    padding: float | None = Field(
        default=None,
        ge=0,
        le=2,
        description="margin on every side, as a fraction of the box; none: face 0.25, "
        "person 0.05, plate 0.15",
    )
    hold: float | None = Field(
        default=None,
        ge=0,
        le=30,
        description="seconds: detector gaps up to this long are bridged within one track, and "
        "a lost target stays masked this long; none: 1.0",
    )
    style: MaskStyle | None = Field(
        default=None, description="how this class is masked; none: the rule's `style`"
    )
    shape: MaskShape | None = Field(
        default=None, description="mask shape of this class; none: the rule's `shape`"
    )


class Targets(StrictModel):
    """The dynamic targets to find: any of face, person, plate."""

    face: TargetSpec | None = Field(default=None, description="find and mask faces")
    person: TargetSpec | None = Field(default=None, description="find and mask whole people")
    plate: TargetSpec | None = Field(default=None, description="find and mask licence plates")

    def items(self) -> list[tuple[str, TargetSpec]]:
        return [(n, s) for n in ("face", "person", "plate") if (s := getattr(self, n)) is not None]


class Selection(StrictModel):
    """Which subjects are masked at export, by the subject ids of an analysis."""

    mode: Literal["all", "except", "only"] = Field(
        default="all", description="mask all subjects, all but the listed, or only the listed"
    )
    subjects: list[int] = Field(
        default_factory=list,
        description="subject ids of `privmask analyze` (a person's face and body are one "
        "subject); required with `except` and `only`, forbidden with `all`",
    )
    tracks: list[int] = Field(
        default_factory=list,
        description="deprecated: the old name of `subjects`, read as subject ids",
    )

    @property
    def ids(self) -> list[int]:
        """The subject ids listed, under either name."""
        return self.subjects or self.tracks

    @model_validator(mode="after")
    def _subjects_given(self) -> Selection:
        if self.subjects and self.tracks:
            raise ValueError("give `subjects` only (`tracks` is its old name)")
        if self.mode != "all" and not self.ids:
            raise ValueError(f"mode '{self.mode}' needs a list of subjects")
        if self.mode == "all" and self.ids:
            raise ValueError("subjects are listed but mode is 'all'; use 'except' or 'only'")
        return self


class SecretRef(StrictModel):
    """Where a password is found; never the password itself. Exactly one key.

    The one YAML shape of a secret reference, in rule files and in the daemon's config;
    both compile it to a `SecretSource`.
    """

    file: str | None = Field(
        default=None, description="path of a file holding it (not readable by everyone)"
    )
    env: str | None = Field(default=None, description="environment variable holding it")
    credential: str | None = Field(
        default=None,
        description="systemd credential name, read from `$CREDENTIALS_DIRECTORY`",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in SECRET_KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or credential")
        try:
            self.to_source()
        except SecretError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def kind(self) -> SecretKind:
        return next(k for k in SECRET_KINDS if getattr(self, k))

    @property
    def value(self) -> str:
        return str(getattr(self, self.kind))

    def to_source(self) -> SecretSource:
        return SecretSource(self.kind, self.value)


class Output(StrictModel):
    """Where and how results are delivered."""

    destination: str | None = Field(
        default=None, description="folder or mounted share; none: the daemon's outbox"
    )
    name: str = Field(
        default="{camera}_{date}_{time}_{id}",
        description="file-name template; fields `camera`, `date`, `time`, `id`, `hash`; no path "
        "separators. Source file names are not offered: they often hold personal data",
    )
    password: SecretRef | None = Field(
        default=None,
        description="where the package password is found, never the password itself: exactly "
        "one of `file`, `env`, `credential`; none: the daemon's password",
    )

    @field_validator("name")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = fields - NAME_FIELDS
        if unknown:
            allowed = ", ".join(sorted(NAME_FIELDS))
            raise ValueError(f"unknown name field(s) {sorted(unknown)}; allowed: {allowed}")
        if "/" in template or "\\" in template:
            raise ValueError("a name template must not contain a path separator")
        return template


class LiveSpec(StrictModel):
    """Masked live video for the cameras this rule matches."""

    publish: str | None = Field(
        default=None,
        description="RTSP server (mediamtx, go2rtc) to publish to, an `rtsp://` or `rtsps://` "
        "URL; `{camera}` is replaced by the camera id, e.g. "
        "`rtsp://127.0.0.1:8554/masked/{camera}`",
    )
    segments: bool = Field(
        default=True,
        description="also cut the masked stream into segments, each packaged and encrypted "
        "like a file result (`output`)",
    )
    segment_seconds: float = Field(default=60, ge=1, le=3600, description="segment length, seconds")

    @model_validator(mode="after")
    def _somewhere(self) -> LiveSpec:
        if not self.publish and not self.segments:
            raise ValueError("live video needs 'publish', 'segments: true', or both")
        if self.publish is not None:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.publish) if f}
            if fields - {"camera"} or not self.publish.startswith(("rtsp://", "rtsps://")):
                raise ValueError("publish must be an rtsp:// URL; its only field is {camera}")
        return self


class Rule(StrictModel):
    name: str = Field(min_length=1, description="the rule's name, unique within its file")
    priority: int = Field(
        default=0, description="breaks ties between equally specific rules: higher wins"
    )
    match: Match = Field(
        default_factory=Match,
        description="which jobs the rule applies to; empty: every job (the least specific rule)",
    )
    targets: Targets = Field(default_factory=Targets, description="dynamic targets to mask")
    regions: list[RegionSpec] = Field(
        default_factory=list, description="fixed polygons masked on every frame"
    )
    style: MaskStyle = Field(default=MaskStyle.BLUR, description="default style of its targets")
    shape: MaskShape = Field(default=MaskShape.BOX, description="default shape of its targets")
    selection: Selection = Field(
        default_factory=Selection,
        description="which subjects (ids of an analysis) are masked at export",
    )
    output: Output = Field(
        default_factory=Output, description="where results go and how they are protected"
    )
    escrow: list[Recipient] | None = Field(
        default=None,
        description="who may see this rule's originals: the unmasked clip of every job is "
        "encrypted to these custodians' public keys and kept in the escrow store, and only "
        "their secret keys open it (privmask itself cannot); each entry an age public key "
        "(`age1...`), an SSH ed25519 public key (`ssh-ed25519 AAAA...`) or the absolute path "
        "of a recipients file (one key a line); none: the site's recipients (`escrow."
        "recipients` in the config); `[]` is refused: omit the key to use the site's "
        "recipients",
    )
    source: SourceHandling = Field(
        default="keep",
        description="the clip in the inbox, an unmasked original: `keep` leaves it as the "
        "recorder wrote it; `delete` deletes it once its package and its escrow copy are "
        "written and verified, and records the deletion in the audit log, so that no plain "
        "original stays on this host. Without recipients (the rule's or the site's) the clip "
        "is never deleted: it would be the only original",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="days the escrow copies of this rule's jobs are kept; then they are "
        "deleted, each deletion recorded in the audit log. Packages are never deleted by "
        "privmask; none: the site's `escrow.retention_days` (none there: kept)",
    )
    live: LiveSpec | None = Field(
        default=None, description="mask the live stream of the cameras the rule matches"
    )
    review: Literal["none", "required"] = Field(
        default="none",
        description="`required`: each clip is analysed, then held in the review queue until "
        "a reviewer decides (`privmask review`, or the review page): who stays visible, "
        "fixed areas to add, approve or reject, with a reason; nothing is packaged before. "
        "A rejected clip gets no package and its source is kept as it is; `none`: packaged "
        "at once",
    )

    @field_validator("escrow")
    @classmethod
    def _names_someone(cls, recipients: list[str] | None) -> list[str] | None:
        if recipients == []:
            raise ValueError(
                "an empty list names no custodian; omit the key to use the site's recipients"
            )
        return recipients


class RuleFile(StrictModel):
    version: Literal[1] = Field(description="the schema version; this privmask reads version 1")
    rules: list[Rule] = Field(description="the rules, in order")

    @model_validator(mode="after")
    def _unique_names(self) -> RuleFile:
        counts = Counter(r.name for r in self.rules)
        duplicates = sorted(n for n, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"rule names must be unique in a file: {duplicates}")
        return self
