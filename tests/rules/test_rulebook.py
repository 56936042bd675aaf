"""The daemon's rule book on a real folder with real watchdog events."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from privmask.adapters.models import ModelError
from privmask.daemon.pipeline.setup import check_models
from privmask.daemon.rulebook import RuleBook, current_snapshot, publish, snapshot
from privmask.rules.files import RuleFileError
from privmask.rules.match import Facts
from privmask.rules.ruleset import RuleSet

from harness import eventually

FACES = "version: 1\nrules:\n  - {name: faces, targets: {face: {}}}\n"
PEOPLE = "version: 1\nrules:\n  - {name: people, match: {cameras: [GATE]}, targets: {person: {}}}\n"


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


def test_a_snapshot_changed_after_it_was_published_is_refused(tmp_path: Path) -> None:
    """What a worker names by digest (`snapshot`, the set a `done` report says it used) is
    loaded only as it was published: a file edited since makes another set."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(FACES)
    snapshots = tmp_path / "rulesets"
    published = RuleSet.from_paths([rules])
    publish(published, snapshots)
    assert snapshot(snapshots, published.digest).digest == published.digest
    (snapshots / published.digest / "a.yaml").write_text(PEOPLE)
    with pytest.raises(RuleFileError, match="snapshot was altered"):
        snapshot(snapshots, published.digest)


REGION = (
    "version: 1\nrules:\n  - name: corner\n    regions:\n"
    "      - {points: [[0, 0], [0.1, 0], [0.1, 0.1]]}\n"
)


@pytest.fixture
def no_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[RuleSet], None]:
    """The check the daemon makes of each set, on a site where no model is installed."""
    monkeypatch.delenv("PRIVMASK_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    empty = tmp_path / "models"
    empty.mkdir()
    return functools.partial(check_models, models_dir=empty)


def test_a_set_needing_a_missing_model_is_refused_at_start_and_kept_out_on_reload(
    tmp_path: Path, no_models: Callable[[RuleSet], None]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(FACES)
    with pytest.raises(ModelError, match="rule faces needs model yunet, which is not installed"):
        RuleBook(rules, accept=no_models)
    (rules / "a.yaml").write_text(REGION)  # needs no model
    with capture_logs() as logs, RuleBook(rules, settle_seconds=0.1, accept=no_models) as book:
        good = book.current
        (rules / "b.yaml").write_text(PEOPLE)
        assert eventually(lambda: any(e["event"] == "rules_invalid_kept_last_good" for e in logs))
        assert book.current is good
        kept = next(e for e in logs if e["event"] == "rules_invalid_kept_last_good")
        assert kept["rule_set"] == good.digest
        assert kept["problems"][0].startswith(
            "rule people needs model yolox-nano, which is not installed: "
        )


def test_an_unexpected_error_in_a_reload_is_one_event_and_the_book_keeps_working(
    tmp_path: Path,
) -> None:
    rules, snapshots = tmp_path / "rules", tmp_path / "rulesets"
    rules.mkdir()
    (rules / "a.yaml").write_text(FACES)
    with (
        capture_logs() as logs,
        RuleBook(rules, settle_seconds=0.1, snapshots=snapshots) as book,
    ):
        good = book.current
        shutil.rmtree(snapshots)
        snapshots.write_text("not a folder")  # publishing the next set fails
        (rules / "a.yaml").write_text(PEOPLE)
        assert eventually(lambda: any(e["event"] == "rules_reload_failed" for e in logs))
        failed = next(e for e in logs if e["event"] == "rules_reload_failed")
        assert failed["log_level"] == "error" and failed["error_type"] == "FileExistsError"
        assert failed["rule_set"] == good.digest
        assert book.current is good
        snapshots.unlink()  # fixed: the next change is taken
        (rules / "a.yaml").write_text(PEOPLE + "# edited\n")
        assert eventually(lambda: book.current is not good)
    assert current_snapshot(snapshots).digest == book.current.digest
