"""The site's Ed25519 signing key: it signs package manifests and audit checkpoints.

Either the site gives one (`signing_key` in the config: a file, an environment variable or
a systemd credential holding a minisign secret key made with ``minisign -G -W``), or the
daemon generates one at its first start into ``state/signing.key`` (mode 600). A given key
is only read, never copied into the state folder. Generation is race-safe: the key is
published with a link that never replaces an existing file, so when two processes start at
once, one key wins and both use it; its creation is audited once, with its key id.

Messages name where a key comes from, never its bytes.
"""

from __future__ import annotations

from privmask.adapters import files
from privmask.adapters.minisign import PublicKey, SecretKey, SignatureError
from privmask.daemon.config import Config, ConfigError
from privmask.daemon.custody.audit import AuditError, AuditLog, actor_name
from privmask.daemon.secrets import SecretSource, read_secret


class SiteKeyError(ConfigError):
    """The site key cannot be read, parsed or made; one line naming its source."""


def site_key(config: Config, audit: AuditLog | None = None) -> SecretKey:
    """The key to sign with: the configured one, else state/signing.key (made once)."""
    if config.signing_key is not None:
        return _read(config.signing_key)
    path = config.signing_key_path
    if not path.exists():
        created = _create(config, audit)
        if created is not None:
            return created
    return _read(SecretSource("file", str(path)))


def site_public_key(config: Config) -> PublicKey:
    """The public key for readers (`keys show`, `audit verify`); never creates a key."""
    if config.signing_key is not None:
        return _read(config.signing_key).public
    path = config.signing_key_path
    if not path.exists():
        raise SiteKeyError(
            f"no site signing key yet: {path} is made at the daemon's first start "
            "(privmask run), or set signing_key in the config"
        )
    return _read(SecretSource("file", str(path))).public


def _create(config: Config, audit: AuditLog | None) -> SecretKey | None:
    """Make and publish a new key; None when another process published one first."""
    path = config.signing_key_path
    key = SecretKey.generate()
    try:
        files.write_file(path, key.to_bytes(), mode=0o600, overwrite=False)
    except FileExistsError:
        return None
    except OSError as exc:
        raise SiteKeyError(
            f"cannot create the site signing key {path}: {exc.strerror or exc}"
        ) from None
    if audit is not None:
        details = {"key_id": key.public.key_id_hex, "public_key": key.public.base64}
        try:
            audit.append("key_created", actor=actor_name(), details=details)
        except AuditError:
            # an unaudited key must not stay: the next start makes and audits one again
            files.discard(path)
            raise
    return key


def _read(source: SecretSource) -> SecretKey:
    data = read_secret(source)
    try:
        return SecretKey.parse(data)
    except SignatureError as exc:
        raise SiteKeyError(f"site signing key in {source.describe()}: {exc}") from None
