"""Logging: JSON lines for the daemon (one event per step), readable lines for the CLI.

In JSON mode nothing may write a raw traceback between the events (a log shipper would
split it into dozens of broken records): an error nobody caught, in the main thread, in
another thread, or inside a `__del__` (pyzipper on a full disk), becomes one event with the
error's type and message and the line it was raised at.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import logging
import os
import sys
import threading
from types import TracebackType
from typing import Any

import structlog

_log = structlog.get_logger("privmask")


def configure(json: bool) -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    if json:  # at a terminal (the CLI), a developer is better served by the whole traceback
        sys.excepthook = _uncaught
        threading.excepthook = _thread_crashed
        sys.unraisablehook = _ignored


def describe(exc: BaseException | None, tb: TracebackType | None = None) -> dict[str, Any]:
    """An error as log fields: its type, its message, and where it was raised."""
    if exc is None:
        return {"error_type": "None", "error": ""}
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    fields: dict[str, Any] = {"error_type": name, "error": str(exc)}
    tb = tb or exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        code = tb.tb_frame.f_code
        fields["at"] = f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"
    return fields


def _emit(event: str, fields: dict[str, Any]) -> None:
    try:
        _log.error(event, **fields)
    except Exception:  # the logger itself failed: still one line, and never a traceback
        with contextlib.suppress(Exception):
            line = jsonlib.dumps({"event": event, "level": "error", **fields}, default=str)
            print(line, file=sys.__stderr__, flush=True)


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        _emit("interrupted", {})
        return
    _emit("uncaught_exception", describe(exc, tb))


def _thread_crashed(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # a thread that exits on purpose, as threading itself treats it
    thread = args.thread.name if args.thread is not None else None
    _emit("thread_crashed", {"thread": thread, **describe(args.exc_value, args.exc_traceback)})


def _ignored(unraisable: Any) -> None:  # sys.UnraisableHookArgs
    target = unraisable.object
    where = getattr(target, "__qualname__", None) or type(target).__qualname__
    fields = describe(unraisable.exc_value, unraisable.exc_traceback)
    _emit("exception_ignored", {"where": where, **fields})
