"""The daemon's JSON log: an error nobody caught is one event, never a raw traceback."""

from __future__ import annotations

import json
import subprocess
import sys

# what a full disk under pyzipper, a crashing thread and a crashing main thread look like
FAULTS = """
import threading
from privmask.daemon.logs import configure
configure(json=True)

class ZipFile:
    def __del__(self):
        raise OSError(28, "No space left on device")

ZipFile()
thread = threading.Thread(target=lambda: {}["missing"], name="reader")
thread.start()
thread.join()
raise RuntimeError("the last straw")
"""


def test_uncaught_errors_are_one_json_event_each() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events] == [
        "exception_ignored",
        "thread_crashed",
        "uncaught_exception",
    ]
    ignored, thread, main = events
    assert (ignored["error_type"], ignored["error"]) == (
        "OSError",
        "[Errno 28] No space left on device",
    )
    assert ignored["where"] == "ZipFile.__del__"
    assert (thread["error_type"], thread["thread"]) == ("KeyError", "reader")
    assert (main["error_type"], main["error"]) == ("RuntimeError", "the last straw")
    assert all(e["level"] == "error" and e["at"] for e in events)


def test_the_console_log_is_left_alone() -> None:
    code = "from privmask.daemon.logs import configure\nconfigure(json=False)\nraise KeyError(1)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Traceback" in result.stderr  # a developer at a terminal gets the whole story
