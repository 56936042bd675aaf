"""A rule's `selection` names subjects of an analysis; `tracks:` is the deprecated old name."""

from __future__ import annotations

from pathlib import Path

import pytest

from privmask.rules.files import RuleFileError
from privmask.rules.match import Facts
from privmask.rules.ruleset import RuleSet


def ruleset(tmp_path: Path, selection: str) -> RuleSet:
    (tmp_path / "case.yaml").write_text(
        "version: 1\nrules:\n  - name: case\n    targets: {face: {}, person: {}}\n"
        f"    selection: {selection}\n"
    )
    return RuleSet.from_paths([tmp_path])


def test_subjects_are_selected_by_id(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, "{mode: except, subjects: [4]}")
    plan = rules.decide(Facts(camera="X")).plan
    assert plan.selection.subjects == frozenset({4})
    assert (plan.selection.masks(4), plan.selection.masks(3)) == (False, True)
    assert not rules.warnings


def test_tracks_is_read_as_subject_ids_with_a_warning(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, "{mode: only, tracks: [2]}")
    plan = rules.decide(Facts(camera="X")).plan
    assert (plan.selection.mode, plan.selection.subjects) == ("only", frozenset({2}))
    [warning] = rules.warnings
    assert warning.warning and warning.line == 5
    assert "`tracks` is deprecated" in warning.message and "subjects" in warning.message


@pytest.mark.parametrize(
    ("selection", "words"),
    [
        ("{mode: except, subjects: [1], tracks: [1]}", "give `subjects` only"),
        ("{mode: only}", "mode 'only' needs a list of subjects"),
        ("{subjects: [3]}", "subjects are listed but mode is 'all'"),
    ],
)
def test_bad_selections_are_located(tmp_path: Path, selection: str, words: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        ruleset(tmp_path, selection)
    [problem] = caught.value.problems
    assert words in problem.message and problem.line == 5
