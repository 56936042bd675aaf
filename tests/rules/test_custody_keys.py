"""A rule's custody keys: who may read its originals (`escrow`), whether the inbox file stays
(`source`), how long escrow copies are kept (`retention_days`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from privmask.rules.files import RuleFileError, parse_rules
from privmask.rules.match import Facts
from privmask.rules.ruleset import CustodyPlan, RuleSet, compile_custody

AGE = "age128ae0y6dhx0gahr6xlc46f5fjqzzx6v0z3qs5gzq30jlk9wa5a0q6zskaz"
SSH = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRWgpa5BpFrFBmEeO07AOUh2PkeyoAL8snoZPKDbCFL "
    "custodian@court"
)
SECRET = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"

CASE = f"""\
version: 1
rules:
  - name: site
    targets: {{face: {{}}}}
  - name: case
    match: {{cameras: [CAM-7]}}
    targets: {{face: {{}}}}
    escrow:
      - {AGE}
      - "{SSH}"
      - /etc/privmask/custodians.txt
    source: delete
    retention_days: 30
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as failure:
        parse_rules(text, "site.yaml")
    return [str(p) for p in failure.value.problems]


def rule_with(custody: str) -> str:
    return f"version: 1\nrules:\n  - name: a\n    targets: {{face: {{}}}}\n{custody}"


def test_the_decision_carries_the_custody_plan(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CASE)
    rules = RuleSet.load([path])
    case = rules.decide(Facts(camera="CAM-7", when=datetime(2026, 11, 20, 9, 0)))
    assert case.rule.rule.name == "case"
    assert case.custody == CustodyPlan(
        recipients=(AGE, SSH, "/etc/privmask/custodians.txt"),
        delete_source=True,
        retention_days=30,
    )
    site = rules.decide(Facts(camera="CAM-1", when=datetime(2026, 11, 20, 9, 0)))
    assert site.custody == CustodyPlan(recipients=None, delete_source=False, retention_days=None)


def test_compile_custody_of_one_rule() -> None:
    rule = parse_rules(rule_with("    source: keep\n    retention_days: 3650\n")).rules.rules[0]
    assert compile_custody(rule) == CustodyPlan(None, False, 3650)


@pytest.mark.parametrize(
    ("custody", "expected"),
    [
        ("    escrow: []\n",
         "site.yaml:5:5: error: rules.0.escrow: an empty list names no custodian; omit the key "
         "to use the site's recipients"),
        (f"    escrow: {AGE}\n", "site.yaml:5:5: error: rules.0.escrow: input should be a valid list"),
        (f"    escrow: [{AGE}, age1qqqq]\n",
         "site.yaml:5:78: error: rules.0.escrow.1: not an age public key: `age1` and 58 "
         "characters, as `age-keygen` prints it"),
        ("    escrow: [custodians.txt]\n",
         "site.yaml:5:14: error: rules.0.escrow.0: a recipients file is given by its absolute "
         "path, such as /etc/privmask/custodians.txt"),
        ("    escrow: [~/keys/custodians.txt]\n",
         "rules.0.escrow.0: a recipients file is given by its absolute path"),
        ('    escrow: ["ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ court"]\n',
         "rules.0.escrow.0: only SSH ed25519 keys are taken: `ssh-ed25519 AAAA...`"),
        ('    escrow: ["ssh-ed25519 BBBB"]\n',
         "rules.0.escrow.0: not an SSH ed25519 public key: `ssh-ed25519 AAAA...` and an "
         "optional comment, on one line, as in a `.pub` file"),
        ("    escrow: [court]\n",
         "rules.0.escrow.0: not an age public key (`age1...`), an SSH ed25519 public key "
         "(`ssh-ed25519 AAAA...`) or the absolute path of a recipients file"),
        ('    escrow: [""]\n', "rules.0.escrow.0: an empty entry"),
        ("    source: remove\n",
         "site.yaml:5:5: error: rules.0.source: input should be 'keep' or 'delete'"),
        ("    retention_days: 0\n",
         "site.yaml:5:5: error: rules.0.retention_days: input should be greater than or equal to 1"),
        ("    retention_days: 3651\n",
         "rules.0.retention_days: input should be less than or equal to 3650"),
        # the keys reserved before custody existed are gone: a typo-like unknown key now
        (f"    output: {{escrow: [{AGE}]}}\n", "site.yaml:5:14: error: rules.0.output.escrow: unknown key"),
        ("    retention: {originals_days: 30}\n", "site.yaml:5:5: error: rules.0.retention: unknown key"),
    ],
)  # fmt: skip
def test_each_custody_error_names_the_key_and_the_entry(custody: str, expected: str) -> None:
    found = errors_of(rule_with(custody))
    assert any(expected in line for line in found), found


@pytest.mark.parametrize(
    "entry",
    [
        SECRET,
        SECRET.lower(),
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    ],
)
def test_a_secret_given_by_mistake_is_refused_and_never_repeated(entry: str) -> None:
    (found,) = errors_of(rule_with(f'    escrow: [{AGE}, "{entry}"]\n'))
    assert found.startswith("site.yaml:5:") and "rules.0.escrow.1: " in found
    assert entry not in found and entry.strip("-")[-12:] not in found
    if "SECRET" in entry.upper():
        assert "an age secret key, never to be written here: give its public key" in found
        assert "age-keygen -y" in found


def test_every_error_of_the_list_is_reported_at_once() -> None:
    found = errors_of(rule_with("    escrow: [court, custodians.txt, age1x]\n"))
    assert [line.split(": ")[2] for line in found] == [
        "rules.0.escrow.0",
        "rules.0.escrow.1",
        "rules.0.escrow.2",
    ]
