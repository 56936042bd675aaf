"""A booted Debian 12 container for the packaging checks: debootstrap once, then
`systemd-nspawn --boot --private-network` on a copy, commands run inside with nsenter.

This host's PID 1 is not systemd and has no system bus, so the container is started with
--register=no --keep-unit (no machined, no scope), and `machinectl`/`systemd-run -M` cannot
reach it: nsenter into the container's PID 1 namespaces does the same job. The network is
private (loopback only); everything the container needs is copied in before it boots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("PRIVMASK_TEST_CACHE", "/var/cache/privmask-test"))
MIRROR = "http://deb.debian.org/debian"
# a bootable minimal bookworm; the package's own dependencies are added by `with_packages`
BASE = ("systemd", "systemd-sysv", "dbus", "python3.11", "adduser", "ca-certificates")


def bookworm() -> Path:
    """The cached debootstrap root, made on first use (a few minutes, needs the mirror)."""
    root = CACHE / "bookworm"
    if (root / "etc" / "os-release").exists():
        return root
    scratch = CACHE / "bookworm.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE),
         "bookworm", str(scratch), MIRROR],
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    scratch.rename(root)  # only a whole root is ever used
    return root


def with_packages(root: Path, names: list[str]) -> None:
    """Install `names` (a .deb's dependencies) into the cached root through chroot, with
    the host's network; the booted container itself never reaches the network."""
    missing = [n for n in names if not _installed(root, n)]
    if missing:
        subprocess.run(["chroot", str(root), "apt-get", "update", "-q"], check=True,
                       capture_output=True, timeout=600)  # fmt: skip
        subprocess.run(
            ["chroot", str(root), "apt-get", "install", "-y", "-q", "--no-install-recommends",
             *missing],
            check=True, capture_output=True, timeout=1200,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )  # fmt: skip


def _installed(root: Path, name: str) -> bool:
    done = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Status}", name],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.endswith(" installed")


def depends(deb: Path) -> list[str]:
    """The package names a .deb depends on (alternatives: the first)."""
    fields = [
        subprocess.run(
            ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
        ).stdout  # fmt: skip
        for field in ("Pre-Depends", "Depends")
    ]
    names = []
    for clause in ",".join(fields).split(","):
        name = clause.split("|")[0].split("(")[0].split(":")[0].strip()
        if name:
            names.append(name)
    return names


class Container:
    """A booted copy of a root; `run` executes inside it as root."""

    def __init__(self, base: Path, workdir: Path) -> None:
        self.root = workdir / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(self.root)], check=True)
        self.log = workdir / "console.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self, timeout: float = 120) -> None:
        with self.log.open("wb") as console:
            self.process = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "--boot", "--private-network", "--register=no",
                 "--keep-unit", "--machine=privmask-test", "-D", str(self.root)],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.leader = self._init_pid(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # systemctl fails until PID 1 listens
            state = self.run("systemctl", "is-system-running", "--wait", check=False)
            if state.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise AssertionError(f"container did not boot: {state.stdout}\n{self.console()}")

    def _init_pid(self, timeout: float) -> int:
        """The container's PID 1 as the host sees it: nspawn's child, once it is systemd."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited:\n{self.console()}")
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            time.sleep(0.1)
        raise AssertionError(f"no systemd in the container within {timeout} s")

    def run(
        self, *command: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i",
             "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER=", *command],
            capture_output=True, text=True, input=input, timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr}")
        return done

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        done = self.run("systemctl", "show", unit, "-p", ",".join(properties))
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def poweroff(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # nspawn asks the container's systemd to shut down
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
