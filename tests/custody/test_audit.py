"""The audit log: hash-chained entries appended by several processes, signed checkpoints that
Debian's `minisign` verifies, and a verifier that names each kind of tampering."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from privmask.adapters.minisign import SecretKey
from privmask.daemon.custody.audit import AuditError, AuditLog, actor_name, verify_log

KEY = SecretKey.generate()


def make_log(folder: Path, count: int, every: int = 5) -> AuditLog:
    log = AuditLog(folder, KEY, checkpoint_every=every)
    for n in range(1, count + 1):
        log.append("escrow_written", actor="daemon", job=f"{n:06d}", details={"n": n})
    return log


def lines(folder: Path) -> list[bytes]:
    return (folder / "log.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(folder: Path, content: list[bytes]) -> None:
    (folder / "log.jsonl").write_bytes(b"".join(content))


def test_entries_are_chained_durable_and_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "audit"
    (tmp_path / "state").mkdir()
    log = AuditLog(folder, KEY)
    first = log.append("key_created", actor="daemon", details={"key_id": KEY.public.key_id_hex})
    second = log.append(
        "reveal", actor=actor_name("Officer K"), job="000007", reason="court order 12/26"
    )

    assert first["seq"] == 1 and first["prev"] == "0" * 64
    assert second["seq"] == 2 and second["job"] == "000007"
    assert second["time"].endswith("Z")
    assert second["actor"].startswith("user ") and second["actor"].endswith(" for Officer K")
    assert list(log.entries()) == [first, second]
    assert list(log.entries(job="000007")) == [second]
    assert stat.S_IMODE((folder / "log.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # canonical lines: what verify hashes is exactly what was written
    assert lines(folder)[0] == (
        json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        + b"\n"
    )
    report = verify_log(folder, KEY.public)
    assert report.problems == [] and report.entries == 2


def _writer(folder: str, key: bytes, writer: int, count: int) -> None:
    log = AuditLog(Path(folder), SecretKey.parse(key), checkpoint_every=50)
    for n in range(count):
        log.append("escrow_written", actor=f"worker {writer}", details={"n": n})


def test_two_processes_appending_at_once_make_one_valid_chain(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_writer, args=(str(folder), KEY.to_bytes(), w, 200)) for w in (1, 2)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=300)
        assert process.exitcode == 0

    entries = list(AuditLog(folder, None).entries())
    report = verify_log(folder, KEY.public)

    assert report.problems == []
    assert [entry["seq"] for entry in entries] == list(range(1, 401))
    for writer in (1, 2):
        mine = [e["details"]["n"] for e in entries if e["actor"] == f"worker {writer}"]
        assert mine == list(range(200))
    assert report.checkpoints == 8
    assert sorted(p.name for p in (folder / "checkpoints").glob("*.txt")) == [
        f"{n:012d}.txt" for n in range(50, 401, 50)
    ]


def edited(content: list[bytes]) -> list[bytes]:
    entry = json.loads(content[2])
    entry["reason"] = "nothing to see"
    line = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return [*content[:2], line, *content[3:]]


def inserted(content: list[bytes]) -> list[bytes]:
    forged = json.loads(content[2])
    forged["action"] = "rules_loaded"
    line = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return [*content[:2], line, *content[2:]]


TAMPERING = {
    "edited": edited,
    "deleted": lambda c: [*c[:2], *c[3:]],
    "inserted": inserted,
    "swapped": lambda c: [*c[:2], c[3], c[2], *c[4:]],
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_a_changed_entry_is_found(tmp_path: Path, kind: str) -> None:
    make_log(tmp_path, 12)
    write_lines(tmp_path, TAMPERING[kind](lines(tmp_path)))

    report = verify_log(tmp_path, KEY.public)

    assert report.problems, kind
    assert any("line 3" in p or "line 4" in p for p in report.problems), report.problems
    assert all("\n" not in p for p in report.problems)


def test_an_edit_with_the_chain_rebuilt_is_caught_by_the_checkpoint(tmp_path: Path) -> None:
    make_log(tmp_path, 7)
    content = edited(lines(tmp_path))
    rebuilt: list[bytes] = []
    prev = "0" * 64
    for raw in content:  # a forger who recomputes every later hash
        entry = json.loads(raw)
        entry["prev"] = prev
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        rebuilt.append(line + b"\n")
        prev = hashlib.sha256(line).hexdigest()
    write_lines(tmp_path, rebuilt)

    report = verify_log(tmp_path, KEY.public)

    assert any("checkpoint 5" in p for p in report.problems), report.problems


def test_truncation_past_the_newest_checkpoint_is_found(tmp_path: Path) -> None:
    make_log(tmp_path, 12)
    write_lines(tmp_path, lines(tmp_path)[:7])

    report = verify_log(tmp_path, KEY.public)

    assert any("truncated" in p and "checkpoint 10" in p for p in report.problems)


def test_truncation_after_the_newest_checkpoint_is_said_to_be_invisible(tmp_path: Path) -> None:
    make_log(tmp_path, 12)
    write_lines(tmp_path, lines(tmp_path)[:11])

    report = verify_log(tmp_path, KEY.public)

    assert report.problems == []
    assert report.entries == 11
    assert any("after the newest checkpoint" in n and "cannot" in n for n in report.notes)


@pytest.mark.parametrize("part", ["text", "signature", "other key"])
def test_an_altered_checkpoint_is_found(tmp_path: Path, part: str) -> None:
    make_log(tmp_path, 10)
    text = tmp_path / "checkpoints" / "000000000005.txt"
    signature = tmp_path / "checkpoints" / "000000000005.txt.minisig"
    if part == "text":
        text.write_text(text.read_text().replace("entries: 5", "entries: 4"))
    elif part == "signature":
        signed = signature.read_text().splitlines()
        signed[3] = signed[3][:10] + ("A" if signed[3][10] != "A" else "B") + signed[3][11:]
        signature.write_text("\n".join(signed) + "\n")
    else:
        signature.write_text(SecretKey.generate().sign(text.read_bytes(), "forged"))

    report = verify_log(tmp_path, KEY.public)

    assert any("checkpoint 5" in p and "signature" in p for p in report.problems)


def test_a_checkpoint_verifies_with_the_minisign_cli(tmp_path: Path) -> None:
    minisign = shutil.which("minisign")
    if minisign is None:
        pytest.fail("minisign not found: install the Debian package minisign")
    log = make_log(tmp_path, 3, every=100)

    path = log.checkpoint()

    assert path == tmp_path / "checkpoints" / "000000000003.txt"
    head = hashlib.sha256(lines(tmp_path)[2].rstrip(b"\n")).hexdigest()
    text = path.read_text().splitlines()
    assert text[:3] == ["privmask audit checkpoint", "entries: 3", f"head: {head}"]
    assert text[3].startswith("time: ") and text[3].endswith("Z")
    done = subprocess.run(
        [minisign, "-Vm", str(path), "-P", KEY.public.base64], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert log.checkpoint() == path  # nothing new: the same checkpoint


def test_no_checkpoint_without_entries_or_signer(tmp_path: Path) -> None:
    assert AuditLog(tmp_path / "a", KEY).checkpoint() is None
    unsigned = AuditLog(tmp_path / "b", None, checkpoint_every=1)
    unsigned.append("rules_loaded", actor="daemon", details={"sha256": "ab" * 32})
    assert unsigned.checkpoint() is None
    assert not (tmp_path / "b" / "checkpoints").exists()
    report = verify_log(tmp_path / "b", KEY.public)
    assert report.problems == [] and any("no signed checkpoint" in n for n in report.notes)


def test_a_torn_last_line_from_a_crash_is_dropped_by_the_next_append(tmp_path: Path) -> None:
    log = make_log(tmp_path, 3)
    with (tmp_path / "log.jsonl").open("ab") as handle:
        handle.write(b'{"action":"reveal","seq":4')  # the writer died mid-line

    assert any("incomplete" in p for p in verify_log(tmp_path, KEY.public).problems)
    log.append("reveal", actor="daemon", job="000001", reason="r")

    assert verify_log(tmp_path, KEY.public).problems == []
    assert [e["seq"] for e in log.entries()] == [1, 2, 3, 4]


def test_a_folder_that_cannot_be_made_is_an_audit_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder")
    log = AuditLog(tmp_path / "state" / "audit", KEY)

    with pytest.raises(AuditError) as caught:
        log.append("reveal", actor="daemon", job="000001", reason="r")

    assert "audit" in str(caught.value) and "\n" not in str(caught.value)


_READ_ONLY = """
import sys
from pathlib import Path
from privmask.daemon.custody.audit import AuditError, AuditLog
try:
    AuditLog(Path(sys.argv[1]), None).append("reveal", actor="x", job="000001", reason="r")
