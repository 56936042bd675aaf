"""A site with custody, for the custodian's and the recipient's commands: a real `privmask
run` whose originals are escrowed to two custodians (an age-keygen identity and an SSH
ed25519 key), which has redacted one clip of two faces and stopped.

Each test module makes its own with `build_site` in a module-scoped fixture: the commands
under test read the state it left, and tests that change something put it back or work on
a copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privmask.adapters.minisign import PublicKey
from privmask.daemon.testing import FaceSpec, Scene, write_scene

from harness import PASSWORD, Daemon

# two faces: "early" in every frame, "late" from 40 % of the clip on; far apart
FACES = (
    FaceSpec("early", 72, (0.22, 0.35), (1.0, 0.0)),
    FaceSpec("late", 72, (0.78, 0.62), (-1.0, 0.0), first=0.4),
)
RULE = """\
version: 1
rules:
  - name: faces-solid
    targets:
      face: {}
    style: solid
"""


@dataclass
class Site:
    daemon: Daemon
    original: Path  # the clip as it was dropped (a copy outside the inbox)
    scene: Scene
    package: Path
    manifest: dict[str, Any]
    public: PublicKey
    identity: Path  # an age identity of a custodian
    ssh_identity: Path  # an SSH ed25519 key of another custodian
    stranger: Path  # an age identity that is no custodian's

    @property
    def config(self) -> Path:
        return self.daemon.config

    @property
    def job(self) -> str:
        return f"{int(self.manifest['job']):06d}"

    @property
    def escrow_copy(self) -> Path:
        return self.daemon.root / "escrow" / f"{self.job}.age"

    def cli(
        self, *args: str, config: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """`privmask ARGS [--config CONFIG]`, its output captured."""
        tail = ["--config", str(self.config)] if config else []
        return subprocess.run(
            [sys.executable, "-m", "privmask.daemon.cli", *args, *tail],
            capture_output=True, text=True, timeout=300, **kwargs,
        )  # fmt: skip


def age_identity(path: Path) -> str:
    """Make an age identity file with age-keygen; its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    found = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True)
    return found.stdout.decode().strip()


def ssh_identity(path: Path) -> str:
    """Make an unencrypted SSH ed25519 key with ssh-keygen; its public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dpo@site", "-f", str(path)],
        check=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def build_site(root: Path, models_dir: Path) -> Site:
    """Run the daemon in `root` on one clip, stop it, and say what it left."""
    keys = root / "keys"
    keys.mkdir(mode=0o700)
    officer = age_identity(keys / "officer.txt")
    dpo = ssh_identity(keys / "dpo")
    age_identity(keys / "stranger.txt")
    rules = root / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(RULE)
    (root / "escrow").mkdir(mode=0o700)
    daemon = Daemon(
        root, models_dir, rules=str(rules),
        escrow={"store": str(root / "escrow"), "recipients": [officer, dpo]},
    )  # fmt: skip
    original = root / "original.mp4"
    scene = write_scene(original, width=640, height=360, seconds=3.0, faces=FACES, pillar=None)
    try:
        daemon.start()
        shutil.copy(original, daemon.inbox / "CAM07_20261130_140300.mp4")
        daemon.wait_for("job_done", timeout=180)
        assert daemon.stop() == 0
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
    (package,) = daemon.packages()
    _, manifest = daemon.read(package, PASSWORD)
    return Site(
        daemon=daemon,
        original=original,
        scene=scene,
        package=package,
        manifest=manifest,
        public=daemon.site_key(),
        identity=keys / "officer.txt",
        ssh_identity=keys / "dpo",
        stranger=keys / "stranger.txt",
    )
