"""What a command loads before it works: each command imports what it uses, not what every
other command uses (a whole redaction of a 10 s clip takes a few seconds, and importing
every command's libraries took half a second of it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# what only other commands need: signing and escrow, the daemon's configuration and journal
NOT_FOR_REDACT = (
    "Cryptodome",
    "pyrage",
    "pyzipper",
    "privmask.adapters.minisign",
    "privmask.adapters.package",
    "privmask.daemon.custody",
    "privmask.daemon.config",
    "privmask.daemon.journal",
    "privmask.daemon.service",
)
# a clip with fixed regions only runs no detector
NOT_FOR_STATIC = (*NOT_FOR_REDACT, "onnxruntime", "onnx")

LOADED = """
import sys
from privmask.daemon.cli import main
code = main(sys.argv[1:])
print("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""


def loaded_by(*args: str | Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def unwanted(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


def test_redacting_static_regions_loads_no_model_runtime_nor_custody(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    loaded = loaded_by(
        "redact", clip, out, "--quiet", "--detect", "none", "--region", "0,0,0.5,0.5"
    )
    assert out.exists()
    assert unwanted(loaded, NOT_FOR_STATIC) == []


def test_redact_help_loads_nothing_of_the_other_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOADED.replace("main(sys.argv[1:])", "0"), "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert unwanted(set(done.stdout.split()), NOT_FOR_STATIC) == []
