"""Where a secret is read from: one validated reference, shared by rule files and the config.

A `SecretSource` names a file, an environment variable or a systemd credential, never the
secret itself. Reading it is the daemon's job (`privmask.daemon.secrets.read_secret`); this
module is pure policy and imports nothing from the daemon or the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SecretKind = Literal["file", "env", "credential"]
SECRET_KINDS: tuple[SecretKind, ...] = ("file", "env", "credential")


class SecretError(Exception):
    """The secret could not be read; the message says from where, never what it is."""


@dataclass(frozen=True)
class SecretSource:
    """One place a secret is read from; ``reference`` is a path, variable or credential name."""

    kind: SecretKind
    reference: str

    def __post_init__(self) -> None:
        if self.kind not in SECRET_KINDS:
            raise SecretError(
                f"unknown secret source kind {self.kind!r} (use file, env or credential)"
            )
        if not self.reference:
            raise SecretError(f"{self.kind} secret source needs a reference")
        if self.kind == "credential" and ("/" in self.reference or self.reference in {".", ".."}):
            raise SecretError(f"systemd credential name {self.reference!r} must be a plain name")
        if self.kind == "env" and "=" in self.reference:
            raise SecretError(f"environment variable name {self.reference!r} contains '='")

    def describe(self) -> str:
        """Where the secret comes from, for messages and logs (never the secret)."""
        if self.kind == "file":
            return f"file {self.reference}"
        if self.kind == "env":
            return f"environment variable {self.reference}"
        return f"systemd credential {self.reference}"
