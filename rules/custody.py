"""The syntax of custody settings, shared by rule files and the daemon's config.

An escrow recipient is an age public key (`age1...`), an SSH ed25519 public key, or the
absolute path of a recipients file (`age -R` format). Only the syntax is checked here (this
layer is pure policy); the daemon parses the keys with age when it loads them. A message never
repeats the entry: a secret key pasted here by mistake must not reach a log.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
SSH_ED25519 = re.compile(r"ssh-ed25519 AAAA\S+( .*)?")
MAX_RETENTION_DAYS = 3650  # ten years: longer is a typo, not a policy
SourceHandling = Literal["keep", "delete"]

FORMS = (
    "an age public key (`age1...`), an SSH ed25519 public key (`ssh-ed25519 AAAA...`) or the "
    "absolute path of a recipients file"
)


def recipient_problem(entry: str) -> str | None:
    """What is wrong with one recipient entry, in words that never quote it; None if fine."""
    if not entry.strip():
        return "an empty entry"
    if entry.upper().startswith("AGE-SECRET-KEY-"):
        return (
            "this is an age secret key, never to be written here: give its public key "
            "(`age-keygen -y FILE` prints it) and keep the secret key with its custodian"
        )
    if "PRIVATE KEY" in entry.upper():
        return "this is a private key, never to be written here: give the public key (`.pub`)"
    if entry.startswith("age1"):
        if AGE_RECIPIENT.fullmatch(entry):
            return None
        return "not an age public key: `age1` and 58 characters, as `age-keygen` prints it"
    if entry.startswith("ssh-ed25519"):
        if SSH_ED25519.fullmatch(entry):
            return None
        return (
            "not an SSH ed25519 public key: `ssh-ed25519 AAAA...` and an optional comment, "
            "on one line, as in a `.pub` file"
        )
    if entry.startswith(("ssh-", "ecdsa-", "sk-")):
        return "only SSH ed25519 keys are taken: `ssh-ed25519 AAAA...`"
    if entry.startswith("/"):
        return "a path must be on one line" if "\n" in entry or "\0" in entry else None
    if "/" in entry or entry.startswith(("~", ".")) or ("." in entry and " " not in entry):
        # relative to what? the daemon's working folder is not the rule file's
        return (
            "a recipients file is given by its absolute path, such as /etc/privmask/custodians.txt"
        )
    return f"not {FORMS}"


def _checked(entry: str) -> str:
    problem = recipient_problem(entry)
    if problem is not None:
        raise ValueError(problem)
    return entry


# One list item: pydantic reports an error at its index (`escrow.1`), every bad item at once.
Recipient = Annotated[str, AfterValidator(_checked)]
