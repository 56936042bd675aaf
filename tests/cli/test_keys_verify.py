"""`privmask keys show` and `privmask verify`: what a court or a partner needs to check that a
package is the site's, unchanged, with privmask or with minisign alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import pyzipper
from custody_site import Site, build_site

from privmask.adapters.minisign import PublicKey, SecretKey

from harness import PASSWORD

MANIFEST, SIGNATURE = "manifest.json", "manifest.json.minisig"
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Site:
    return build_site(tmp_path_factory.mktemp("site"), models_dir)


def password_file(folder: Path, password: str = PASSWORD) -> Path:
    path = folder / "password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def entries(package: Path) -> dict[str, bytes]:
    with pyzipper.AESZipFile(package) as archive:
        archive.setpassword(PASSWORD.encode())
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(contents: dict[str, bytes], target: Path) -> Path:
    """A package rebuilt as anyone with the password could: AES-256, the same entries."""
    with pyzipper.AESZipFile(
        target, "w", compression=pyzipper.ZIP_STORED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(PASSWORD.encode())
        for name, data in contents.items():
            archive.writestr(name, data)
    return target


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[0] + " " + line.split()[1] for line in done.stdout.splitlines()]


@slow
def test_keys_show_prints_the_key_minisign_checks_a_manifest_with(
    site: Site, tmp_path: Path
) -> None:
    done = site.cli("keys", "show")

    assert done.returncode == 0, done.stderr
    assert PublicKey.parse(done.stdout) == site.public
    assert f"minisign -Vm manifest.json -P {site.public.base64}" in done.stderr
    public = tmp_path / "privmask.pub"
    public.write_text(done.stdout)  # `privmask keys show > privmask.pub`
    unpacked = entries(site.package)
    (tmp_path / MANIFEST).write_bytes(unpacked[MANIFEST])
    (tmp_path / SIGNATURE).write_bytes(unpacked[SIGNATURE])
    outside = subprocess.run(
        ["minisign", "-Vm", str(tmp_path / MANIFEST), "-p", str(public)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert outside.returncode == 0, outside.stderr


def test_keys_show_before_the_daemon_made_a_key(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "keys", "show",
         "--state", str(tmp_path / "state")],
        capture_output=True, text=True,
    )  # fmt: skip

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("privmask: error: no site signing key yet")
    assert done.stderr.count("\n") == 1


@slow
def test_verify_needs_only_the_public_key(site: Site, tmp_path: Path) -> None:
    secret = password_file(tmp_path)
    pub = tmp_path / "privmask.pub"
    pub.write_text(site.public.to_text())
    store = site.escrow_copy.parent

    bare = site.cli(
        "verify", str(site.package), "--password-file", str(secret),
        "--pubkey", site.public.base64, config=False, cwd=tmp_path,
    )  # fmt: skip
    with_store = site.cli(
        "verify", str(site.package), "--password-file", str(secret),
        "--pubkey", str(pub), "--escrow", str(store), config=False, cwd=tmp_path,
    )  # fmt: skip

    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert lines(bare) == ["ok package:", "ok signature:", "ok video:", "skipped escrow:"]
    assert site.public.key_id_hex in bare.stdout
    assert with_store.returncode == 0, with_store.stdout + with_store.stderr
    assert lines(with_store)[-1] == "ok escrow:"
    assert not (tmp_path / "privmask").exists()  # no default state folder made


@slow
def test_verify_with_the_sites_config_uses_its_key_and_store(site: Site) -> None:
    done = site.cli("verify", str(site.package), "--password-file", str(site.daemon.password_file))

    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done) == ["ok package:", "ok signature:", "ok video:", "ok escrow:"]


@slow
def test_a_manifest_changed_and_rezipped_with_the_password_fails(
    site: Site, tmp_path: Path
) -> None:
    contents = entries(site.package)
    contents[MANIFEST] = contents[MANIFEST].replace(
        b'"rule": "faces-solid"', b'"rule": "no-masking-needed"'
    )
    assert b"no-masking-needed" in contents[MANIFEST]
    forged = rezip(contents, tmp_path / "forged.zip")

    done = site.cli(
        "verify", str(forged), "--password-file", str(password_file(tmp_path)),
        "--pubkey", site.public.base64, config=False,
    )  # fmt: skip

    assert done.returncode == 1
    (line,) = done.stdout.splitlines()
    assert line.startswith("FAILED") and "signature" in line


@slow
def test_a_changed_escrow_copy_fails(site: Site, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    sealed = site.escrow_copy.read_bytes()
    (store / site.escrow_copy.name).write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))

    done = site.cli(
        "verify", str(site.package), "--password-file", str(password_file(tmp_path)),
        "--pubkey", site.public.base64, "--escrow", str(store), config=False,
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("FAILED  escrow:")
    assert "sha256 differs" in done.stdout


@slow
def test_wrong_password_or_key_fail_and_missing_inputs_are_usage_errors(
    site: Site, tmp_path: Path
) -> None:
    package = str(site.package)
    good = str(password_file(tmp_path))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    other_site = SecretKey.generate().public.base64

    bad_password = site.cli(
        "verify", package, "--password-file", str(password_file(wrong, "not it")),
        "--pubkey", site.public.base64, config=False,
    )  # fmt: skip
    other_key = site.cli(
        "verify", package, "--password-file", good, "--pubkey", other_site, config=False
    )
    no_key = site.cli("verify", package, "--password-file", good, config=False)
    no_password = site.cli(
        "verify", package, "--pubkey", site.public.base64, config=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip

    assert bad_password.returncode == 1 and "wrong password" in bad_password.stdout
    assert other_key.returncode == 1 and other_key.stdout.startswith("FAILED")
    assert no_key.returncode == 2 and "--pubkey" in no_key.stderr
    assert no_password.returncode == 2 and "--password-file" in no_password.stderr
    for done in (no_key, no_password):
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
