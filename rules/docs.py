"""Key tables for the docs, rendered from the pydantic schemas, so the two cannot drift.

A table has one row per key: its path, type, default, bounds and description, all read from
the model's fields. `fill` puts each table between its markers in a markdown file,
``<!-- generated: NAME -->`` and ``<!-- end generated -->``, and keeps everything else.
`RULES_SECTIONS` are the tables of `docs/rules.md`; `python -m privmask.daemon.docs` writes
them and the daemon's own (the rules layer knows nothing of the daemon's config).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, time
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from privmask.rules.match import Match
from privmask.rules.schema import (
    LiveSpec,
    Output,
    RegionSpec,
    Rule,
    RuleFile,
    Selection,
    Targets,
    TargetSpec,
)

SECTION = re.compile(
    r"(<!-- generated: (?P<name>[^>]+?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S
)
NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}
NAMES_OF_TIME = {time: "time of day, `HH:MM`", date: "date, `YYYY-MM-DD`"}


@dataclass(frozen=True)
class Part:
    """The keys of one model in a table, each path starting with `prefix`; with `nested`,
    the keys of the mappings inside it follow their own row."""

    model: type[BaseModel]
    prefix: str = ""
    nested: bool = True


RULES_SECTIONS: dict[str, tuple[Part, ...]] = {
    "rules file": (Part(RuleFile, nested=False), Part(Rule, "rules[].", nested=False)),
    "rules match": (Part(Match, "match."),),
    "rules targets": (Part(Targets, "targets.", nested=False), Part(TargetSpec, "targets.*.")),
    "rules regions": (Part(RegionSpec, "regions[]."),),
    "rules selection": (Part(Selection, "selection."),),
    "rules output": (Part(Output, "output."),),
    "rules live": (Part(LiveSpec, "live."),),
}


def render(parts: tuple[Part, ...]) -> str:
    """A markdown table of every key of `parts`."""
    lines = ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
    for part in parts:
        for row in _rows(part):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def fill(text: str, tables: Mapping[str, str]) -> str:
    """`text` with the body of each marked section replaced by its table.

    A section named in `tables` but missing from `text`, or marked in `text` but unknown,
    is an error: neither may silently go stale.
    """
    found = [m["name"] for m in SECTION.finditer(text)]
    unknown, missing = set(found) - set(tables), set(tables) - set(found)
    if unknown or missing:
        raise ValueError(f"generated sections unknown {sorted(unknown)}, missing {sorted(missing)}")
    return SECTION.sub(lambda m: m[1] + tables[m["name"]] + m[4], text)


def _rows(part: Part) -> Iterator[tuple[str, str, str, str, str]]:
    for name, field in part.model.model_fields.items():
        key = part.prefix + (field.alias or name)
        yield (
            f"`{key}`",
            _type(field.annotation),
            _default(field),
            _bounds(field),
            field.description or "",
        )
        if part.nested:
            for model, many in _models(field.annotation):
                yield from _rows(Part(model, key + ("[]." if many else ".")))


def _models(annotation: Any, many: bool = False) -> Iterator[tuple[type[BaseModel], bool]]:
    """The models inside an annotation, and whether each comes in a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, many
    elif get_origin(annotation) is list:
        yield from _models(get_args(annotation)[0], True)
    elif _is_union(annotation):
        for arg in get_args(annotation):
            yield from _models(arg, many)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _type(annotation: Any) -> str:
    if _is_union(annotation):
        kinds = [_type(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(kinds)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:  # a type with its own checks, e.g. an escrow recipient
        return _type(args[0])
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin is Literal:
        return ", ".join(f"`{a}`" for a in args)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return ", ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation in NAMES_OF_TIME:
        return NAMES_OF_TIME[annotation]
    return NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    if value is None:
        return "none"
    return f"`{_plain(value)}`"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if value == "":
        return '""'
    return str(value)


def _bounds(field: FieldInfo) -> str:
    """From pydantic's constraints (annotated-types' Ge, Gt, Le, Lt, MinLen)."""
    c = {}
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt", "min_length"):
            if getattr(item, name, None) is not None:
                c[name] = getattr(item, name)
    if "min_length" in c:
        return "not empty" if c["min_length"] == 1 else f"at least {c['min_length']} items"
    if "ge" in c and "le" in c:
        return f"{c['ge']}..{c['le']}"
    low = next((f"{c[k]} {op} " for k, op in (("ge", "≤"), ("gt", "<")) if k in c), "")
    high = next((f" {op} {c[k]}" for k, op in (("le", "≤"), ("lt", "<")) if k in c), "")
    return f"{low}x{high}" if low or high else ""
