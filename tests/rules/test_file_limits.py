"""Rule and config files are capped in size and nesting before they are parsed deeply:
a hostile or broken file gives one clear error with its file and line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from privmask.daemon.config import ConfigError, load_config
from privmask.daemon.rulebook import RuleBook
from privmask.rules.files import RuleFileError, load_rule_file
from privmask.rules.ruleset import RuleSet
from privmask.rules.yamlfile import MAX_DEPTH, MAX_FILE_BYTES

from harness import eventually

FACES = "version: 1\nrules:\n  - {name: faces, targets: {face: {}}}\n"


def nested(depth: int) -> str:
    """A rule file whose line 4 holds lists nested `depth` deep (the whole file: 3 more)."""
    return f"version: 1\nrules:\n  - name: a\n    match: {{cameras: {'[' * depth}{']' * depth}}}\n"


# libyaml, where PyYAML has it, stops at 1000 levels with its own one-line message
DEEP, NESTING = nested(5000), ("nested more than", "maximum nesting depth")


def privmask(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "privmask.daemon.cli", *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ), timeout=300
    )


def alias_bomb(levels: int = 9) -> str:
    """Each level lists the one before ten times: a few hundred bytes, 10**9 values."""
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    lines.append(f"rules: [{{name: a, match: {{cameras: *a{levels}}}}}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("depth", [MAX_DEPTH - 4 + 1, 5000])
def test_deep_nesting_is_an_error_at_its_line(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(nested(depth))
    with pytest.raises(RuleFileError) as failure:
        load_rule_file(path)
    (problem,) = failure.value.problems
    assert (problem.path, problem.line) == (str(path), 4)
    assert any(words in problem.message for words in NESTING)
    if depth < 1000:
        assert problem.message == f"mappings and lists are nested more than {MAX_DEPTH} deep"
    path.write_text(nested(MAX_DEPTH - 4))  # at the cap: read, and only the schema objects
    with pytest.raises(RuleFileError) as failure:
        load_rule_file(path)
    assert all(
        "cameras.0: input should be a valid string" in p.message for p in failure.value.problems
    )


def test_a_file_over_the_size_cap_is_refused_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    rules = "".join(f"  - {{name: r{i}, targets: {{face: {{}}}}}}\n" for i in range(40_000))
    path.write_text("version: 1\nrules:\n" + rules)
    assert path.stat().st_size > MAX_FILE_BYTES
    with pytest.raises(RuleFileError) as failure:
        load_rule_file(path)
    (problem,) = failure.value.problems
    assert str(problem) == (
        f"{path}:1:1: error: file is {path.stat().st_size} bytes; a rule file may have at most "
        f"{MAX_FILE_BYTES} (1 MiB)"
    )


def test_aliases_that_expand_without_bound_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    with pytest.raises(RuleFileError, match="expands to more than"):
        RuleSet.load([path])


def test_rules_check_names_the_file_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text(DEEP)
    result = privmask("rules", "check", tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'deep.yaml'}:4:" in result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr


def test_the_reload_thread_logs_a_deep_file_and_keeps_reloading(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(FACES)
    with capture_logs() as logs, RuleBook(tmp_path, settle_seconds=0.1) as book:
        good = book.current
        (tmp_path / "a.yaml").write_text(DEEP)
        assert eventually(lambda: any(e["event"] == "rules_invalid_kept_last_good" for e in logs))
        error = next(e for e in logs if e["event"] == "rules_invalid_kept_last_good")
        assert any(words in p for p in error["problems"] for words in NESTING)
        assert book.current is good
        (tmp_path / "a.yaml").write_text(FACES.replace("faces", "faces-again"))
        assert eventually(lambda: book.current.rules[0].rule.name == "faces-again")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inboxes: " + "[" * 5000 + "]" * 5000 + "\n", ":1:"),
        ("workers: 1\n" + "x" * (MAX_FILE_BYTES + 1) + ": 1\n", "at most"),
        (alias_bomb().replace("rules:", "inboxes:"), "expands to more than"),
    ],
)
def test_the_config_file_has_the_same_caps(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "privmask.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    message = str(failure.value)
    assert message.startswith(f"{path}:") and expected in message and "\n" not in message
