"""Retention: escrow copies go when their rule's (or the site's) days are up, quarantine
copies after the site's; each deletion audited; packages and reason.json never touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyrage
import pytest

from privmask.adapters.minisign import SecretKey
from privmask.daemon.custody import retention
from privmask.daemon.custody.audit import AuditLog
from privmask.daemon.delivery import DAY_SECONDS, Custody
from privmask.daemon.journal import Journal
from privmask.daemon.quarantine import quarantine
from privmask.rules.match import Facts
from privmask.rules.ruleset import Decision, RuleSet

from clips import write_clip

RULES = """\
version: 1
rules:
  - name: short
    match: {cameras: [CAM-SHORT]}
    targets: {face: {}}
    retention_days: 2
  - name: site
    targets: {face: {}}
"""


@pytest.fixture
def custody(tmp_path: Path) -> Custody:
    store = tmp_path / "escrow"
    store.mkdir()
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    return Custody(store, (recipient,), 30, SecretKey.generate(), tmp_path / "audit", 100)


def decide(tmp_path: Path, camera: str) -> Decision:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "site.yaml").write_text(RULES)
    return RuleSet.from_paths([folder]).decide(Facts(camera=camera))


def test_escrow_copies_expire_by_their_rule_then_by_the_site(
    tmp_path: Path, custody: Custody
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    nowhere = tmp_path / "quarantine"
    with Journal(tmp_path / "journal.sqlite") as journal:
        for job, camera in (("000001", "CAM-SHORT"), ("000002", "CAM-OTHER")):
            custody.seal(journal, job, clip, decide(tmp_path, camera), actor="test")
        now = time.time()
        assert retention.sweep(journal, custody, nowhere, now + DAY_SECONDS) == 0
        # after 3 days the 2-day rule's copy goes; the site's 30 days keep the other
        assert retention.sweep(journal, custody, nowhere, now + 3 * DAY_SECONDS) == 1
        assert sorted(p.name for p in custody.store.iterdir()) == ["000002.age"]
        gone = journal.escrow("000001")
        assert gone is not None and gone.deleted is not None  # the row stays, marked
        assert retention.sweep(journal, custody, nowhere, now + 31 * DAY_SECONDS) == 1
        assert list(custody.store.iterdir()) == []
    entries = list(AuditLog(custody.audit_folder, None).entries())
    deleted = [e["job"] for e in entries if e["action"] == "retention_deleted"]
    assert deleted == ["000001", "000002"]


def test_quarantine_copies_expire_after_the_site_days_and_their_reason_stays(
    tmp_path: Path, custody: Custody
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    folder = tmp_path / "quarantine"
    old = quarantine(clip, folder, 1, "invalid_video", "test", recipients=custody.recipients)
    new = quarantine(clip, folder, 2, "invalid_video", "test", recipients=custody.recipients)
    forty_days_ago = time.time() - 40 * DAY_SECONDS
    os.utime(old / "reason.json", (forty_days_ago, forty_days_ago))
    with Journal(tmp_path / "journal.sqlite") as journal:
        assert retention.sweep(journal, custody, folder) == 1
        assert retention.sweep(journal, custody, folder) == 0  # nothing left to delete
    assert [p.name for p in old.iterdir()] == ["reason.json"]
    assert sorted(p.name for p in new.iterdir()) == ["clip.mp4.age", "reason.json"]
    (entry,) = [e for e in AuditLog(custody.audit_folder, None).entries()]
    assert entry["action"] == "retention_deleted" and entry["job"] == "000001"
