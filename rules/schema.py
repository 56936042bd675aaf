"""The rule-file schema: what a site's YAML may say, each key with its bounds and meaning.

Every model forbids unknown keys, so a typo fails loudly instead of silently masking less.
`docs/rules.md` documents the same keys for integrators.
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from privmask.rules.base import StrictModel
from privmask.rules.match import Match
from privmask.rules.plan import MaskShape, MaskStyle, PlanError, Region

SCHEMA_VERSION = 1
NAME_FIELDS = frozenset({"camera", "date", "time", "id", "hash"})
AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")


class RegionSpec(StrictModel):
    """A fixed polygon masked on every frame."""

    name: str = Field(default="", description="a label shown in reports")
    points: list[tuple[float, float]] = Field(
        min_length=2, description="corners in order; two points give a rectangle"
    )
    units: Literal["relative", "pixels"] = Field(
        default="relative", description="fractions 0..1 of the picture, or pixels"
    )
    resolution: tuple[int, int] | None = Field(
        default=None,
        description="with pixels: the frame size the points were drawn on; they are scaled to "
        "the clip's size. Without it, pixels are taken as they are.",
    )
    style: MaskStyle = MaskStyle.SOLID

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

    model: str = Field(default="", description="registry model name (default per class)")
    min_score: float | None = Field(default=None, gt=0, lt=1, description="detector threshold")
    padding: float | None = Field(default=None, ge=0, le=2, description="margin, box fraction")
    hold: float | None = Field(
        default=None, ge=0, le=30, description="seconds a lost target stays masked"
    )
    style: MaskStyle | None = None
    shape: MaskShape | None = None


class Targets(StrictModel):
    """The dynamic targets to find: any of face, person, plate."""

    face: TargetSpec | None = None
    person: TargetSpec | None = None
    plate: TargetSpec | None = None

    def items(self) -> list[tuple[str, TargetSpec]]:
        return [(n, s) for n in ("face", "person", "plate") if (s := getattr(self, n)) is not None]


class Selection(StrictModel):
    """Which tracked targets are masked at export (track ids from an analysis run's report)."""

    mode: Literal["all", "except", "only"] = Field(
        default="all", description="mask all targets, all except the listed, or only the listed"
    )
    tracks: list[int] = Field(default_factory=list, description="track ids")

    @model_validator(mode="after")
    def _tracks_given(self) -> Selection:
        if self.mode != "all" and not self.tracks:
            raise ValueError(f"mode '{self.mode}' needs a list of tracks")
        if self.mode == "all" and self.tracks:
            raise ValueError("tracks are listed but mode is 'all'; use 'except' or 'only'")
        return self


class SecretRef(StrictModel):
    """Where a password is found; never the password itself. Exactly one key."""

    file: str | None = Field(default=None, description="path of a file holding it")
    env: str | None = Field(default=None, description="environment variable holding it")
    credential: str | None = Field(default=None, description="systemd credential name")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("file", "env", "credential") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or credential")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("file", "env", "credential") if getattr(self, k))

    @property
    def value(self) -> str:
        return str(getattr(self, self.kind))


class Output(StrictModel):
    """Where and how results are delivered."""

    destination: str | None = Field(default=None, description="folder or mounted share")
    name: str = Field(
        default="{camera}_{date}_{time}_{id}",
        description="file-name template; fields: camera, date, time, id, hash",
    )
    password: SecretRef | None = Field(default=None, description="package password reference")
    escrow: list[str] = Field(
        default_factory=list, description="age public keys the original is encrypted to"
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

    @field_validator("escrow")
    @classmethod
    def _age_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not AGE_RECIPIENT.fullmatch(key):
                raise ValueError(f"{key[:12]}... is not an age public key (age1 + 58 characters)")
        return keys


class LiveSpec(StrictModel):
    """Masked live video for the cameras this rule matches."""

    publish: str | None = Field(
        default=None,
        description="RTSP server URL to publish to, e.g. rtsp://127.0.0.1:8554/masked/{camera}",
    )
    segments: bool = Field(default=True, description="also write encrypted segment packages")
    segment_seconds: float = Field(default=60, ge=1, le=3600)

    @model_validator(mode="after")
    def _somewhere(self) -> LiveSpec:
        if not self.publish and not self.segments:
            raise ValueError("live video needs 'publish', 'segments: true', or both")
        if self.publish is not None:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.publish) if f}
            if fields - {"camera"} or not self.publish.startswith(("rtsp://", "rtsps://")):
                raise ValueError("publish must be an rtsp:// URL; its only field is {camera}")
        return self


class Retention(StrictModel):
    originals_days: int | None = Field(
        default=None, ge=1, le=3650, description="days escrowed originals are kept"
    )


class Rule(StrictModel):
    name: str = Field(min_length=1, description="unique within its file")
    priority: int = Field(default=0, description="breaks ties between equally specific rules")
    match: Match = Field(default_factory=Match)
    targets: Targets = Field(default_factory=Targets)
    regions: list[RegionSpec] = Field(default_factory=list)
    style: MaskStyle = Field(default=MaskStyle.BLUR, description="default style of targets")
    shape: MaskShape = Field(default=MaskShape.BOX, description="default shape of targets")
    selection: Selection = Field(default_factory=Selection)
    output: Output = Field(default_factory=Output)
    retention: Retention = Field(default_factory=Retention)
    live: LiveSpec | None = Field(default=None, description="mask this camera's live stream")


class RuleFile(StrictModel):
    version: Literal[1] = Field(description="schema version; this privmask reads version 1")
    rules: list[Rule] = Field(description="the rules, in file order")

    @model_validator(mode="after")
    def _unique_names(self) -> RuleFile:
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique in a file: {duplicates}")
        return self
