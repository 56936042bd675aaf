"""A set of rule files: which rule applies to a job, why, and the plan it compiles to.

Precedence is deterministic: of the rules whose `match` holds, the most specific wins (the
one giving more of cameras, folders, files, times, dates); a tie goes to the higher
`priority`, then to the rule that comes first (files in name order, rules in file order).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from privmask.rules.files import Located, Problem, RuleFileError, load_rule_file
from privmask.rules.match import Facts
from privmask.rules.plan import (
    PlanError,
    RedactionPlan,
    TargetPlan,
    TrackSelection,
)
from privmask.rules.schema import Rule
from privmask.rules.secret import SecretSource

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class OutputPlan:
    """Where a result goes and how it is protected (plain values; secrets by reference)."""

    destination: str | None
    name_template: str
    password: SecretSource | None


@dataclass(frozen=True)
class CustodyPlan:
    """Who may read a job's original, and how long copies stay (None: the site's setting)."""

    recipients: tuple[str, ...] | None  # entries as written; the daemon parses them
    delete_source: bool
    retention_days: int | None


@dataclass(frozen=True)
class LivePlan:
    publish_url: str | None  # with {camera} filled in
    segments: bool
    segment_seconds: float


@dataclass(frozen=True)
class PlacedRule:
    """A rule and where it stands: its file, its index in that file, its order in the set."""

    rule: Rule
    path: str
    index: int
    order: int

    @property
    def label(self) -> str:
        return f"{self.rule.name} ({self.path}, rule {self.index + 1})"

    @property
    def rank(self) -> tuple[int, int, int]:
        """Higher wins: specificity, then priority, then earlier order."""
        return (self.rule.match.specificity, self.rule.priority, -self.order)


@dataclass(frozen=True)
class Decision:
    """The rule chosen for a job, the plans it gives, and the reasoning, for logs and audit."""

    rule: PlacedRule
    plan: RedactionPlan
    output: OutputPlan
    reasons: tuple[str, ...]
    ruleset_hash: str
    live: LivePlan | None = None
    custody: CustodyPlan = CustodyPlan(None, False, None)
    review: bool = False  # held for a reviewer's decision before it is packaged


class NoRuleApplies(Exception):
    """No rule matches the job; the message lists why each rule did not."""


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[PlacedRule, ...]
    digest: str  # sha256 over every file's name and content: recorded with each job
    warnings: tuple[Problem, ...]
    sources: tuple[tuple[str, str], ...] = ()  # (file name, text) of each file, in order

    @classmethod
    def load(cls, paths: Sequence[Path]) -> RuleSet:
        """Load files, in name order; raise RuleFileError listing every error in every file."""
        located, problems = [], []
        for path in sorted(paths, key=lambda p: (p.name, str(p))):
            try:
                located.append(load_rule_file(path))
            except RuleFileError as exc:
                problems += exc.problems
        if problems:
            raise RuleFileError(problems)
        digest = hashlib.sha256()
        for file in located:
            digest.update(Path(file.path).name.encode() + b"\0" + file.text.encode() + b"\0")
        placed = [
            PlacedRule(rule, file.path, index, 0)
            for file in located
            for index, rule in enumerate(file.rules.rules)
        ]
        placed = [PlacedRule(p.rule, p.path, p.index, order) for order, p in enumerate(placed)]
        sources = tuple((Path(f.path).name, f.text) for f in located)
        return cls(tuple(placed), digest.hexdigest(), tuple(_warnings(located, placed)), sources)

    @classmethod
    def from_paths(cls, paths: Sequence[Path]) -> RuleSet:
        """Files as given, and every *.yaml / *.yml file (not hidden) of folders given."""
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files += [
                    p
                    for p in path.iterdir()
                    if p.suffix in RULE_SUFFIXES and p.is_file() and not p.name.startswith(".")
                ]
            elif path.is_file():
                files.append(path)
            else:
                raise RuleFileError([Problem(str(path), 1, 1, "no such rule file or folder")])
        return cls.load(files)

    def decide(self, job: Facts) -> Decision:
        reasons, candidates = [], []
        for placed in self.rules:
            misses = placed.rule.match.check(job)
            if misses:
                reasons.append(f"{placed.label} does not apply: {'; '.join(misses)}")
            else:
                candidates.append(placed)
        if not candidates:
            raise NoRuleApplies("no rule applies to this job:\n" + "\n".join(reasons))
        winner = max(candidates, key=lambda p: p.rank)
        for placed in candidates:
            if placed is winner:
                continue
            reasons.append(f"{placed.label} also applies but loses: {_why_loses(winner, placed)}")
        specificity, priority, _ = winner.rank
        reasons.insert(
            0, f"{winner.label} applies (specificity {specificity}, priority {priority})"
        )
        return Decision(
            winner,
            compile_plan(winner.rule),
            compile_output(winner.rule),
            tuple(reasons),
            self.digest,
            compile_live(winner.rule, job.camera or "camera"),
            compile_custody(winner.rule),
            winner.rule.review == "required",
        )


def _why_loses(winner: PlacedRule, loser: PlacedRule) -> str:
    if winner.rule.match.specificity != loser.rule.match.specificity:
        return "less specific"
    if winner.rule.priority != loser.rule.priority:
        return "lower priority"
    return "comes later"


def compile_plan(rule: Rule) -> RedactionPlan:
    """The redaction plan of one rule, with its defaults filled in."""
    try:
        targets = tuple(
            TargetPlan(
                target=name,
                model=spec.model,
                min_score=spec.min_score,
                padding=spec.padding,
                style=spec.style or rule.style,
                shape=spec.shape or rule.shape,
                hold_seconds=spec.hold,
            )
            for name, spec in rule.targets.items()
        )
        selection = TrackSelection(rule.selection.mode, frozenset(rule.selection.ids))
        regions = tuple(spec.to_region() for spec in rule.regions)
        return RedactionPlan(targets=targets, regions=regions, selection=selection)
    except PlanError as exc:
        raise PlanError(f"rule {rule.name}: {exc}") from None


def compile_live(rule: Rule, camera: str) -> LivePlan | None:
    spec = rule.live
    if spec is None:
        return None
    url = spec.publish.format(camera=camera) if spec.publish else None
    return LivePlan(url, spec.segments, spec.segment_seconds)


def compile_output(rule: Rule) -> OutputPlan:
    out = rule.output
    return OutputPlan(
        destination=out.destination,
        name_template=out.name,
        password=out.password.to_source() if out.password else None,
    )


def compile_custody(rule: Rule) -> CustodyPlan:
    return CustodyPlan(
        recipients=tuple(rule.escrow) if rule.escrow is not None else None,
        delete_source=rule.source == "delete",
        retention_days=rule.retention_days,
    )


def _warnings(located: list[Located], placed: list[PlacedRule]) -> list[Problem]:
    warnings = []
    for file in located:
        if not file.rules.rules:
            warnings.append(file.problem(["rules"], "this file has no rules", warning=True))
    by_path = {file.path: file for file in located}
    today = date.today()
    # per distinct match, the rule that wins whenever any of them applies (one pass: a large
    # set must not cost rules x rules comparisons)
    best: dict[str, PlacedRule] = {}
    for rule in placed:
        key = rule.rule.match.model_dump_json()
        if key not in best or rule.rank > best[key].rank:
            best[key] = rule
    for rule in placed:
        file = by_path[rule.path]
        dates = rule.rule.match.dates
        if dates and all(w.end is not None and w.end < today for w in dates):
            warnings.append(
                file.problem(
                    ["rules", rule.index, "match", "dates"],
                    f"rule {rule.rule.name} matches nothing: all its dates are past",
                    warning=True,
                )
            )
        if not rule.rule.targets.items() and not rule.rule.regions:
            warnings.append(
                file.problem(
                    ["rules", rule.index], f"rule {rule.rule.name} masks nothing", warning=True
                )
            )
        if rule.rule.selection.tracks:
            warnings.append(
                file.problem(
                    ["rules", rule.index, "selection", "tracks"],
                    f"rule {rule.rule.name}: `tracks` is deprecated; it is read as subject "
                    "ids (`privmask analyze`); write `subjects`",
                    warning=True,
                )
            )
        winner = best[rule.rule.match.model_dump_json()]
        if winner is not rule:  # same criteria, higher rank: whenever `rule` applies, it wins
            warnings.append(
                file.problem(
                    ["rules", rule.index, "name"],
                    f"rule {rule.rule.name} can never apply: "
                    f"{winner.label} has the same match and wins",
                    warning=True,
                )
            )
    return warnings


def secret_problems(ruleset: RuleSet) -> list[Problem]:
    """Password references that point at nothing (checked without reading any secret)."""
    problems = []
    files: dict[str, Located] = {}  # each file read again once, to point at the key
    for placed in ruleset.rules:
        ref = placed.rule.output.password
        if ref is None:
            continue
        found = _missing_secret(ref.to_source())
        if found:
            message, warning = found
            located = files.get(placed.path) or load_rule_file(Path(placed.path))
            files[placed.path] = located
            location = ["rules", placed.index, "output", "password", ref.kind]
            problems.append(located.problem(location, message, warning))
    return problems


def _missing_secret(ref: SecretSource) -> tuple[str, bool] | None:
    """(what is wrong, whether it is only a warning), or None when the secret is there."""
    if ref.kind == "file":
        path = Path(ref.reference)
        if not path.is_file():
            return f"password file {ref.reference} does not exist", False
        if not os.access(path, os.R_OK):
            return f"password file {ref.reference} is not readable by this user", False
        return None
    if ref.kind == "env":
        if os.environ.get(ref.reference):
            return None
        return f"environment variable {ref.reference} is not set", False
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:  # checked outside the service: cannot tell
        return f"systemd credential {ref.reference} cannot be checked outside systemd", True
    if not (Path(folder) / ref.reference).is_file():
        return f"systemd credential {ref.reference} is not in $CREDENTIALS_DIRECTORY", False
    return None
