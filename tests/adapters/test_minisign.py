"""minisign keys and signatures, checked both ways against Debian's `minisign` CLI.

Every format privmask writes (public key, secret key, signature) is read by the real tool,
and every format the tool writes is read by privmask, so a court or a partner can check a
signature with minisign alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from privmask.adapters.minisign import PublicKey, SecretKey, SignatureError, verify

DATA = b"privmask manifest bytes\n\x00\xff binary too"


@pytest.fixture(scope="session")
def minisign() -> str:
    """minisign is the independent checker; the setup installs it, so its absence is a failure."""
    found = shutil.which("minisign")
    if found is None:
        pytest.fail("minisign not found: install the Debian package minisign")
    return found


def run(minisign: str, *args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [minisign, *map(str, args)], input=stdin.decode(), capture_output=True, text=True
    )


def cli_key(minisign: str, folder: Path) -> tuple[Path, Path]:
    """An unencrypted key pair made by minisign itself."""
    public, secret = folder / "cli.pub", folder / "cli.key"
    done = run(minisign, "-G", "-W", "-p", public, "-s", secret)
    assert done.returncode == 0, done.stderr
    return public, secret


def test_a_privmask_signature_verifies_with_minisign(minisign: str, tmp_path: Path) -> None:
    key = SecretKey.generate()
    message = tmp_path / "manifest.json"
    message.write_bytes(DATA)
    signature = tmp_path / "manifest.json.minisig"
    signature.write_text(key.sign(DATA, "privmask manifest"))
    public_file = tmp_path / "site.pub"
    public_file.write_text(key.public.to_text())

    inline = run(minisign, "-Vm", message, "-P", key.public.base64)
    from_file = run(minisign, "-Vm", message, "-p", public_file)

    for done in (inline, from_file):
        assert done.returncode == 0, done.stderr
        assert "Trusted comment: privmask manifest" in done.stdout


def test_a_cli_key_parses_and_its_signatures_verify_both_ways(
    minisign: str, tmp_path: Path
) -> None:
    public_file, secret_file = cli_key(minisign, tmp_path)
    key = SecretKey.parse(secret_file.read_bytes())
    public = PublicKey.parse(public_file.read_text())
    assert key.public == public
    assert PublicKey.parse(public.base64) == public

    # privmask signs with the CLI's key; minisign verifies
    message = tmp_path / "data"
    message.write_bytes(DATA)
    (tmp_path / "data.minisig").write_text(key.sign(DATA, "from privmask"))
    assert run(minisign, "-Vm", message, "-p", public_file).returncode == 0

    # minisign signs; privmask verifies and returns the trusted comment
    done = run(minisign, "-S", "-s", secret_file, "-m", message, "-t", "from the cli")
    assert done.returncode == 0, done.stderr
    assert verify(DATA, (tmp_path / "data.minisig").read_text(), public) == "from the cli"


def test_a_written_secret_key_is_accepted_by_minisign(minisign: str, tmp_path: Path) -> None:
    key = SecretKey.generate()
    secret_file = tmp_path / "site.key"
    secret_file.write_bytes(key.to_bytes())
    secret_file.chmod(0o600)
    message = tmp_path / "data"
    message.write_bytes(DATA)

    done = run(minisign, "-S", "-s", secret_file, "-m", message, "-t", "signed by the cli")

    assert done.returncode == 0, done.stderr
    signature = (tmp_path / "data.minisig").read_text()
    assert verify(DATA, signature, key.public) == "signed by the cli"
    assert SecretKey.parse(secret_file.read_bytes()) == key


def test_the_key_id_is_printed_as_minisign_prints_it(minisign: str, tmp_path: Path) -> None:
    public_file, _ = cli_key(minisign, tmp_path)
    printed = public_file.read_text().splitlines()[0]  # "untrusted comment: minisign public key ID"
    public = PublicKey.parse(public_file.read_text())

    assert printed.endswith(" " + public.key_id_hex)
    assert re.fullmatch(r"[0-9A-F]{16}", public.key_id_hex)
    assert public.to_text().splitlines()[0] == printed


def test_a_key_id_mismatch_names_both_ids_as_minisign_does(minisign: str, tmp_path: Path) -> None:
    key, other = SecretKey.generate(), SecretKey.generate()
    message = tmp_path / "data"
    message.write_bytes(DATA)
    (tmp_path / "data.minisig").write_text(key.sign(DATA, "c"))

    done = run(minisign, "-Vm", message, "-P", other.public.base64)
    with pytest.raises(SignatureError) as caught:
        verify(DATA, key.sign(DATA, "c"), other.public)

    assert done.returncode != 0
    # minisign prints the ids in this message without leading zeros (1 key in 16 has one)
    printed = {int(word, 16) for word in re.findall(r"\b[0-9A-F]{1,16}\b", done.stderr)}
    assert {int(key.public.key_id_hex, 16), int(other.public.key_id_hex, 16)} <= printed
    assert key.public.key_id_hex in str(caught.value)
    assert other.public.key_id_hex in str(caught.value)


def one_line_refusal(data: bytes, signature: str, public: PublicKey) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(data, signature, public)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def test_tampering_is_refused_in_one_line(minisign: str, tmp_path: Path) -> None:
    key = SecretKey.generate()
    signature = key.sign(DATA, "privmask manifest")
    lines = signature.splitlines()

    changed_data = one_line_refusal(DATA + b" ", signature, key.public)
    changed_comment = "\n".join([*lines[:2], "trusted comment: rule: none", lines[3]]) + "\n"
    comment = one_line_refusal(DATA, changed_comment, key.public)
    other_key = one_line_refusal(DATA, signature, SecretKey.generate().public)

    assert "does not verify" in changed_data
    assert "trusted comment" in comment
    assert "key" in other_key
    # minisign agrees on the changed trusted comment
    message = tmp_path / "data"
    message.write_bytes(DATA)
    (tmp_path / "data.minisig").write_text(changed_comment)
    assert run(minisign, "-Vm", message, "-P", key.public.base64).returncode != 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: "",
        lambda s: "not a signature at all",
        lambda s: s.replace("untrusted comment:", "comment:"),
        lambda s: s.replace("trusted comment: ", "comment: "),
        lambda s: "\n".join(line[:-4] if i == 1 else line for i, line in enumerate(s.split("\n"))),
        lambda s: "\n".join(line + "!" if i == 3 else line for i, line in enumerate(s.split("\n"))),
        lambda s: "\n".join(s.split("\n")[:3]),
    ],
    ids=["empty", "text", "no-untrusted", "no-trusted", "short-sig", "bad-b64", "no-global"],
)
def test_a_malformed_signature_is_one_line(mangle: object) -> None:
    key = SecretKey.generate()
    signature = key.sign(DATA, "c")
    assert callable(mangle)
    one_line_refusal(DATA, mangle(signature), key.public)


def test_an_encrypted_secret_key_is_refused_clearly(minisign: str, tmp_path: Path) -> None:
    public_file, secret_file = tmp_path / "enc.pub", tmp_path / "enc.key"
    done = run(minisign, "-G", "-p", public_file, "-s", secret_file, stdin=b"pw\npw\n")
    assert done.returncode == 0, done.stderr

    with pytest.raises(SignatureError) as caught:
        SecretKey.parse(secret_file.read_bytes())

    message = str(caught.value)
    assert "encrypted" in message and "-W" in message and "\n" not in message


@pytest.mark.parametrize(
    "text",
    [b"", b"garbage", b"untrusted comment: x\nRWQAAA==\n", "untrusted comment: é\n\xff".encode()],
    ids=["empty", "garbage", "short", "binary"],
)
def test_a_garbage_secret_key_is_one_line_without_its_bytes(text: bytes) -> None:
    with pytest.raises(SignatureError) as caught:
        SecretKey.parse(text)
    message = str(caught.value)
    assert "\n" not in message and "RWQAAA" not in message and "garbage" not in message


def test_a_secret_key_whose_public_half_was_changed_is_refused(tmp_path: Path) -> None:
    import base64

    key = SecretKey.generate()
    comment, line = key.to_bytes().decode().splitlines()
    raw = bytearray(base64.b64decode(line))
    raw[-40] ^= 1  # inside the public half of sk64
    forged = f"{comment}\n{base64.b64encode(bytes(raw)).decode()}\n".encode()

    with pytest.raises(SignatureError, match="damaged"):
        SecretKey.parse(forged)


@pytest.mark.parametrize(
    "text", ["", "RWQ", "untrusted comment: x\n", "RWRTY0IyFhYBBh4G25WRUoO0FkGtHnl0DqqEoLFwg9JH3E"]
)
def test_a_garbage_public_key_is_one_line(text: str) -> None:
    with pytest.raises(SignatureError) as caught:
        PublicKey.parse(text)
    assert "\n" not in str(caught.value)


def test_no_key_material_in_reprs_or_messages() -> None:
    key = SecretKey.generate()
    assert key.seed.hex() not in repr(key)
    assert key.seed.hex() not in str(key)


def test_a_trusted_comment_minisign_cannot_read_is_refused() -> None:
    key = SecretKey.generate()
    for comment in ("two\nlines", "carriage\rreturn", "bell\x07", "x" * 9000):
        with pytest.raises(SignatureError):
            key.sign(DATA, comment)
    assert verify(DATA, key.sign(DATA, "tab\tand caf\u00e9"), key.public) == "tab\tand caf\u00e9"
