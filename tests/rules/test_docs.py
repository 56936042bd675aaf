"""The key tables of docs/rules.md and docs/config.md are generated from the schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from privmask.daemon.config import ConfigFile
from privmask.daemon.docs import COMMAND, CONFIG_SECTIONS, generate, main
from privmask.rules.docs import RULES_SECTIONS, Part, fill, render
from privmask.rules.schema import RuleFile

DOCS = Path(__file__).resolve().parents[2] / "docs"


def reachable(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """The model and every model nested in its fields, at any depth."""
    yield model
    for field in model.model_fields.values():
        for inner in _models_in(field.annotation):
            yield from reachable(inner)


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


def test_committed_docs_match_the_schemas() -> None:
    for path, expected in generate(DOCS).items():
        assert path.read_text(encoding="utf-8") == expected, (
            f"{path.relative_to(DOCS.parent)} differs from the schema; regenerate it from "
            f"the repository root with: .venv/bin/{COMMAND}"
        )


@pytest.mark.parametrize("root", [RuleFile, ConfigFile])
def test_every_key_has_a_description(root: type[BaseModel]) -> None:
    missing = [
        f"{model.__name__}.{name}"
        for model in set(reachable(root))
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not missing, f"keys without a description: {sorted(missing)}"


@pytest.mark.parametrize(
    ("root", "sections"), [(RuleFile, RULES_SECTIONS), (ConfigFile, CONFIG_SECTIONS)]
)
def test_every_model_has_a_table(
    root: type[BaseModel], sections: dict[str, tuple[Part, ...]]
) -> None:
    covered = {
        model
        for parts in sections.values()
        for part in parts
        for model in (reachable(part.model) if part.nested else [part.model])
    }
    assert set(reachable(root)) <= covered


def row(doc: str, key: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    return next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))


def test_the_custody_keys_are_documented_and_nothing_is_reserved() -> None:
    assert "not implemented" not in (DOCS / "rules.md").read_text(encoding="utf-8")
    assert "omit the key to use the site's recipients" in row("rules.md", "rules[].escrow")
    assert row("rules.md", "rules[].source").startswith("| `rules[].source` | `keep`, `delete` |")
    assert "| integer or none |" not in row("rules.md", "rules[].retention_days")
    assert "1..3650" in row("rules.md", "rules[].retention_days")
    assert row("rules.md", "rules[].escrow").startswith("| `rules[].escrow` | list of string |")
    for key in ("escrow.store", "escrow.recipients", "escrow.retention_days", "signing_key.file"):
        assert row("config.md", key)
    assert row("config.md", "audit_checkpoint_every").startswith(
        "| `audit_checkpoint_every` | integer | `100` | 1..100000 |"
    )


def test_fill_replaces_only_the_marked_sections() -> None:
    text = "intro\n<!-- generated: a -->\nold\n<!-- end generated -->\noutro\n"
    assert fill(text, {"a": "new\n"}) == (
        "intro\n<!-- generated: a -->\nnew\n<!-- end generated -->\noutro\n"
    )
    with pytest.raises(ValueError, match="missing"):
        fill(text, {"a": "new\n", "b": "x\n"})
    with pytest.raises(ValueError, match="unknown"):
        fill(text, {})


def test_rows_show_type_default_and_bounds() -> None:
    table = render(CONFIG_SECTIONS["config keys"])
    assert "| `workers` | integer | `1` | 1..64 |" in table
    assert "| `cameras.timeout` | number | `3.0` | 0 < x ≤ 60 |" in table
    assert "| `cameras.streams[].camera` | string | required | not empty |" in table
    assert "| `password.credential` | string | none |  |" in table


def test_check_reports_stale_docs_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("rules.md", "config.md"):
        (tmp_path / name).write_text((DOCS / name).read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["--check", str(tmp_path)]) == 0
    config = tmp_path / "config.md"
    config.write_text(config.read_text().replace("| `workers` |", "| `helpers` |"))
    assert main(["--check", str(tmp_path)]) == 1
    assert COMMAND in capsys.readouterr().err
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    assert config.read_text() == (DOCS / "config.md").read_text(encoding="utf-8")
