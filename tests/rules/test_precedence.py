"""Which rule applies: most specific, then priority, then order; and the warnings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from privmask.rules.match import Facts
from privmask.rules.ruleset import NoRuleApplies, RuleSet


def ruleset(tmp_path: Path, **files: str) -> RuleSet:
    for name, body in files.items():
        (tmp_path / f"{name}.yaml").write_text("version: 1\nrules:\n" + body)
    return RuleSet.from_paths([tmp_path])


def test_most_specific_wins_then_priority_then_order(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        a_default="  - {name: default, targets: {face: {}}}\n",
        b_cameras="  - {name: lobby, match: {cameras: [LOBBY]}, targets: {person: {}}}\n"
        "  - {name: lobby-urgent, priority: 5, match: {cameras: [LOBBY]}, targets: {plate: {}}}\n"
        "  - {name: lobby-night, match: {cameras: [LOBBY], times: [{from: '20:00', to: '06:00'}]}, targets: {face: {}}}\n"
        "  - {name: lobby-late, match: {cameras: [LOBBY], times: [{from: '22:00', to: '06:00'}]}, targets: {face: {}}}\n",
    )
    day, night = datetime(2026, 11, 26, 12), datetime(2026, 11, 26, 23)
    assert rules.decide(Facts(camera="GATE", when=day)).rule.rule.name == "default"
    assert rules.decide(Facts(camera="LOBBY", when=day)).rule.rule.name == "lobby-urgent"
    decision = rules.decide(Facts(camera="LOBBY", when=night))
    assert decision.rule.rule.name == "lobby-night"  # two criteria beat priority 5
    reasons = "\n".join(decision.reasons)
    assert "lobby-late (" in reasons and "loses: comes later" in reasons
    assert "lobby-urgent (" in reasons and "loses: less specific" in reasons
    assert [t.target for t in decision.plan.targets] == ["face"]


def test_file_order_is_by_name_and_the_hash_changes_with_content(tmp_path: Path) -> None:
    first = ruleset(
        tmp_path,
        b="  - {name: from-b, targets: {face: {}}}\n",
        a="  - {name: from-a, targets: {person: {}}}\n",
    )
    assert first.decide(Facts()).rule.rule.name == "from-a"
    (tmp_path / "a.yaml").write_text(
        "version: 1\nrules:\n  - {name: from-a, targets: {plate: {}}}\n"
    )
    second = RuleSet.from_paths([tmp_path])
    assert second.digest != first.digest
    assert RuleSet.from_paths([tmp_path]).digest == second.digest


def test_no_rule_applies_says_why(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path, only="  - {name: gate, match: {cameras: [GATE]}, targets: {face: {}}}\n"
    )
    with pytest.raises(
        NoRuleApplies, match=r"gate \(.*\) does not apply: camera LOBBY is not one of"
    ):
        rules.decide(Facts(camera="LOBBY"))


def test_warnings(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        empty="  []\n",
        site="  - {name: old, match: {dates: [{to: 2020-01-01}]}, targets: {face: {}}}\n"
        "  - {name: nothing, match: {cameras: [X]}}\n"
        "  - {name: first, match: {cameras: [Y]}, targets: {face: {}}}\n"
        "  - {name: shadowed, match: {cameras: [Y]}, targets: {person: {}}}\n",
    )
    messages = [(w.warning, w.line, w.message) for w in rules.warnings]
    assert (True, 2, "this file has no rules") in messages
    assert (True, 3, "rule old matches nothing: all its dates are past") in messages
    assert (True, 4, "rule nothing masks nothing") in messages
    assert any(
        m.startswith("rule shadowed can never apply: first (") and line == 6
        for _, line, m in messages
    )
    assert len(messages) == 4