except AuditError as exc:
    print("AuditError:", exc)
"""


def test_a_read_only_audit_folder_is_an_audit_error(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    make_log(folder, 2)
    before = (folder / "log.jsonl").read_bytes()
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 77;'
         ' exec "$2" -c "$3" "$1"',
         "sh", str(folder), sys.executable, _READ_ONLY],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode == 77 or "unshare failed" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("AuditError:") and "Read-only" in result.stdout
    assert (folder / "log.jsonl").read_bytes() == before


_FULL_DISK = """
import json, os, sys
from pathlib import Path
from privmask.daemon.custody.audit import AuditError, AuditLog
folder = Path(sys.argv[1]) / "audit"
log = AuditLog(folder, None)
log.append("rules_loaded", actor="daemon", details={"sha256": "ab" * 32})
before = (folder / "log.jsonl").read_bytes()
filler = os.open(Path(sys.argv[1]) / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(filler, b"f" * 1024)
except OSError:
    os.close(filler)
try:
    log.append("reveal", actor="x", job="000001", reason="r" * 30000)
except AuditError as exc:
    error = str(exc)
else:
    error = None
print(json.dumps({"error": error, "unchanged": (folder / "log.jsonl").read_bytes() == before}))
"""


def test_a_full_disk_is_an_audit_error_and_leaves_no_half_entry(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size=64k tmpfs "$1" || exit 77; exec "$2" -c "$3" "$1"',
         "sh", str(mount), sys.executable, _FULL_DISK],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode == 77 or "unshare failed" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["error"] and "No space left" in outcome["error"]
    assert outcome["unchanged"]


def test_the_actor_is_the_login_and_the_requester() -> None:
    login = pwd.getpwuid(os.getuid()).pw_name
    assert actor_name() == f"user {login}"
    assert actor_name("  DC Smith\n(case 4)  ") == f"user {login} for DC Smith (case 4)"
