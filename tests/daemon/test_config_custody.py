"""The config's custody keys: the escrow store and the site's recipients, retention, the
site signing key and the audit checkpoints, read from real YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from privmask.daemon.config import ConfigError, load_config
from privmask.rules.secret import SecretSource

AGE = "age128ae0y6dhx0gahr6xlc46f5fjqzzx6v0z3qs5gzq30jlk9wa5a0q6zskaz"
SSH = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRWgpa5BpFrFBmEeO07AOUh2PkeyoAL8snoZPKDbCFL "
    "custodian@court"
)


def config_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "privmask.yaml"
    path.write_text(f"state: {tmp_path / 'state'}\n{text}")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    return str(refused.value)


def test_without_custody_keys_the_defaults_hold(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, ""))
    assert config.escrow_store == Path("privmask/escrow").absolute()
    assert config.escrow_recipients == ()
    assert config.retention_days is None
    assert config.signing_key is None
    assert config.audit_checkpoint_every == 100
    assert config.audit_folder == tmp_path / "state" / "audit"
    assert config.signing_key_path == tmp_path / "state" / "signing.key"
    assert load_config(None).escrow_store == Path("privmask/escrow").absolute()


def test_every_custody_key_is_read(tmp_path: Path) -> None:
    store = tmp_path / "escrow"
    path = config_with(
        tmp_path,
        f"escrow:\n  store: {store}\n  recipients:\n    - {AGE}\n    - '{SSH}'\n"
        "    - /etc/privmask/custodians.txt\n  retention_days: 365\n"
        "signing_key: {credential: site-signing-key}\naudit_checkpoint_every: 250\n",
    )
    config = load_config(path)
    assert config.escrow_store == store
    assert config.escrow_recipients == (AGE, SSH, "/etc/privmask/custodians.txt")
    assert config.retention_days == 365
    assert config.signing_key == SecretSource("credential", "site-signing-key")
    assert config.audit_checkpoint_every == 250


def test_a_relative_store_is_taken_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(config_with(tmp_path, "escrow: {store: vault}\n"))
    assert config.escrow_store == tmp_path / "vault"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("escrow: {recipients: [court.txt]}\n",
         "escrow.recipients.0: a recipients file is given by its absolute path, such as "
         "/etc/privmask/custodians.txt"),
        (f"escrow: {{recipients: [{AGE}, age1short]}}\n",
         "escrow.recipients.1: not an age public key: `age1` and 58 characters, as "
         "`age-keygen` prints it"),
        ("escrow: {recipients: ['ssh-rsa AAAAB3NzaC1yc2E court']}\n",
         "escrow.recipients.0: only SSH ed25519 keys are taken: `ssh-ed25519 AAAA...`"),
        ("escrow: {retention_days: 0}\n",
         "escrow.retention_days: input should be greater than or equal to 1"),
        ("escrow: {stroe: /srv/escrow}\n", "escrow.stroe: Extra inputs are not permitted"),
        ("signing_key: {file: /a, env: B}\n",
         "signing_key: give exactly one of file, env or credential"),
        ("signing_key: /etc/privmask/signing.key\n",
         "signing_key: Input should be a valid dictionary or instance of SecretRef"),
        ("audit_checkpoint_every: 0\n",
         "audit_checkpoint_every: Input should be greater than or equal to 1"),
        ("audit_checkpoint_every: 100001\n",
         "audit_checkpoint_every: Input should be less than or equal to 100000"),
    ],
)  # fmt: skip
def test_a_bad_custody_key_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = config_with(tmp_path, text)
    found = refusal(path)
    assert found.lower() == f"{path}: {message}".lower()
    assert "\n" not in found


def test_a_secret_key_given_as_a_recipient_is_never_repeated(tmp_path: Path) -> None:
    secret = "AGE-SECRET-KEY-1" + "Q" * 58
    path = config_with(tmp_path, f"escrow: {{recipients: [{secret}]}}\n")
    found = refusal(path)
    assert found.startswith(f"{path}: escrow.recipients.0: this is an age secret key")
    assert "Q" * 8 not in found


@pytest.mark.parametrize("where", ["inside", "around", "same"])
def test_the_escrow_store_must_not_nest_with_an_inbox(tmp_path: Path, where: str) -> None:
    inbox = tmp_path / "inbox"
    store = {"inside": inbox / "escrow", "around": tmp_path, "same": inbox}[where]
    path = config_with(tmp_path, f"inboxes: [{inbox}]\nescrow: {{store: {store}}}\n")
    assert refusal(path) == f"escrow store {store} and inbox {inbox} must not contain each other"


def test_rules_and_config_refuse_a_recipient_in_the_same_words(tmp_path: Path) -> None:
    from privmask.rules.files import RuleFileError, parse_rules

    with pytest.raises(RuleFileError) as rules:
        parse_rules("version: 1\nrules:\n  - name: a\n    escrow: [keys/court.txt]\n")
    in_rules = str(rules.value).split("rules.0.escrow.0: ", 1)[1]
    in_config = refusal(config_with(tmp_path, "escrow: {recipients: [keys/court.txt]}\n"))
    assert in_config.endswith(f"escrow.recipients.0: {in_rules}")
