"""The site signing key: generated once into the state folder, or read from a configured
secret source (a key made with Debian's `minisign -G -W`), and never copied anywhere."""

from __future__ import annotations

import base64
import multiprocessing
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from privmask.adapters.minisign import PublicKey, SecretKey
from privmask.daemon.config import Config, load_config
from privmask.daemon.custody.audit import AuditError, AuditLog
from privmask.daemon.custody.sitekey import SiteKeyError, site_key, site_public_key
from privmask.daemon.secrets import SecretError


def config_with(tmp_path: Path, text: str = "") -> Config:
    path = tmp_path / "privmask.yaml"
    path.write_text(f"state: {tmp_path / 'state'}\n{text}")
    (tmp_path / "state").mkdir(mode=0o700, exist_ok=True)
    return load_config(path)


def audit_of(config: Config) -> AuditLog:
    return AuditLog(config.audit_folder, None)


def cli_key(tmp_path: Path) -> tuple[Path, PublicKey]:
    minisign = shutil.which("minisign")
    if minisign is None:
        pytest.fail("minisign not found: install the Debian package minisign")
    public, secret = tmp_path / "site.pub", tmp_path / "site.key"
    done = subprocess.run(
        [minisign, "-G", "-W", "-p", str(public), "-s", str(secret)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    secret.chmod(0o600)
    return secret, PublicKey.parse(public.read_text())


def test_a_key_is_generated_once_private_and_audited_once(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    audit = audit_of(config)

    first = site_key(config, audit)
    again = site_key(config, audit)

    assert first == again
    path = config.signing_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretKey.parse(path.read_bytes()) == first
    assert site_public_key(config) == first.public
    created = [e for e in audit.entries() if e["action"] == "key_created"]
    assert len(created) == 1
    assert created[0]["details"]["key_id"] == first.public.key_id_hex
    log = (config.audit_folder / "log.jsonl").read_text()
    assert first.seed.hex() not in log and path.read_text().splitlines()[1] not in log


def _race(config_path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    config = load_config(Path(config_path))
    queue.put(site_key(config, AuditLog(config.audit_folder, None)).public.base64)


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    racers = [
        context.Process(target=_race, args=(str(tmp_path / "privmask.yaml"), queue))
        for _ in range(4)
    ]
    for process in racers:
        process.start()
    keys = {queue.get(timeout=120) for _ in racers}
    for process in racers:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert keys == {site_public_key(config).base64}
    assert [e["action"] for e in audit_of(config).entries()] == ["key_created"]


def test_a_configured_key_is_used_and_never_copied(tmp_path: Path) -> None:
    secret, public = cli_key(tmp_path)
    config = config_with(tmp_path, f"signing_key: {{file: {secret}}}\n")
    audit = audit_of(config)

    key = site_key(config, audit)

    assert key.public == public
    assert site_public_key(config) == public
    assert not config.signing_key_path.exists()
    line = secret.read_text().splitlines()[1]
    for path in (tmp_path / "state").rglob("*"):
        assert not path.is_file() or line not in path.read_text(errors="replace")
    assert list(audit.entries()) == []  # made by a person, not by privmask


def test_a_configured_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, public = cli_key(tmp_path)
    monkeypatch.setenv("PRIVMASK_TEST_SIGNING_KEY", secret.read_text())
    config = config_with(tmp_path, "signing_key: {env: PRIVMASK_TEST_SIGNING_KEY}\n")

    assert site_key(config).public == public


@pytest.mark.parametrize(
    "content",
    [b"not a key at all\n", b"untrusted comment: x\nRWQAAAAAAAAAAAAAAAA=\n", b"\xff\xfe\x00"],
    ids=["text", "short", "binary"],
)
def test_a_garbage_key_file_is_one_line_naming_it(tmp_path: Path, content: bytes) -> None:
    secret = tmp_path / "site.key"
    secret.write_bytes(content)
    secret.chmod(0o600)
    config = config_with(tmp_path, f"signing_key: {{file: {secret}}}\n")

    for read in (site_key, site_public_key):
        with pytest.raises(SiteKeyError) as caught:
            read(config)
        message = str(caught.value)
        assert str(secret) in message and "\n" not in message
        assert "RWQAAA" not in message and "not a key at all" not in message
    assert not config.signing_key_path.exists()  # no fallback to a generated key


def test_an_encrypted_key_says_to_make_one_without_a_password(tmp_path: Path) -> None:
    key = SecretKey.generate().to_bytes().decode().splitlines()
    raw = bytearray(base64.b64decode(key[1]))
    raw[2:4] = b"Sc"  # kdf: scrypt, as `minisign -G` without -W writes it
    secret = tmp_path / "site.key"
    secret.write_text(f"{key[0]}\n{base64.b64encode(bytes(raw)).decode()}\n")
    secret.chmod(0o600)
    config = config_with(tmp_path, f"signing_key: {{file: {secret}}}\n")

    with pytest.raises(SiteKeyError, match="-W"):
        site_key(config)


def test_a_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    secret, _ = cli_key(tmp_path)
    secret.chmod(0o644)
    config = config_with(tmp_path, f"signing_key: {{file: {secret}}}\n")

    with pytest.raises(SecretError, match="chmod 600"):
        site_key(config)


def test_no_public_key_before_the_first_start(tmp_path: Path) -> None:
    config = config_with(tmp_path)

    with pytest.raises(SiteKeyError) as caught:
        site_public_key(config)

    assert "signing_key" in str(caught.value) and not config.signing_key_path.exists()


def test_a_state_folder_that_cannot_hold_the_key_is_one_line(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    shutil.rmtree(tmp_path / "state")
    (tmp_path / "state").write_text("a file where the state folder should be")

    with pytest.raises(SiteKeyError) as caught:
        site_key(config)

    assert str(config.signing_key_path) in str(caught.value)


def test_a_key_whose_creation_cannot_be_audited_is_not_kept(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    config.audit_folder.write_text("a file where the audit folder should be")

    with pytest.raises(AuditError):
        site_key(config, audit_of(config))

    assert not config.signing_key_path.exists()
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["audit"]
