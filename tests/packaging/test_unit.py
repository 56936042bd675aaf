"""The systemd unit, sysusers and tmpfiles files as systemd's own tools read them.

Fast (well under a second, no package built): runs in the default suite wherever
systemd-analyze is installed. The service really running is tests/packaging/test_nspawn.py.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from privmask.daemon.service import SHUTDOWN_SECONDS

SYSTEMD = Path(__file__).parents[2] / "packaging" / "deb" / "systemd"
UNIT = SYSTEMD / "privmask.service"
EXPOSURE_LIMIT = 2.0  # systemd-analyze security: 2.0 and below reads "OK"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def settings(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, in order (systemd allows a key several times)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def system_root(tmp_path: Path) -> Path:
    """A root as the package leaves it: the unit, the site drop-in, /usr/bin/privmask, and
    the host's own units (verify follows the unit's dependencies into them)."""
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    (units / "privmask.service.d").mkdir(parents=True)
    shutil.copy(UNIT, units)
    shutil.copy(SYSTEMD / "site.conf", units / "privmask.service.d")
    (root / "usr" / "bin").mkdir(parents=True)
    binary = root / "usr" / "bin" / "privmask"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree(
        "/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True
    )
    return root


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    """verify exits 0 even on settings it ignores: any line it prints is a mistake."""
    root = system_root(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", "privmask.service"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_exposure_is_ok(tmp_path: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for privmask\.service: ([0-9.]+) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found[1]) <= EXPOSURE_LIMIT and found[2] == "OK", done.stdout


def test_the_unit_keeps_what_the_daemon_needs() -> None:
    unit = settings(UNIT)
    assert unit["Type"] == ["notify"]  # daemon/notify.py says READY=1
    assert unit["KillMode"] == ["mixed"]  # SIGTERM to the daemon; it stops its workers
    # the workers' shutdown deadline fits in the stop timeout, with time to checkpoint
    assert float(unit["TimeoutStopSec"][0]) >= SHUTDOWN_SECONDS + 10
    assert unit["LoadCredential"] == ["package-password:/etc/privmask/package-password"]
    # a missing password fails the start once (an assertion), never a restart loop
    assert unit["AssertPathExists"] == ["/etc/privmask/package-password"]
    assert unit["Restart"] == ["on-failure"] and "StartLimitBurst" in unit
    assert "ProcSubset" not in unit  # onnxruntime reads /proc/cpuinfo
    assert not any("@resources" in f for f in unit["SystemCallFilter"])
    assert unit["CapabilityBoundingSet"] == [""] and unit["User"] == ["privmask"]


def test_sysusers_and_tmpfiles_make_the_default_folders(tmp_path: Path) -> None:
    """What the package's postinst does, in a scratch root: the user, then its folders."""
    if shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-sysusers or systemd-tmpfiles is not installed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for tool, conf in (("systemd-sysusers", "privmask.sysusers"),
                       ("systemd-tmpfiles", "privmask.tmpfiles")):  # fmt: skip
        extra = ["--create"] if tool == "systemd-tmpfiles" else []
        done = subprocess.run(
            [tool, *extra, f"--root={root}", str(SYSTEMD / conf)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    passwd = (root / "etc" / "passwd").read_text().split(":")
    assert passwd[0] == "privmask" and passwd[5] == "/var/lib/privmask"
    uid = int(passwd[2])
    home = root / "var" / "lib" / "privmask"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    assert modes == {
        "inbox": 0o2770, "outbox": 0o750, "quarantine": 0o700, "escrow": 0o700,
        "state": 0o700, "models": 0o750,
    }  # fmt: skip
    assert {p.stat().st_uid for p in [home, *home.iterdir()]} == {uid}
