"""The escrow copy of a job in the journal and the audit log: one copy per job, and an entry
that says when a later try's copy replaced an earlier one (a worker killed after sealing, a
daemon stopped between the copy and the package)."""

from __future__ import annotations

from pathlib import Path

import pyrage

from privmask.adapters.minisign import SecretKey
from privmask.daemon.custody.audit import AuditLog
from privmask.daemon.delivery import Custody
from privmask.daemon.journal import Journal
from privmask.rules.match import Facts
from privmask.rules.ruleset import RuleSet

from clips import write_clip


def test_a_copy_sealed_again_says_which_copy_it_replaced(tmp_path: Path) -> None:
    store, rules = tmp_path / "escrow", tmp_path / "rules"
    store.mkdir()
    rules.mkdir()
    (rules / "site.yaml").write_text("version: 1\nrules:\n  - {name: site, targets: {face: {}}}\n")
    decision = RuleSet.from_paths([rules]).decide(Facts(camera="CAM-1"))
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    custody = Custody(store, (recipient,), 30, SecretKey.generate(), tmp_path / "audit", 100)
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    with Journal(tmp_path / "journal.sqlite") as journal:
        first = custody.seal(journal, "000001", clip, decision, actor="worker w0@a")
        second = custody.seal(journal, "000001", clip, decision, actor="worker w1@b")
        assert first is not None and second is not None
        assert first.sha256 != second.sha256  # age encrypts afresh: another file
        assert journal.escrow("000001") == second
    assert [p.name for p in store.iterdir()] == ["000001.age"]
    written = [e for e in AuditLog(custody.audit_folder, None).entries() if e["job"] == "000001"]
    assert [e["action"] for e in written] == ["escrow_written", "escrow_written"]
    assert "replaces" not in written[0]["details"]
    assert written[0]["details"]["sha256"] == first.sha256
    assert written[1]["details"]["replaces"] == first.sha256  # the copy no longer there
