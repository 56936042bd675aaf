"""`privmask audit show` and `privmask audit verify` on the log a real daemon wrote."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from custody_site import Site, build_site

SUMMARY = re.compile(
    r"(\d+) entries, (\d+) checkpoints, chain intact, newest checkpoint at entry (\d+) "
    r"signed by ([0-9A-F]{16})"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Site:
    return build_site(tmp_path_factory.mktemp("site"), models_dir)


@pytest.mark.slow
def test_show_lists_who_did_what_as_a_table_and_as_json(site: Site) -> None:
    table = site.cli("audit", "show")
    entries = json.loads(site.cli("audit", "show", "--json").stdout)
    mine = json.loads(site.cli("audit", "show", "--job", str(int(site.job)), "--json").stdout)

    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["SEQ", "TIME", "ACTOR", "ACTION", "JOB", "REASON"]
    assert len(rows) == len(entries)
    assert any("escrow_written" in r and site.job in r for r in rows)
    actions = [e["action"] for e in entries]
    assert actions[0] == "key_created" and "escrow_written" in actions
    (sealed,) = [e for e in entries if e["action"] == "escrow_written"]
    assert sealed["details"]["sha256"] == site.manifest["escrow"]["sha256"]
    assert mine and all(e["job"] == site.job for e in mine)


@pytest.mark.slow
def test_verify_says_intact_and_the_checkpoint_verifies_with_minisign(site: Site) -> None:
    done = site.cli("audit", "verify")
    count = len(json.loads(site.cli("audit", "show", "--json").stdout))

    assert done.returncode == 0, done.stdout + done.stderr
    found = SUMMARY.search(done.stdout)
    assert found is not None, done.stdout
    entries, checkpoints, newest, key = found.groups()
    assert int(entries) == count and int(checkpoints) >= 1
    assert int(newest) == count  # the daemon signed its head when it stopped
    assert key == site.public.key_id_hex
    checkpoint = site.daemon.state / "audit" / "checkpoints" / f"{int(newest):012d}.txt"
    outside = subprocess.run(
        ["minisign", "-Vm", str(checkpoint), "-P", site.public.base64],
        capture_output=True, text=True,
    )  # fmt: skip
    assert outside.returncode == 0, outside.stderr


def _copy_state(site: Site, tmp_path: Path) -> Path:
    state = tmp_path / "state"
    shutil.copytree(site.daemon.state, state)
    return state


@pytest.mark.slow
def test_verify_finds_an_edited_entry(site: Site, tmp_path: Path) -> None:
    state = _copy_state(site, tmp_path)
    log = state / "audit" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"actor":"user ', b'"actor":"user not-')
    log.write_bytes(b"".join(lines))

    done = site.cli("audit", "verify", "--state", str(state), config=False)

    assert done.returncode == 1
    problems = done.stdout.splitlines()
    assert problems and all(p.startswith("FAILED: ") for p in problems)
    assert any("line 2 does not follow from line 1" in p for p in problems)


@pytest.mark.slow
def test_verify_finds_a_log_cut_back_past_its_checkpoint(site: Site, tmp_path: Path) -> None:
    state = _copy_state(site, tmp_path)
    log = state / "audit" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))

    done = site.cli("audit", "verify", "--state", str(state), config=False)

    assert done.returncode == 1
    assert "truncated" in done.stdout


def test_verify_without_a_log_fails_and_show_says_there_is_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()

    verify = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "audit", "verify", "--state", str(state)],
        capture_output=True, text=True,
    )  # fmt: skip
    show = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "audit", "show", "--state", str(state)],
        capture_output=True, text=True,
    )  # fmt: skip

    assert verify.returncode == 1
    assert verify.stderr.startswith("privmask: error: no audit log in ")
    assert verify.stderr.count("\n") == 1
    assert show.returncode == 0 and show.stdout.startswith("no audit entries")
