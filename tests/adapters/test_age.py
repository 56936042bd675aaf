"""age escrow encryption, checked against the real `age` CLI with both custodian key kinds."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from privmask.adapters.age import (
    AgeError,
    Sealed,
    decrypt,
    encrypt,
    load_identities,
    parse_recipients,
)


def tool(name: str) -> str:
    """The real CLIs are installed by scripts/setup, so their absence is a failure."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run scripts/setup (Debian packages age, openssh-client)")
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def ok(*args: str | Path) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    """An identity made by age-keygen, and its public key."""
    path = tmp_path / "custodian.txt"
    ok("age-keygen", "-o", path)
    return path, ok("age-keygen", "-y", path).strip()


def make_ssh_key(folder: Path, name: str, *extra: str) -> tuple[Path, str]:
    path = folder / name
    ok("ssh-keygen", "-q", "-t", "ed25519", "-C", "dpo@example.org", "-f", path, *extra)
    return path, (folder / f"{name}.pub").read_text().strip()


@pytest.fixture
def ssh_key(tmp_path: Path) -> tuple[Path, str]:
    """An unencrypted SSH ed25519 key, as `ssh-keygen -t ed25519 -N ''` makes it."""
    return make_ssh_key(tmp_path, "id_ed25519", "-N", "")


@pytest.fixture
def original(tmp_path: Path) -> Path:
    path = tmp_path / "original.mp4"
    path.write_bytes(os.urandom(3 * 65536 + 123))  # several age chunks and a partial one
    return path


def seal(original: Path, sealed: Path, entries: list[str]) -> Sealed:
    with open(original, "rb") as source, open(sealed, "wb") as destination:
        return encrypt(source, destination, parse_recipients(entries))


def open_sealed(sealed: Path, out: Path, identity: Path) -> tuple[str, int]:
    with open(sealed, "rb") as source, open(out, "wb") as destination:
        return decrypt(source, destination, load_identities(identity))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- privmask seals, the age CLI opens ---


@pytest.mark.parametrize("kind", ["age-keygen", "ssh-ed25519"])
def test_age_cli_opens_what_privmask_sealed(
    kind: str,
    age_key: tuple[Path, str],
    ssh_key: tuple[Path, str],
    original: Path,
    tmp_path: Path,
) -> None:
    identity, public = age_key if kind == "age-keygen" else ssh_key
    sealed = tmp_path / "000001.age"
    result = seal(original, sealed, [public])

    out = tmp_path / "out.mp4"
    ok("age", "-d", "-i", identity, "-o", out, sealed)
    assert out.read_bytes() == original.read_bytes()
    assert result == Sealed(
        plain_sha256=sha256(original),
        plain_bytes=original.stat().st_size,
        sealed_sha256=sha256(sealed),
        sealed_bytes=sealed.stat().st_size,
    )


def test_every_custodian_opens_a_copy_sealed_to_several(
    age_key: tuple[Path, str], ssh_key: tuple[Path, str], original: Path, tmp_path: Path
) -> None:
    """A recipients file (age -R format, comments and blanks) beside an inline key."""
    custodians = tmp_path / "custodians.txt"
    custodians.write_text(f"# the DPO\n\n  {ssh_key[1]}  \n# end\n")
    sealed = tmp_path / "000002.age"
    seal(original, sealed, [age_key[1], str(custodians)])
    for identity in (age_key[0], ssh_key[0]):
        out = tmp_path / f"out-{identity.name}"
        ok("age", "-d", "-i", identity, "-o", out, sealed)
        assert out.read_bytes() == original.read_bytes()


# --- the age CLI seals, privmask opens ---


def test_privmask_opens_what_age_sealed_with_r_and_R(
    age_key: tuple[Path, str], ssh_key: tuple[Path, str], original: Path, tmp_path: Path
) -> None:
    by_r = tmp_path / "by-r.age"
    ok("age", "-r", age_key[1], "-o", by_r, original)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# custodians\n{ssh_key[1]}\n")
    by_big_r = tmp_path / "by-R.age"
    ok("age", "-R", recipients, "-o", by_big_r, original)

    for sealed, identity in ((by_r, age_key[0]), (by_big_r, ssh_key[0])):
        out = tmp_path / "out.mp4"
        digest, size = open_sealed(sealed, out, identity)
        assert out.read_bytes() == original.read_bytes()
        assert (digest, size) == (sha256(original), original.stat().st_size)


