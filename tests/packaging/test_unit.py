"""The systemd units, sysusers and tmpfiles files as systemd's own tools read them.

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
WORKER = SYSTEMD / "privmask-worker.service"
WORKER_CONFIG = Path(__file__).parents[2] / "packaging" / "deb" / "etc" / "worker.yaml"
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
    """A root as the package leaves it: the units, their example site drop-ins,
    /usr/bin/privmask, and the host's own units (verify follows a unit's dependencies)."""
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    for unit, drop_in in ((UNIT, "site.conf"), (WORKER, "worker-site.conf")):
        (units / f"{unit.name}.d").mkdir(parents=True)
        shutil.copy(unit, units)
        shutil.copy(SYSTEMD / drop_in, units / f"{unit.name}.d" / "site.conf")
    (root / "usr" / "bin").mkdir(parents=True)
    binary = root / "usr" / "bin" / "privmask"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree(
        "/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True
    )
    return root


@pytest.mark.parametrize("unit", [UNIT, WORKER], ids=lambda u: u.name)
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path, unit: Path) -> None:
    """verify exits 0 even on settings it ignores: any line it prints is a mistake."""
    root = system_root(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", unit.name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("unit", [UNIT, WORKER], ids=lambda u: u.name)
def test_exposure_is_ok(tmp_path: Path, unit: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    name = re.escape(unit.name)
    found = re.search(rf"Overall exposure level for {name}: ([0-9.]+) (\w+)", done.stdout)
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


def test_the_worker_unit_keeps_what_a_celery_worker_needs() -> None:
    worker = settings(WORKER)
    assert worker["ExecStart"] == ["/usr/bin/privmask worker --config /etc/privmask/worker.yaml"]
    assert worker["Type"] == ["exec"]  # Celery says nothing to sd_notify
    # SIGTERM to the main process alone is Celery's warm shutdown: running jobs finish
    assert worker["KillMode"] == ["mixed"] and worker["KillSignal"] == ["SIGTERM"]
    assert float(worker["TimeoutStopSec"][0]) >= SHUTDOWN_SECONDS
    assert worker["Restart"] == ["on-failure"] and "StartLimitBurst" in worker
    secrets = {
        "package-password": "/etc/privmask/package-password",
        "site-signing-key": "/etc/privmask/site-signing-key",
        "broker-password": "/etc/privmask/broker-password",
    }
    assert dict(c.split(":", 1) for c in worker["LoadCredential"]) == secrets
    # a missing secret fails the start once (an assertion), never a restart loop
    assert sorted(worker["AssertPathExists"]) == sorted(secrets.values())
    # the broker over TCP; no AF_NETLINK (no camera discovery on a worker)
    assert worker["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]


def test_the_worker_is_sandboxed_as_the_daemon_is() -> None:
    """Every hardening setting of privmask.service, the same on the worker but the address
    families (the worker talks to the broker only)."""
    daemon, worker = settings(UNIT), settings(WORKER)
    hardening = [
        key for key in daemon if key.startswith(("Protect", "Private", "Restrict", "System",
                                                 "Capability", "Ambient", "NoNew", "Memory",
                                                 "Lock", "Remove", "Keyring", "Device",
                                                 "User", "Group", "UMask"))
    ]  # fmt: skip
    assert len(hardening) > 20
    for key in hardening:
        if key != "RestrictAddressFamilies":
            assert worker.get(key) == daemon[key], key


def test_the_example_worker_config_names_the_units_credentials(tmp_path: Path) -> None:
    """The conffile loads, and every secret it names is a credential the unit loads."""
    from privmask.daemon.config import load_config

    config = load_config(WORKER_CONFIG)
    assert config.queue is not None and config.queue.password is not None
    named = {
        config.queue.password.credential,
        config.password.reference if config.password else None,
        config.signing_key.reference if config.signing_key else None,
    }
    loaded = {c.split(":", 1)[0] for c in settings(WORKER)["LoadCredential"]}
    assert named == loaded
    assert config.work.is_relative_to("/var/lib/privmask")  # the unit's state directory
    # the commented share mapping is valid once uncommented
    text = WORKER_CONFIG.read_text().replace("  #paths:", "  paths:").replace("  #  /", "    /")
    mapped = tmp_path / "worker.yaml"
    mapped.write_text(text)
    mapping = load_config(mapped).queue
    assert mapping is not None and mapping.paths["/srv/redacted"] == "/mnt/redacted"


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
