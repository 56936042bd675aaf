"""Reading the YAML people write (rule files, the daemon's config) within fixed bounds.

PyYAML builds its node tree and its values recursively and expands an alias wherever it is
used: a file nested thousands deep ends in a RecursionError, a few hundred bytes of aliases
stand for a billion values, and megabytes take minutes and gigabytes. So the size is checked
before the file is read, and one flat pass over the event stream (no recursion, nothing
built) checks nesting and expanded size before anything is composed. Only then is the text
composed, once, into nodes that keep their positions, and the nodes turned into values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20  # 1 MiB: hundreds of times a large site's rules
MAX_DEPTH = 64  # a rule file needs 7 levels, the config 4
MAX_VALUES = 1 << 20  # with aliases expanded; a file within MAX_FILE_BYTES has fewer without

# libyaml where PyYAML was built with it (several times faster); the same results otherwise
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(ValueError):
    """A file beyond a bound; `line` and `column` count from 1."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def read_text(path: Path, what: str) -> str:
    """The file's text, refused unread when it is over MAX_FILE_BYTES. `what` names the kind
    of file in the message ("a rule file"). OSError and UnicodeDecodeError pass through."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        data = b"" if size > MAX_FILE_BYTES else file.read(MAX_FILE_BYTES + 1)
    if size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:  # the latter: it grew, or a pipe
        shown = f"{size} bytes" if size > MAX_FILE_BYTES else f"more than {MAX_FILE_BYTES} bytes"
        raise YamlLimitError(f"file is {shown}; {what} may have at most {MAX_FILE_BYTES} (1 MiB)")
    return data.decode("utf-8")


def load(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (with positions) and its plain value, parsed once.

    Raises YamlLimitError past a bound, yaml.YAMLError for text that is not YAML."""
    check_shape(text)
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


@dataclass
class _Open:
    """A mapping or sequence being read: how many values it stands for (itself included)
    and how many levels deep it goes (1: it holds no mapping or sequence)."""

    anchor: str | None
    values: int = 1
    height: int = 1

    def hold(self, values: int, height: int) -> None:
        self.values += values
        self.height = max(self.height, height + 1)


def check_shape(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH or more than MAX_VALUES values, counting what an
    alias stands for each time it is used, in one pass over the parser's events."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, height) of what it names
    stack: list[_Open] = []
    total = 0
    for event in yaml.parse(text, Loader=LOADER):
        where = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Open(event.anchor))
            total += 1
            _check(len(stack) <= MAX_DEPTH, DEEP, where)
        elif isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                anchors[done.anchor] = (done.values, done.height)
            if stack:
                stack[-1].hold(done.values, done.height)
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            values, height = _value(event, anchors, where)
            total += values
            _check(len(stack) + height <= MAX_DEPTH, DEEP, where)
            if stack:
                stack[-1].hold(values, height)
        _check(total <= MAX_VALUES, WIDE, where)


DEEP = f"mappings and lists are nested more than {MAX_DEPTH} deep"
WIDE = f"the document expands to more than {MAX_VALUES} values (through aliases)"


def _value(
    event: yaml.ScalarEvent | yaml.AliasEvent,
    anchors: dict[str, tuple[int, int]],
    where: tuple[int, int],
) -> tuple[int, int]:
    """(values, height) of a scalar, or of what an alias names."""
    if isinstance(event, yaml.ScalarEvent):
        if event.anchor is not None:
            anchors[event.anchor] = (1, 0)
        return 1, 0
    # an alias used inside what its anchor names would be a cycle: never finished here
    _check(event.anchor in anchors, f"alias *{event.anchor} names no finished anchor", where)
    return anchors[event.anchor]


def _check(holds: bool, message: str, where: tuple[int, int]) -> None:
    if not holds:
        raise YamlLimitError(message, *where)
