"""Reading rule files: YAML in, validated `RuleFile` out, every error with file, line, column.

The text is read and parsed within bounds (`rules.yamlfile`: size, nesting, aliases), once,
into nodes, which keep their positions, and the plain data pydantic validates. A pydantic
error's location (a path of keys and indices) is then walked down the node tree to the line
and column an integrator must look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from privmask.rules.schema import RuleFile
from privmask.rules.yamlfile import YamlLimitError, load, read_text


@dataclass(frozen=True)
class Problem:
    """One error or warning, pointing into a file (line and column count from 1)."""

    path: str
    line: int
    column: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning" if self.warning else "error"
        return f"{self.path}:{self.line}:{self.column}: {kind}: {self.message}"


class RuleFileError(Exception):
    """A rule file is invalid; `problems` lists every error found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Located:
    """A valid rule file, with the means to point at any of its keys."""

    rules: RuleFile
    path: str
    text: str
    root: yaml.Node | None

    def problem(
        self, location: Sequence[str | int], message: str, warning: bool = False
    ) -> Problem:
        node, key_node = _walk(self.root, list(location))
        target = key_node or node
        mark = target.start_mark if target is not None else None
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(self.path, line, column, message, warning)


def load_rule_file(path: Path) -> Located:
    try:
        text = read_text(path, "a rule file")
    except YamlLimitError as exc:
        raise RuleFileError([Problem(str(path), exc.line, exc.column, exc.message)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError([Problem(str(path), 1, 1, f"cannot read: {exc}")]) from None
    return parse_rules(text, str(path))


def parse_rules(text: str, path: str = "<rules>") -> Located:
    try:
        root, data = load(text)
    except YamlLimitError as exc:
        raise RuleFileError([Problem(path, exc.line, exc.column, exc.message)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError([Problem(path, line, column, f"not valid YAML: {reason}")]) from None
    if not isinstance(data, dict):
        raise RuleFileError([Problem(path, 1, 1, "expected a mapping with 'version' and 'rules'")])
    try:
        return Located(RuleFile.model_validate(data), path, text, root)
    except ValidationError as exc:
        located = Located(RuleFile.model_construct(), path, text, root)
        problems = sorted(
            (_problem(located, e) for e in exc.errors()), key=lambda p: (p.line, p.column)
        )
        raise RuleFileError(problems) from None


def _problem(located: Located, error: ErrorDetails) -> Problem:
    location = [part for part in error["loc"] if not _is_pydantic_tag(part)]
    where = ".".join(str(p) for p in location) or "file"
    return located.problem(location, f"{where}: {_message(error)}")


def _is_pydantic_tag(part: object) -> bool:
    # unions and tagged models add steps such as 'function-after[...]' to the location
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _walk(node: yaml.Node | None, location: list) -> tuple[yaml.Node | None, yaml.Node | None]:  # type: ignore[type-arg]
    """The node at `location`, and the key node naming it (where the message points)."""
    key_node = None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return node, key_node  # a missing key: point at the mapping that lacks it
            key_node, node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node, key_node
            node, key_node = node.value[part], None
        else:
            break
    return node, key_node


def _message(error: ErrorDetails) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    return message[0].lower() + message[1:]
