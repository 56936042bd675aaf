"""minisign keys and signatures: the site key that signs manifests and audit checkpoints.

Why minisign: its signatures are Ed25519, its files are three short text lines, and anyone
(a court, a partner, a data-protection officer) checks one with the standalone `minisign`
tool and the site's public key, with no privmask installed:
``minisign -Vm manifest.json -P RW...``.

The formats, as minisign 0.11/0.12 writes them (`src/minisign.h`, `src/minisign.c`):

- public key: ``base64("Ed" + key_id[8] + pk[32])``, in a file after the line
  ``untrusted comment: minisign public key <ID>``;
- signature: ``untrusted comment: ...``, ``base64("ED" + key_id + sig)`` where ``sig`` is
  Ed25519 over BLAKE2b-512(data) ("prehashed"), ``trusted comment: <text>``, and
  ``base64(global_sig)``, Ed25519 over ``sig + text``: the trusted comment is signed too;
- secret key: ``base64(sig_alg "Ed" + kdf_alg + chk_alg "B2" + salt[32] + opslimit[8] +
  memlimit[8] + key_id + sk[64] + chk[32])``, ``sk = seed + pk``, ``chk =
  BLAKE2b-256("Ed" + key_id + sk)``. kdf_alg ``"\\0\\0"`` is an unencrypted key
  (``minisign -G -W``); ``"Sc"`` is scrypt-encrypted with a password, which a daemon has no
  one to ask for, so it is refused.

The key id is stored little-endian and printed as a 64-bit number in upper-case hex, so the
printed id is the stored bytes reversed.

No message here ever contains key material: a secret key's repr hides the seed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass, field

from Cryptodome.PublicKey import ECC
from Cryptodome.Signature import eddsa

SIG_ALG = b"Ed"
HASHED_SIG_ALG = b"ED"  # Ed25519 over BLAKE2b-512 of the data
KDF_NONE = b"\0\0"
KDF_SCRYPT = b"Sc"
CHK_ALG = b"B2"
UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "

KEY_ID_BYTES = 8
_PUBLIC_BYTES = 2 + KEY_ID_BYTES + 32
_SIGNATURE_BYTES = 2 + KEY_ID_BYTES + 64
_SECRET_BYTES = 2 + 2 + 2 + 32 + 8 + 8 + KEY_ID_BYTES + 64 + 32
_KEY_AT = 6 + 32 + 8 + 8  # where key_id starts in a secret key
#: minisign reads a trusted comment line into 8 KiB with its prefix; stay well inside.
MAX_TRUSTED_COMMENT_BYTES = 8000


class SignatureError(Exception):
    """A key or signature that cannot be used, or a signature that does not verify; one line."""


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """A ``.pub`` file's text, or its bare base64 line (what ``minisign -P`` takes)."""
        lines = [line.strip() for line in text.strip().splitlines()]
        if lines and lines[0].startswith(UNTRUSTED_PREFIX.strip()):
            lines = lines[1:]
        if not lines or not lines[0]:
            raise SignatureError("not a minisign public key: no key line")
        raw = _b64(lines[0], "not a minisign public key")
        if len(raw) != _PUBLIC_BYTES or raw[:2] != SIG_ALG:
            raise SignatureError("not a minisign Ed25519 public key")
        public = cls(raw[2 : 2 + KEY_ID_BYTES], raw[2 + KEY_ID_BYTES :])
        try:
            eddsa.import_public_key(public.key)
        except ValueError as exc:
            raise SignatureError("not a minisign public key: not an Ed25519 point") from exc
        return public

    def to_text(self, comment: str | None = None) -> str:
        """A minisign ``.pub`` file."""
        comment = comment or f"minisign public key {self.key_id_hex}"
        return f"{UNTRUSTED_PREFIX}{_one_line(comment)}\n{self.base64}\n"

    @property
    def base64(self) -> str:
        return base64.b64encode(SIG_ALG + self.key_id + self.key).decode("ascii")

    @property
    def key_id_hex(self) -> str:
        return key_id_hex(self.key_id)


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_BYTES or len(self.seed) != 32:
            raise SignatureError("a minisign key needs an 8-byte key id and a 32-byte seed")

    def __str__(self) -> str:
        return f"minisign secret key {self.public.key_id_hex}"

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(secrets.token_bytes(KEY_ID_BYTES), ECC.generate(curve="ed25519").seed)

    @classmethod
    def parse(cls, data: bytes) -> SecretKey:
        """An unencrypted minisign secret key file (``minisign -G -W``)."""
        try:
            lines = data.decode("ascii").strip().splitlines()
        except UnicodeDecodeError:
            raise SignatureError("not a minisign secret key: not a text file") from None
        if len(lines) < 2 or not lines[0].startswith(UNTRUSTED_PREFIX.strip()):
            raise SignatureError("not a minisign secret key: no 'untrusted comment:' line")
        raw = _b64(lines[1].strip(), "not a minisign secret key")
        if len(raw) != _SECRET_BYTES or raw[:2] != SIG_ALG or raw[4:6] != CHK_ALG:
            raise SignatureError("not a minisign Ed25519 secret key")
        if raw[2:4] == KDF_SCRYPT:
            raise SignatureError(
                "the minisign secret key is encrypted with a password, which the daemon "
                "cannot enter; make an unencrypted one with: minisign -G -W"
            )
        if raw[2:4] != KDF_NONE:
            raise SignatureError("the minisign secret key uses an unknown key derivation")
        return cls._from_fields(raw)

    @classmethod
    def _from_fields(cls, raw: bytes) -> SecretKey:
        key_id = raw[_KEY_AT : _KEY_AT + KEY_ID_BYTES]
        sk = raw[_KEY_AT + KEY_ID_BYTES : _KEY_AT + KEY_ID_BYTES + 64]
        chk = raw[_KEY_AT + KEY_ID_BYTES + 64 :]
        key = cls(key_id, sk[:32])
        # minisign -W leaves the checksum zero; any other must match, and the public half
        # must belong to the seed, or signatures would not verify with the published key
        if (chk != bytes(32) and chk != _checksum(key_id, sk)) or key.public.key != sk[32:]:
            raise SignatureError("the minisign secret key is damaged (checksum does not match)")
        return key

    def to_bytes(self) -> bytes:
        """A minisign secret key file, unencrypted (``minisign -S -s FILE`` reads it)."""
        sk = self.seed + self.public.key
        raw = (
            SIG_ALG + KDF_NONE + CHK_ALG + bytes(32 + 8 + 8)
            + self.key_id + sk + _checksum(self.key_id, sk)
        )  # fmt: skip
        comment = f"{UNTRUSTED_PREFIX}privmask signing key {self.public.key_id_hex} (unencrypted)"
        return f"{comment}\n{base64.b64encode(raw).decode('ascii')}\n".encode("ascii")

    @property
    def public(self) -> PublicKey:
        signer = eddsa.import_private_key(self.seed)
        return PublicKey(self.key_id, signer.public_key().export_key(format="raw"))

    def sign(self, data: bytes, trusted_comment: str) -> str:
        """A ``.minisig`` file's text: prehashed signature of `data` plus the signed comment."""
        comment = _trusted_comment(trusted_comment)
        signer = eddsa.new(eddsa.import_private_key(self.seed), "rfc8032")
        signature = signer.sign(_prehash(data))
        global_signature = signer.sign(signature + comment.encode("utf-8"))
        line = base64.b64encode(HASHED_SIG_ALG + self.key_id + signature).decode("ascii")
        return (
            f"{UNTRUSTED_PREFIX}signature from privmask key {self.public.key_id_hex}\n{line}\n"
            f"{TRUSTED_PREFIX}{comment}\n{base64.b64encode(global_signature).decode('ascii')}\n"
        )


