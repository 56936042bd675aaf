"""Rule files: every key read, every error named with its file, line and column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from textwrap import dedent

import pytest

from privmask.rules.files import RuleFileError, parse_rules
from privmask.rules.match import Facts
from privmask.rules.plan import MaskShape, MaskStyle
from privmask.rules.ruleset import (
    CustodyPlan,
    RuleSet,
    compile_custody,
    compile_output,
    compile_plan,
    secret_problems,
)
from privmask.rules.secret import SecretSource

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"

FULL = """\
version: 1
rules:
  - name: everything
    priority: 3
    match:
      cameras: [CAM-1]
      folders: [/srv/in]
      files: ["*.mp4"]
      times: [{days: [mon], from: "08:00", to: "18:00"}]
      dates: [{from: 2026-01-01, to: 2026-12-31}]
    targets:
      face: {model: centerface, min_score: 0.3, padding: 0.4, hold: 2.5, style: solid, shape: ellipse}
      person: {}
      plate: {padding: 0.3}
    regions:
      - {name: door, points: [[0.1, 0.1], [0.2, 0.1], [0.2, 0.3]]}
      - {name: sign, units: pixels, resolution: [1920, 1080], points: [[960, 540], [1920, 1080]], style: pixelate}
    style: pixelate
    shape: box
    selection: {mode: except, tracks: [4, 9]}
    output:
      destination: /srv/out
      name: "{camera}-{date}-{id}"
      password: {env: SITE_PASSWORD}
    escrow: [age128ae0y6dhx0gahr6xlc46f5fjqzzx6v0z3qs5gzq30jlk9wa5a0q6zskaz, /etc/custodians]
    source: delete
    retention_days: 90
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as failure:
        parse_rules(dedent(text), "site.yaml")
    return [str(p) for p in failure.value.problems]


def test_every_key_is_read_into_the_plans() -> None:
    rule = parse_rules(FULL).rules.rules[0]
    plan, output = compile_plan(rule), compile_output(rule)
    face, person, plate = plan.targets
    assert (face.target, face.model, face.min_score, face.margin, face.hold_seconds) == (
        "face", "centerface", 0.3, 0.4, 2.5,
    )  # fmt: skip
    assert (face.style, face.shape) == (MaskStyle.SOLID, MaskShape.ELLIPSE)
    assert (person.style, person.margin) == (
        MaskStyle.PIXELATE,
        0.05,
    )  # rule default, class default
    assert plate.margin == 0.3
    door, sign = plan.regions
    assert door.relative and door.style is MaskStyle.SOLID
    assert sign.in_pixels(1280, 720)[0] == pytest.approx((640, 360))  # scaled from 1920x1080
    assert sign.style is MaskStyle.PIXELATE
    assert (plan.selection.masks(4), plan.selection.masks(5)) == (False, True)
    assert output.destination == "/srv/out" and output.name_template == "{camera}-{date}-{id}"
    assert output.password == SecretSource("env", "SITE_PASSWORD")
    assert compile_custody(rule) == CustodyPlan(
        ("age128ae0y6dhx0gahr6xlc46f5fjqzzx6v0z3qs5gzq30jlk9wa5a0q6zskaz", "/etc/custodians"),
        delete_source=True,
        retention_days=90,
    )
    assert rule.priority == 3 and rule.match.specificity == 5


def test_match_criteria() -> None:
    rule = parse_rules(FULL).rules.rules[0]
    monday_noon = datetime(2026, 11, 23, 12, 0)
    job = Facts(camera="cam-1", folder="/srv/in/today", file_name="a.mp4", when=monday_noon)
    assert rule.match.check(job) == []
    assert (
        "camera"
        in rule.match.check(
            Facts(camera="CAM-2", folder="/srv/in", file_name="a.mp4", when=monday_noon)
        )[0]
    )
    tuesday = datetime(2026, 11, 24, 12, 0)
    assert any("time" in m for m in rule.match.check(Facts("CAM-1", "/srv/in", "a.mp4", tuesday)))
    assert any(
        "folder" in m for m in rule.match.check(Facts("CAM-1", "/srv/inbox", "a.mp4", monday_noon))
    )
    assert any(
        "file" in m for m in rule.match.check(Facts("CAM-1", "/srv/in", "a.mkv", monday_noon))
    )