def test_age_keygen_file_with_several_identities(tmp_path: Path, original: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    ok("age-keygen", "-o", first)
    ok("age-keygen", "-o", second)
    both = tmp_path / "both.txt"
    both.write_text(first.read_text() + "\n" + second.read_text())
    sealed = tmp_path / "x.age"
    ok("age", "-r", ok("age-keygen", "-y", second).strip(), "-o", sealed, original)
    assert len(load_identities(both)) == 2
    assert open_sealed(sealed, tmp_path / "out", both)[1] == original.stat().st_size


# --- failures: one line, naming the file or entry ---


def test_a_wrong_identity_is_one_clear_line(
    age_key: tuple[Path, str], ssh_key: tuple[Path, str], original: Path, tmp_path: Path
) -> None:
    sealed = tmp_path / "000003.age"
    seal(original, sealed, [age_key[1]])
    with pytest.raises(AgeError) as caught:
        open_sealed(sealed, tmp_path / "out", ssh_key[0])
    assert str(caught.value) == f"age file {sealed}: no identity given matches this file"


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-age", "empty"])
def test_a_damaged_file_is_refused(
    damage: str, age_key: tuple[Path, str], original: Path, tmp_path: Path
) -> None:
    sealed = tmp_path / "000004.age"
    seal(original, sealed, [age_key[1]])
    data = bytearray(sealed.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 1000]
    elif damage == "flipped":
        data[-5000] ^= 0x01
    elif damage == "not-age":
        data = bytearray(original.read_bytes())
    else:
        data = bytearray()
    sealed.write_bytes(bytes(data))
    with pytest.raises(AgeError) as caught:
        open_sealed(sealed, tmp_path / "out", age_key[0])
    message = str(caught.value)
    assert message.startswith(f"age file {sealed} is not a complete age file or is damaged")
    assert "\n" not in message
    assert run("age", "-d", "-i", age_key[0], "-o", tmp_path / "cli", sealed).returncode != 0


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("age1qqqqqqqq", "escrow recipient 2 'age1qqqqqqqq' is not a valid age X25519 public key"),
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "escrow recipient 2 'ssh-rsa AAAAB3Nza"),
        ("ssh-ed25519 AAAAnot-base64!", "escrow recipient 2 'ssh-ed25519 AAAAnot-base64!' is not"),
        ("custodians.txt", "escrow recipient 2 'custodians.txt' is neither an age public key"),
        ("/nowhere/custodians.txt", "recipients file /nowhere/custodians.txt does not exist"),
    ],
)
def test_a_bad_recipient_names_the_entry(
    entry: str, expected: str, age_key: tuple[Path, str]
) -> None:
    with pytest.raises(AgeError, match="^" + expected.replace("(", r"\(")) as caught:
        parse_recipients([age_key[1], entry])
    assert "\n" not in str(caught.value)


def test_a_bad_line_of_a_recipients_file_names_file_and_line(tmp_path: Path) -> None:
    custodians = tmp_path / "custodians.txt"
    custodians.write_text("# custodians\n\nage1notakey\n")
    with pytest.raises(AgeError, match=f"^recipients file {custodians} line 3 'age1notakey'"):
        parse_recipients([str(custodians)])
    custodians.write_text("# nobody yet\n\n")
    with pytest.raises(AgeError, match=f"^recipients file {custodians} names no recipients$"):
        parse_recipients([str(custodians)])
    with pytest.raises(AgeError, match="^no escrow recipients given$"):
        parse_recipients([])


def test_a_secret_key_given_as_a_recipient_is_never_echoed(
    age_key: tuple[Path, str], ssh_key: tuple[Path, str], tmp_path: Path
) -> None:
    secret = next(
        line for line in age_key[0].read_text().splitlines() if line.startswith("AGE-SECRET")
    )
    custodians = tmp_path / "custodians.txt"
    custodians.write_text(ssh_key[0].read_text())  # the private half, by mistake
    opaque = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"  # a key in some other encoding
    for entry, where in (
        (secret, "escrow recipient 1"),
        (str(custodians), f"recipients file {custodians} line 1"),
        (opaque, "escrow recipient 1"),
    ):
        with pytest.raises(AgeError, match=f"^{where} ") as caught:
            parse_recipients([entry])
        assert_no_key_material(str(caught.value), age_key[0], ssh_key[0])
        assert secret[15:40] not in str(caught.value)
        assert opaque[:12] not in str(caught.value)


def assert_no_key_material(message: str, *secret_files: Path) -> None:
    for path in secret_files:
        for line in path.read_text().splitlines():
            if line and not line.startswith(("#", "-----")):
                assert line not in message
                assert line[-24:] not in message


