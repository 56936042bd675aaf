"""One secret reference: rule files and the daemon's config both compile to a SecretSource."""

from __future__ import annotations

from pathlib import Path

import pytest

from privmask.daemon.config import ConfigError, load_config
from privmask.daemon.secrets import SecretError
from privmask.rules.files import RuleFileError, parse_rules
from privmask.rules.ruleset import compile_output
from privmask.rules.secret import SecretSource


def rule_with(password: str) -> str:
    return f"version: 1\nrules:\n  - name: a\n    output: {{password: {password}}}\n"


def config_with(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "privmask.yaml"
    path.write_text(f"password: {password}\nstate: {tmp_path / 'state'}\n")
    return path


@pytest.mark.parametrize(
    ("yaml", "source"),
    [
        ("{file: /etc/pw}", SecretSource("file", "/etc/pw")),
        ("{env: SITE_PW}", SecretSource("env", "SITE_PW")),
        ("{credential: package-password}", SecretSource("credential", "package-password")),
    ],
)
def test_rules_and_config_compile_to_the_same_source(
    tmp_path: Path, yaml: str, source: SecretSource
) -> None:
    rule = parse_rules(rule_with(yaml)).rules.rules[0]
    assert compile_output(rule).password == source
    assert load_config(config_with(tmp_path, yaml)).password == source


def test_the_password_flag_is_a_file_source(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, "{env: X}"), password_file=Path("/etc/pw"))
    assert config.password == SecretSource("file", "/etc/pw")
    assert load_config(None).password is None


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("{file: /a, env: B}", "give exactly one of file, env or credential"),
        ("{}", "give exactly one of file, env or credential"),
        ("{credential: ../escape}", "must be a plain name"),
        ("{env: A=B}", "contains '='"),
        ("{argv: x}", "unknown key"),
    ],
)
def test_bad_references_are_refused_where_they_are_written(
    tmp_path: Path, yaml: str, message: str
) -> None:
    with pytest.raises(RuleFileError, match="rules.0.output.password") as caught:
        parse_rules(rule_with(yaml), "site.yaml")
    assert message in str(caught.value)
    path = config_with(tmp_path, yaml)
    with pytest.raises(ConfigError, match="password") as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}: password")
    if message != "unknown key":  # the config says it in pydantic's words
        assert str(refused.value).endswith(message)


def test_secret_error_is_one_type_in_both_layers() -> None:
    from privmask.rules.secret import SecretError as RulesSecretError

    assert SecretError is RulesSecretError
    with pytest.raises(SecretError, match="needs a reference"):
        SecretSource("file", "")
