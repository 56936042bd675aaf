"""The Debian package's service really running under systemd: a booted bookworm container
(systemd-nspawn, private network), the .deb from packaging/deb/build installed with dpkg,
the unit started, a clip with faces redacted into a package, the unit stopped, and the
sandbox shown to refuse writes outside ReadWritePaths=. Then the worker's unit: refused
without its secrets, and with them, started in its sandbox as far as the broker (the
container has no broker: a worker redacting through one is tests/queue).

Slow (a debootstrap on first use, cached in /var/cache/privmask-test; a boot; a redaction):
marked `packaging`, run by packaging/deb/check, never by the default ./scripts/test.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn import Container, bookworm, depends, with_packages

from privmask.adapters.package import read_package
from privmask.daemon.testing import is_masked, read_frames, write_scene

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
]

REPO = Path(__file__).parents[2]
PASSWORD = "a long site password for the container"
BROKER_PASSWORD = "the broker user's password in the container"
STATE = Path("var/lib/privmask")
DROP_IN = "/etc/systemd/system/privmask.service.d/probe.conf"
PROBE = """
import json, os
def write(folder):
    try:
        with open(os.path.join(folder, ".privmask-probe"), "w"):
            pass
        os.unlink(os.path.join(folder, ".privmask-probe"))
        return "written"
    except OSError as exc:
        return os.strerror(exc.errno)
folders = ["/var/lib/privmask/inbox", "/srv/share", "/srv/elsewhere", "/etc/privmask-probe",
           "/var/log/privmask-probe", "/usr/lib/privmask", "/root", "/tmp"]
seen = {f: write(f) for f in folders}
seen["cpuinfo"] = os.access("/proc/cpuinfo", os.R_OK)
seen["pid1 visible"] = os.path.exists("/proc/1/environ")
with open("/var/lib/privmask/probe.json", "w") as out:
    json.dump(seen, out)
"""


def the_deb() -> Path:
    built = sorted((REPO / "dist").glob("privmask_*_amd64.deb"), key=lambda p: p.stat().st_mtime)
    if not built:
        pytest.fail("no dist/privmask_*_amd64.deb: run packaging/deb/build first")
    return built[-1]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Container]:
    """The booted container with the package's file and the models copied in, not installed."""
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "chroot"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install systemd-container debootstrap")
    deb = the_deb()
    base = bookworm()
    with_packages(base, depends(deb))
    container = Container(base, tmp_path_factory.mktemp("nspawn"))
    shutil.copy(deb, container.root / "root" / "privmask.deb")
    shutil.copytree(models_dir, container.root / "root" / "models")
    try:
        container.boot()
        yield container
    finally:
        container.poweroff()
        shutil.rmtree(container.root, ignore_errors=True)  # a 1.5 GB copy


def test_installed_without_a_password_the_unit_fails_once_and_does_not_loop(
    box: Container,
) -> None:
    box.run("dpkg", "-i", "/root/privmask.deb", timeout=600)
    assert box.run("test", "-x", "/usr/bin/privmask", check=False).returncode == 0
    assert box.show("privmask.service", "ActiveState")["ActiveState"] == "inactive"
    assert box.run("systemctl", "start", "privmask", check=False).returncode != 0
    state = box.show("privmask.service", "ActiveState", "SubState", "NRestarts", "AssertResult")
    # an assertion, not a failed process: no restart is scheduled
    assert state == {"ActiveState": "inactive", "SubState": "dead", "NRestarts": "0",
                     "AssertResult": "no"}  # fmt: skip


def test_a_clip_with_faces_becomes_a_masked_package(box: Container, tmp_path: Path) -> None:
    box.run("install", "-m", "0600", "/dev/stdin", "/etc/privmask/package-password",
            input=PASSWORD + "\n")  # fmt: skip
    box.run("sh", "-c", "cp /root/models/*.onnx /var/lib/privmask/models/ && "
            "chown -R privmask:privmask /var/lib/privmask/models")  # fmt: skip
    box.run("systemctl", "start", "privmask", timeout=300)  # returns at READY=1
    assert box.show("privmask.service", "ActiveState")["ActiveState"] == "active"

    clip = box.root / "root" / "scene.mp4"  # same file system as the inbox: a rename drops it
    scene = write_scene(clip, width=640, height=360, seconds=2.0, pillar=None)
    before = list(read_frames(clip))
    os.rename(clip, box.root / STATE / "inbox" / "CAM01_scene.mp4")

    package = wait_for_package(box, timeout=600)
    video, manifest = read_package(package, PASSWORD.encode(), None)
    (tmp_path / "out.mp4").write_bytes(video)
    after = list(read_frames(tmp_path / "out.mp4"))
    assert len(after) == len(before)
    leaks = [
        (index, target)
        for index, target, face in scene.visible("face", min_size=20)
        if not is_masked(before[index], after[index], face)
    ]
    assert leaks == []
    assert manifest["input"]["sha256"]
    assert PASSWORD not in box.run("journalctl", "-u", "privmask", "--no-pager").stdout


def test_stop_is_orderly_within_the_timeout(box: Container) -> None:
    box.run("systemctl", "stop", "privmask", timeout=120)
    state = box.show("privmask.service", "ActiveState", "Result", "ExecMainStatus")
    # Result=timeout would say systemd had to kill it after TimeoutStopSec=
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    events = journal_events(box)
    assert events[-1] == "stopped" and "stopping" in events


