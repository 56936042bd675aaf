"""`privmask rules check` as the README shows it to a newcomer on a fresh clone."""

from __future__ import annotations

from pathlib import Path

from test_cli import privmask

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def test_a_folder_with_no_rule_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("rules go in *.yaml files\n")
    done = privmask("rules", "check", tmp_path)
    assert done.returncode == 1
    assert f"{tmp_path}: no rule file (*.yaml, *.yml) in this folder" in done.stderr
    assert not done.stdout.startswith("ok")


def test_the_shipped_examples_pass_without_the_deployment_checks() -> None:
    env = {"PRIVMASK_CASE_PASSWORD": ""}  # empty counts as not set
    full = privmask("rules", "check", EXAMPLES, env=env)
    assert full.returncode == 1  # the secrets they name exist only on a deployed host
    assert "environment variable PRIVMASK_CASE_PASSWORD is not set" in full.stderr
    done = privmask("rules", "check", "--no-secrets", EXAMPLES, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ") and "error" not in done.stderr