def verify(data: bytes, signature: str, public: PublicKey) -> str:
    """Check a ``.minisig`` text over `data` with `public`; returns the trusted comment."""
    algorithm, key_id, sig, comment, global_sig = _parse_signature(signature)
    if key_id != public.key_id:
        raise SignatureError(
            f"signed by key {key_id_hex(key_id)}, but the public key is {public.key_id_hex}"
        )
    checker = eddsa.new(eddsa.import_public_key(public.key), "rfc8032")
    message = _prehash(data) if algorithm == HASHED_SIG_ALG else data
    try:
        checker.verify(message, sig)
    except ValueError:
        raise SignatureError(
            "signature does not verify: the data was changed or not signed by this key"
        ) from None
    try:
        checker.verify(sig + comment.encode("utf-8"), global_sig)
    except ValueError:
        raise SignatureError(
            "the trusted comment was changed (its signature does not verify)"
        ) from None
    return comment


def key_id_hex(key_id: bytes) -> str:
    """As minisign prints a key id: the little-endian 64-bit number in upper-case hex."""
    return key_id[::-1].hex().upper()


def _parse_signature(text: str) -> tuple[bytes, bytes, bytes, str, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0].startswith(UNTRUSTED_PREFIX):
        raise SignatureError("not a minisign signature: no 'untrusted comment:' line")
    raw = _b64(lines[1].rstrip("\r"), "not a minisign signature")
    if len(raw) != _SIGNATURE_BYTES or raw[:2] not in (SIG_ALG, HASHED_SIG_ALG):
        raise SignatureError("not a minisign Ed25519 signature")
    comment_line = lines[2].rstrip("\r")
    if not comment_line.startswith(TRUSTED_PREFIX):
        raise SignatureError("not a minisign signature: no 'trusted comment:' line")
    global_sig = _b64(lines[3].rstrip("\r"), "not a minisign signature (comment signature)")
    if len(global_sig) != 64:
        raise SignatureError("not a minisign signature: the comment signature is not 64 bytes")
    return raw[:2], raw[2:10], raw[10:], comment_line[len(TRUSTED_PREFIX) :], global_sig


def _trusted_comment(text: str) -> str:
    """What minisign accepts in a trusted comment: printable UTF-8 and tabs, one line."""
    if any((ch < " " and ch != "\t") or "\x7f" <= ch <= "\x9f" for ch in text):
        raise SignatureError("a trusted comment must be one line of printable characters")
    if len(text.encode("utf-8")) > MAX_TRUSTED_COMMENT_BYTES:
        raise SignatureError(f"a trusted comment must be at most {MAX_TRUSTED_COMMENT_BYTES} bytes")
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _prehash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=64).digest()


def _checksum(key_id: bytes, sk: bytes) -> bytes:
    return hashlib.blake2b(SIG_ALG + key_id + sk, digest_size=32).digest()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SignatureError(f"{what}: not base64") from None