def test_the_sandbox_refuses_writes_outside_read_write_paths(box: Container) -> None:
    """A probe run as ExecStartPre=, so in exactly the unit's sandbox, with the example
    site drop-in's kind of ReadWritePaths= for one share."""
    # folders the user privmask owns: only the sandbox can keep it from writing them
    owned = ["/srv/share", "/srv/elsewhere", "/etc/privmask-probe", "/var/log/privmask-probe"]
    box.run("mkdir", "-p", *owned)
    box.run("chown", "privmask:privmask", *owned)
    # /root is hidden from the service (ProtectHome=): the probe lives under /usr/local
    (box.root / "usr" / "local" / "lib" / "privmask-probe.py").write_text(PROBE)
    drop_in = "[Service]\nReadWritePaths=/srv/share\nExecStartPre=/usr/lib/privmask/bin/python "
    box.run("install", "-D", "-m", "0644", "/dev/stdin", DROP_IN,
            input=drop_in + "/usr/local/lib/privmask-probe.py\n")  # fmt: skip
    try:
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "start", "privmask", timeout=300)
        box.run("systemctl", "stop", "privmask", timeout=120)
    finally:
        box.run("rm", "-f", DROP_IN)
        box.run("systemctl", "daemon-reload")
    seen = json.loads((box.root / STATE / "probe.json").read_text())
    assert seen == {
        "/var/lib/privmask/inbox": "written",  # the state directory
        "/srv/share": "written",  # named in ReadWritePaths=
        "/srv/elsewhere": "Read-only file system",  # ProtectSystem=strict: not listed
        "/etc/privmask-probe": "Read-only file system",
        "/var/log/privmask-probe": "Read-only file system",
        "/usr/lib/privmask": "Read-only file system",
        "/root": "Permission denied",  # ProtectHome=yes: an empty, inaccessible folder
        "/tmp": "written",  # PrivateTmp=: its own
        "cpuinfo": True,  # onnxruntime sizes its threads from it (no ProcSubset=pid)
        "pid1 visible": False,  # ProtectProc=invisible
    }


def test_the_worker_without_its_secrets_fails_once_and_does_not_loop(box: Container) -> None:
    # installed with the package, not enabled; the package password is there (above), the
    # site key and the broker password are not
    assert box.show("privmask-worker.service", "UnitFileState") == {"UnitFileState": "disabled"}
    assert (box.root / "etc" / "privmask" / "worker.yaml").is_file()
    assert box.run("systemctl", "start", "privmask-worker", check=False).returncode != 0
    state = box.show(
        "privmask-worker.service", "ActiveState", "SubState", "NRestarts", "AssertResult"
    )
    assert state == {"ActiveState": "inactive", "SubState": "dead", "NRestarts": "0",
                     "AssertResult": "no"}  # fmt: skip


def test_the_worker_reads_its_secrets_and_names_a_broker_it_cannot_reach(box: Container) -> None:
    """As the README says: the daemon's key copied over, the broker's password, worker.yaml.
    Refused on 127.0.0.1:1 (no broker here) means the sandbox let it open an AF_INET socket
    after it read all three credentials, the models and the work folder."""
    box.run("install", "-m", "0600", "/var/lib/privmask/state/signing.key",
            "/etc/privmask/site-signing-key")  # fmt: skip
    box.run("install", "-m", "0600", "/dev/stdin", "/etc/privmask/broker-password",
            input=BROKER_PASSWORD + "\n")  # fmt: skip
    config = box.root / "etc" / "privmask" / "worker.yaml"
    config.write_text(config.read_text().replace("broker.example.org:5672", "127.0.0.1:1"))
    box.run("systemctl", "start", "privmask-worker", timeout=120)  # Type=exec: it runs
    try:
        line = wait_for_line(box, "privmask-worker", "cannot reach the broker", timeout=300)
    finally:
        box.run("systemctl", "stop", "privmask-worker", timeout=120)
    assert "amqp://privmask@127.0.0.1:1/privmask" in line and "refused" in line.lower(), line
    log = box.run("journalctl", "-u", "privmask-worker", "--no-pager").stdout
    assert BROKER_PASSWORD not in log and PASSWORD not in log
    state = box.show("privmask-worker.service", "ActiveState")
    assert state["ActiveState"] in ("inactive", "failed")


def wait_for_line(box: Container, unit: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = box.run("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout
        found = [line for line in lines.splitlines() if text in line]
        if found:
            return found[0]
        time.sleep(1)
    raise AssertionError(f"no {text!r} from {unit}:\n{lines[-3000:]}")


def wait_for_package(box: Container, timeout: float) -> Path:
    outbox = box.root / STATE / "outbox"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in outbox.glob("*.zip") if not p.name.startswith(".")]
        if found:
            return found[0]
        if box.show("privmask.service", "ActiveState")["ActiveState"] != "active":
            break
        time.sleep(1)
    log = box.run("journalctl", "-u", "privmask", "--no-pager", "-n", "40").stdout
    raise AssertionError(f"no package in the outbox:\n{log}")


def journal_events(box: Container) -> list[str]:
    lines = box.run("journalctl", "-u", "privmask", "-o", "cat", "--no-pager").stdout
    events = []
    for line in lines.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line).get("event", ""))
    return events