def test_night_window_spans_midnight_and_equal_times_mean_all_day() -> None:
    rules = parse_rules(
        dedent("""\
        version: 1
        rules:
          - name: night
            match: {times: [{days: [fri], from: "22:00", to: "06:00"}]}
            targets: {face: {}}
          - name: sunday
            match: {times: [{days: [sun], from: "00:00", to: "00:00"}]}
            targets: {face: {}}
    """)
    ).rules.rules
    night, sunday = rules[0].match, rules[1].match
    assert night.check(Facts(when=datetime(2026, 11, 27, 23, 0))) == []  # Friday 23:00
    assert night.check(Facts(when=datetime(2026, 11, 28, 5, 0))) == []  # early Saturday: Friday's
    assert night.check(Facts(when=datetime(2026, 11, 29, 5, 0)))  # early Sunday: Saturday's night
    assert sunday.check(Facts(when=datetime(2026, 11, 29, 13, 37))) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nrules: []\nrulez: []\n", "site.yaml:3:1: error: rulez: unknown key"),
        ("version: 2\nrules: []\n", "site.yaml:1:1: error: version: input should be 1"),
        ("rules: []\n", "site.yaml:1:1: error: version: required key is missing"),
        ("version: 1\nrules:\n  - name: a\n    targets: {face: {min_score: high}}\n",
         "site.yaml:4:22: error: rules.0.targets.face.min_score: input should be a valid number"),
        ("version: 1\nrules:\n  - name: a\n    targets: {cat: {}}\n",
         "site.yaml:4:15: error: rules.0.targets.cat: unknown key"),
        ("version: 1\nrules:\n  - name: a\n    style: smudge\n",
         "site.yaml:4:5: error: rules.0.style: input should be 'blur', 'pixelate' or 'solid'"),
        ("version: 1\nrules:\n  - name: a\n    regions: [{points: [[0, 0], [1, 1], [1, 0], [0, 1]]}]\n",
         "site.yaml:4:15: error: rules.0.regions.0: region is self-intersecting"),
        ("version: 1\nrules:\n  - name: a\n    regions: [{points: [[0, 0], [1.5, 1]]}]\n",
         "site.yaml:4:15: error: rules.0.regions.0: region mixes fractions and pixels"),
        ("version: 1\nrules:\n  - name: a\n    regions: [{units: pixels, resolution: [640, 360], points: [[0, 0], [700, 10]]}]\n",
         "a point lies outside the 640x360 resolution"),
        ("version: 1\nrules:\n  - name: a\n    selection: {mode: only}\n",
         "site.yaml:4:5: error: rules.0.selection: mode 'only' needs a list of subjects"),
        ("version: 1\nrules:\n  - name: a\n    output: {password: {file: /a, env: B}}\n",
         "rules.0.output.password: give exactly one of file, env or credential"),
        ("version: 1\nrules:\n  - name: a\n    output: {password: hunter2}\n",
         "rules.0.output.password: input should be a valid dictionary"),
        ("version: 1\nrules:\n  - name: a\n    output: {name: \"{source_name}\"}\n",
         "unknown name field(s) ['source_name']"),
        ("version: 1\nrules:\n  - name: a\n    escrow: []\n",
         "site.yaml:4:5: error: rules.0.escrow: an empty list names no custodian; omit the key "
         "to use the site's recipients"),
        ("version: 1\nrules:\n  - name: a\n    retention_days: 99999\n",
         "site.yaml:4:5: error: rules.0.retention_days: input should be less than or equal to "
         "3650"),
        ("version: 1\nrules:\n  - name: a\n    match: {dates: [{from: 2026-05-01, to: 2026-04-01}]}\n",
         "date window ends (2026-04-01) before it starts (2026-05-01)"),
        ("version: 1\nrules:\n  - {name: a}\n  - {name: a}\n", "rule names must be unique"),
        ("version: 1\nrules: [\n", "site.yaml:3:1: error: not valid YAML"),
        ("- just\n- a list\n", "site.yaml:1:1: error: expected a mapping with 'version' and 'rules'"),
    ],
)  # fmt: skip
def test_each_error_names_file_line_column_and_what_was_expected(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(expected in line for line in found), found


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    found = errors_of(
        "version: 1\nrules:\n  - name: a\n    stlye: blur\n    targets: {face: {hold: 99}}\n"
    )
    assert len(found) == 2
    assert found[0].startswith("site.yaml:4:5:") and found[1].startswith("site.yaml:5:22:")


def test_missing_secrets_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readable = tmp_path / "password.txt"
    readable.write_text("x")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "version: 1\nrules:\n"
        f"  - {{name: ok, match: {{cameras: [a]}}, output: {{password: {{file: {readable}}}}}}}\n"
        f"  - {{name: b, match: {{cameras: [b]}}, output: {{password: {{file: {tmp_path}/no}}}}}}\n"
        "  - {name: c, match: {cameras: [c]}, output: {password: {env: PM_TEST_UNSET}}}\n"
        "  - {name: d, match: {cameras: [d]}, output: {password: {credential: pw}}}\n"
    )
    monkeypatch.delenv("PM_TEST_UNSET", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    problems = secret_problems(RuleSet.load([rules]))
    assert [p.message for p in problems] == [
        f"password file {tmp_path}/no does not exist",
        "environment variable PM_TEST_UNSET is not set",
        "systemd credential pw is not in $CREDENTIALS_DIRECTORY",
    ]
    lines = rules.read_text().splitlines()
    for problem, key in zip(problems, ("file", "env", "credential"), strict=True):
        assert not problem.warning
        assert lines[problem.line - 1][problem.column - 1 :].startswith(key)  # points at the key
    (credentials / "pw").write_text("x")
    monkeypatch.setenv("PM_TEST_UNSET", "set")
    assert [p.message for p in secret_problems(RuleSet.load([rules]))] == [
        f"password file {tmp_path}/no does not exist"
    ]
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    (last,) = [p for p in secret_problems(RuleSet.load([rules])) if "credential" in p.message]
    assert last.warning  # outside systemd it cannot be checked


def test_examples_are_valid() -> None:
    ruleset = RuleSet.load(sorted(EXAMPLES.glob("*.yaml")))
    assert len(ruleset.rules) >= 4
    for placed in ruleset.rules:
        compile_plan(placed.rule)
    case = next(p.rule for p in ruleset.rules if p.rule.name == "case-2026-1142")
    custody = compile_custody(case)
    assert custody.recipients and len(custody.recipients) == 2
    assert (custody.delete_source, custody.retention_days) == (True, 180)
