"""The Debian package from packaging/deb/build, checked with Debian's own tools: lintian, then
piuparts (install and purge in a debootstrap bookworm chroot, nothing left behind), then an
upgrade done by hand in such a chroot (piuparts upgrades only from a version in the archive).

Slow (the .deb is 130 MB; a debootstrap on first use, cached in /var/cache/privmask-test):
marked `packaging`, run by packaging/deb/check, never by the default ./scripts/test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroots need root"),
]

REPO = Path(__file__).parents[2]
CACHE = Path(os.environ.get("PRIVMASK_TEST_CACHE", "/var/cache/privmask-test"))
MIRROR = "http://deb.debian.org/debian"
BASE = CACHE / "piuparts-bookworm.tar.gz"  # piuparts' own minimal chroot, saved by its first run
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def version() -> str:
    for line in (REPO / "daemon" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__ = "):
            return line.split('"')[1]
    raise AssertionError("no __version__ in daemon/__init__.py")


@pytest.fixture(scope="module")
def deb() -> Path:
    # PRIVMASK_DEB: a package built elsewhere (by default, the one packaging/deb/build made)
    built = Path(os.environ.get("PRIVMASK_DEB", REPO / "dist" / f"privmask_{version()}_amd64.deb"))
    if not built.exists():
        pytest.fail(f"no {built}: run packaging/deb/build (or packaging/deb/check)")
    return built


def run(*argv: str | Path, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, env=APT_ENV)  # fmt: skip


def test_lintian_finds_no_error(deb: Path) -> None:
    done = run("lintian", "--fail-on", "error", "--display-info", "--allow-root", deb)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " E: " not in f" {done.stdout}"


def test_piuparts_installs_and_purges_leaving_nothing(deb: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    # the first run saves its chroot (-s), later runs start from it (-b)
    base = ["-b", str(BASE)] if BASE.exists() else ["-s", str(BASE)]
    # --warn-on-others: what the dependencies leave (systemd's tmpfiles make /var/lib/private
    # and such) is a warning; what privmask leaves fails the test
    done = run("piuparts", "-d", "bookworm", "-m", MIRROR, *base, "--no-upgrade-test",
               "--warn-on-others", deb, timeout=3600)  # fmt: skip
    tail = "\n".join(done.stdout.splitlines()[-40:])
    assert done.returncode == 0, tail
    assert "PASS: Installation and purging test." in done.stdout, tail


def repacked(deb: Path, out: Path, new_version: str) -> Path:
    """The same payload as a later version: enough for dpkg to run the upgrade path."""
    tree = out / "tree"
    assert run("dpkg-deb", "-R", deb, tree).returncode == 0
    control = tree / "DEBIAN" / "control"
    lines = control.read_text().splitlines()
    control.write_text("\n".join(
        f"Version: {new_version}" if line.startswith("Version: ") else line for line in lines
    ) + "\n")  # fmt: skip
    later = out / f"privmask_{new_version}_amd64.deb"
    assert run("dpkg-deb", "-Zgzip", "-z1", "-b", tree, later).returncode == 0
    shutil.rmtree(tree)
    return later


@pytest.fixture
def chroot(tmp_path: Path, deb: Path) -> Iterator[Path]:
    """A fresh bookworm chroot from piuparts' saved one, /proc mounted while it lives."""
    if not BASE.exists():
        pytest.fail(f"{BASE} is missing: the piuparts test saves it on its first run")
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(BASE) as tar:
        tar.extractall(root, filter="fully_trusted")
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")  # apt reaches the mirror
    assert run("mount", "-t", "proc", "proc", root / "proc").returncode == 0
    try:
        yield root
    finally:
        run("umount", "-l", root / "proc")


def inside(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return run("chroot", root, *argv)


def files_of(root: Path) -> set[str]:
    """Every path in the chroot but those that change with any apt run (and /proc)."""
    noise = {"var/lib/apt", "var/lib/dpkg", "var/cache", "var/log", "proc", "tmp", "dev"}
    found = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if str(here / d) not in noise]
        found |= {str(here / name) for name in dirs + files if name != "ld.so.cache"}
    return found


def test_upgrade_keeps_site_edits_and_purge_leaves_nothing(
    chroot: Path, deb: Path, tmp_path: Path
) -> None:
    later = repacked(deb, tmp_path, f"{version()}+upgrade1")
    for package in (deb, later):
        shutil.copy(package, chroot / "tmp" / package.name)
    assert inside(chroot, "apt-get", "update", "-q").returncode == 0
    # apt settles the dependencies first (systemd for sysusers), so that the purge below
    # removes only privmask itself
    deps = inside(chroot, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                  f"/tmp/{deb.name}")  # fmt: skip
    assert deps.returncode == 0, deps.stdout + deps.stderr
    assert inside(chroot, "apt-get", "purge", "-y", "-q", "privmask").returncode == 0
    before = files_of(chroot)

    first = inside(chroot, "dpkg", "-i", f"/tmp/{deb.name}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert inside(chroot, "getent", "passwd", "privmask").returncode == 0
    works = inside(chroot, "privmask", "rules", "check", "--no-secrets", "/etc/privmask/rules")
    assert works.returncode == 0, works.stdout + works.stderr
    config = chroot / "etc" / "privmask" / "privmask.yaml"
    config.write_text(config.read_text().replace("#workers: 2", "workers: 3"))

    upgrade = inside(chroot, "dpkg", "-i", f"/tmp/{later.name}")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "workers: 3" in config.read_text()  # the site's edit survives, no prompt
    assert inside(chroot, "privmask", "--version").stdout.strip() == f"privmask {version()}"
    # onnxruntime writes a device id and a database into ~/.cache on import unless told not to
    imports = inside(chroot, "env", "ORT_DISABLE_TELEMETRY=1", "/usr/lib/privmask/bin/python",
                     "-c", "import av, cv2, onnxruntime, pyrage, pyzipper, lxml")  # fmt: skip
    assert imports.returncode == 0, imports.stderr

    purge = inside(chroot, "apt-get", "purge", "-y", "-q", "privmask")
    assert purge.returncode == 0, purge.stdout + purge.stderr
    left = files_of(chroot) - before
    # Debian keeps system users (files elsewhere may still be theirs): passwd and group
    # entries stay, no file of the package does
    assert left == set(), sorted(left)[:40]
    assert not (chroot / "usr" / "lib" / "privmask").exists()
    assert not (chroot / "etc" / "privmask").exists()
    assert not (chroot / "var" / "lib" / "privmask").exists()
