"""The daemon's rule book on a real folder with real watchdog events."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from privmask.daemon.rulebook import RuleBook, current_snapshot, publish
from privmask.rules.files import RuleFileError
from privmask.rules.match import Facts

FACES = "version: 1\nrules:\n  - {name: faces, targets: {face: {}}}\n"
PEOPLE = "version: 1\nrules:\n  - {name: people, match: {cameras: [GATE]}, targets: {person: {}}}\n"


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_reloads_valid_changes_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FACES)
    with capture_logs() as logs, RuleBook(tmp_path, settle_seconds=0.1) as book:
        first = book.current
        assert [r.rule.name for r in first.rules] == ["faces"]

        (tmp_path / "b.yaml").write_text(PEOPLE)  # a new file
        assert eventually(lambda: len(book.current.rules) == 2)
        assert book.current.decide(Facts(camera="GATE")).rule.rule.name == "people"
        good = book.current

        (tmp_path / "a.yaml").write_text(
            "version: 1\nrules:\n  - {name: faces, targets: {face: {padding: 9}}}\n"
        )
        assert eventually(lambda: any(e["event"] == "rules_invalid_kept_last_good" for e in logs))
        assert book.current is good  # still in force, whole
        error = next(e for e in logs if e["event"] == "rules_invalid_kept_last_good")
        assert error["log_level"] == "error"
        assert any(f"{tmp_path / 'a.yaml'}:3:" in p and "padding" in p for p in error["problems"])

        (tmp_path / "a.yaml").write_text(FACES)  # fixed again
        (tmp_path / "b.yaml").unlink()  # and a file deleted
        assert eventually(lambda: [r.rule.name for r in book.current.rules] == ["faces"])
        assert book.current.digest == first.digest


def test_emptied_folder_keeps_the_last_good_set(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FACES)
    with capture_logs() as logs, RuleBook(tmp_path, settle_seconds=0.1) as book:
        before = book.current
        (tmp_path / "a.yaml").unlink()
        assert eventually(lambda: any(e["event"] == "rules_invalid_kept_last_good" for e in logs))
        assert book.current is before


def test_an_invalid_folder_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nrules:\n  - {nam: x}\n")
    with pytest.raises(RuleFileError, match="a.yaml:3:6: error: rules.0.nam: unknown key"):
        RuleBook(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuleFileError, match="holds no rule"):
        RuleBook(empty)
    with pytest.raises(RuleFileError, match="no such rule file or folder"):
        RuleBook(tmp_path / "missing")


def test_a_job_keeps_the_set_it_started_with(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FACES)
    with RuleBook(tmp_path, settle_seconds=0.1) as book:
        taken = book.current  # what a job does at its start
        (tmp_path / "a.yaml").write_text(PEOPLE)
        assert eventually(lambda: book.current is not taken)
        assert [r.rule.name for r in taken.rules] == ["faces"]  # unchanged for that job


def test_snapshots_are_published_whole_for_workers(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(FACES)
    snapshots = tmp_path / "rulesets"
    with RuleBook(rules, settle_seconds=0.1, snapshots=snapshots) as book:
        first = book.current
        assert current_snapshot(snapshots).digest == first.digest
        (rules / "a.yaml").write_text(PEOPLE)
        assert eventually(lambda: book.current is not first)
    second = book.current
    assert current_snapshot(snapshots).digest == second.digest
    assert (snapshots / "current").read_text() == second.digest
    # one folder per set and the pointer: no scratch folder or temporary pointer left
    assert sorted(p.name for p in snapshots.iterdir()) == sorted(
        [first.digest, second.digest, "current"]
    )
    publish(first, snapshots)  # a set published before: only the pointer moves back
    assert current_snapshot(snapshots).digest == first.digest
    assert len(list(snapshots.iterdir())) == 3