def test_a_passphrase_protected_ssh_key_says_so(tmp_path: Path) -> None:
    identity, _ = make_ssh_key(tmp_path, "locked", "-N", "correct horse battery")
    with pytest.raises(AgeError) as caught:
        load_identities(identity)
    message = str(caught.value)
    assert message.startswith(f"identity file {identity} is a passphrase-protected SSH key")
    assert "\n" not in message


def test_an_rsa_ssh_key_is_refused(tmp_path: Path) -> None:
    identity = tmp_path / "id_rsa"
    ok("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", identity)
    with pytest.raises(AgeError, match=f"^identity file {identity} is an ssh-rsa key"):
        load_identities(identity)


def test_an_age_encrypted_identity_file_says_so(
    age_key: tuple[Path, str], ssh_key: tuple[Path, str], tmp_path: Path
) -> None:
    locked = tmp_path / "locked.txt"
    ok("age", "-r", ssh_key[1], "-o", locked, age_key[0])
    with pytest.raises(AgeError, match=f"^identity file {locked} is itself age-encrypted"):
        load_identities(locked)


def test_a_malformed_identity_file_never_shows_the_key(
    age_key: tuple[Path, str], ssh_key: tuple[Path, str], tmp_path: Path
) -> None:
    secret = next(
        line for line in age_key[0].read_text().splitlines() if line.startswith("AGE-SECRET")
    )
    ssh_text = ssh_key[0].read_text().splitlines()
    broken = tmp_path / "broken.txt"
    cases = {
        "a damaged age identity": secret[:-3] + "qqq",
        "not an age identity": secret.lower(),
        "a key with trailing junk": secret + " # note",
        "a damaged OpenSSH private key": "\n".join(ssh_text[:3] + ssh_text[4:]),
        "a cut OpenSSH private key": "\n".join(ssh_text[:-1]),
    }
    for text in cases.values():
        broken.write_text(f"# created: today\n{text}\n")
        with pytest.raises(AgeError, match=f"^identity file {broken} ") as caught:
            load_identities(broken)
        message = str(caught.value)
        assert "\n" not in message
        assert_no_key_material(message, age_key[0], ssh_key[0])
        for line in text.splitlines():
            if not line.startswith("-----"):
                assert line[4:28] not in message


def test_identity_file_problems(tmp_path: Path) -> None:
    with pytest.raises(AgeError, match="does not exist"):
        load_identities(tmp_path / "none.txt")
    with pytest.raises(AgeError, match="is a folder"):
        load_identities(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(AgeError, match=f"^identity file {empty} holds no identities$"):
        load_identities(empty)


# --- the caller's own I/O failures stay themselves; memory stays flat ---


def test_a_full_destination_is_an_os_error_with_its_errno(
    age_key: tuple[Path, str], original: Path
) -> None:
    """A full escrow share must read as 'no space' (wait and retry), not as a bad key."""
    recipients = parse_recipients([age_key[1]])
    with (
        open(original, "rb") as source,
        open("/dev/full", "wb", buffering=0) as full,
        pytest.raises(OSError) as caught,
    ):
        encrypt(source, full, recipients)
    assert caught.value.errno == errno.ENOSPC
    assert not isinstance(caught.value, AgeError)


FLAT_MEMORY = """
import io, json, resource, sys
import pyrage
from privmask.adapters.age import decrypt, encrypt, parse_recipients

identity = pyrage.x25519.Identity.generate()
recipients = parse_recipients([str(identity.to_public())])
encrypt(io.BytesIO(b"warm up" * 1000), io.BytesIO(), recipients)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as source, open(sys.argv[2], "wb") as destination:
    sealed = encrypt(source, destination, recipients)
with open(sys.argv[2], "rb") as source, open("/dev/null", "wb") as destination:
    opened = decrypt(source, destination, [identity])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "plain": sealed.plain_bytes,
                  "sealed": sealed.sealed_bytes, "same": [sealed.plain_sha256, sealed.plain_bytes]
                  == list(opened)}))
"""


def test_memory_stays_flat_for_a_large_clip(tmp_path: Path) -> None:
    """256 MB through encrypt and decrypt in a fresh process: its peak memory barely moves."""
    size = 256 << 20
    big = tmp_path / "big.mp4"
    with open(big, "wb") as handle:
        handle.truncate(size)  # sparse: the test measures memory, not the disk
    sealed = tmp_path / "big.age"
    done = subprocess.run(
        [sys.executable, "-c", FLAT_MEMORY, str(big), str(sealed)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["plain"] == size
    assert figures["sealed"] == sealed.stat().st_size > size
    assert figures["same"]
    assert figures["grew_kib"] < 32 * 1024, figures  # the clip itself is 256 MiB
