"""Run camera scenarios against real ipycam devices inside a private network namespace.

Why a namespace: ipycam binds 0.0.0.0 and answers multicast probes, so on the host it would
collide with other tests and be visible on the machine's network. `unshare -n` gives a
fresh, empty network stack with only loopback, where multicast is routed to lo.

Why a separate venv for ipycam: it depends on the opencv-python GUI wheel, which must never
be installed beside the project's opencv-python-headless. ./scripts/setup creates it at
.venv/peers/ipycam; $PRIVMASK_IPYCAM_VENV overrides where.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
IPYCAM_REQUIREMENT = "ipycam==1.3.0"
DEFAULT_VENV = REPO / ".venv" / "peers" / "ipycam"

NETNS_SETUP = (
    "set -e; ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo; "
)


class PeerSetupError(Exception):
    """The real peer cannot be run here; the message says what to install."""


def ipycam_venv() -> Path:
    return Path(os.environ.get("PRIVMASK_IPYCAM_VENV", DEFAULT_VENV))


def ensure_ipycam_venv() -> Path:
    """The python of the venv with ipycam in it, which ./scripts/setup makes: tests never
    download anything themselves."""
    python = ipycam_venv() / "bin" / "python"
    if not (python.exists() and _imports_ipycam(python)):
        raise PeerSetupError(
            f"no {IPYCAM_REQUIREMENT} venv at {ipycam_venv()}: run ./scripts/setup "
            f"(it runs: python3 -m venv {DEFAULT_VENV} && "
            f"{DEFAULT_VENV}/bin/pip install {IPYCAM_REQUIREMENT})"
        )
    return python


def _imports_ipycam(python: Path) -> bool:
    done = subprocess.run([str(python), "-c", "import ipycam"], capture_output=True)
    return done.returncode == 0


def check_namespaces() -> None:
    """unshare and ip must work (root, or unprivileged user namespaces)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        raise PeerSetupError("the camera tests need unshare (util-linux) and ip (iproute2)")
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", NETNS_SETUP + "true"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise PeerSetupError(f"cannot make a network namespace: {done.stderr.strip()}")


def run_scenario(name: str, work: Path, timeout: float = 50, **params: Any) -> dict[str, Any]:
    """Run camera_scenarios.py NAME inside a fresh namespace; its JSON answer."""
    peer_python = ensure_ipycam_venv()
    params = {"work": str(work), "peer_python": str(peer_python), **params}
    script = HERE / "camera_scenarios.py"
    command = NETNS_SETUP + 'exec "$0" "$1" "$2" "$3"'
    done = subprocess.run(
        [
            "unshare",
            "-n",
            "bash",
            "-c",
            command,
            sys.executable,
            str(script),
            name,
            json.dumps(params),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=work,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"scenario {name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    answer: dict[str, Any] = json.loads(lines[-1])
    answer["_stderr"] = done.stderr
    return answer


def scenario(name: str, work: Path) -> dict[str, Any]:
    """Run a scenario for a test; a peer that cannot run here fails the test (never skips)."""
    import pytest

    try:
        check_namespaces()
        return run_scenario(name, work)
    except PeerSetupError as exc:
        pytest.fail(str(exc))
