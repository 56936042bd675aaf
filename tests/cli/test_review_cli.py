"""`privmask review list|show|decide` on a real site's journal, without a daemon: the job is
taken in and tried by the worker's own code (`run_job`, in this process), so the clip is
really analysed and held; the commands run as a user runs them.

Also the worker's side of a decision that no longer fits: rules changed after the approval
make the next try analyse again and wait again, never publish a selection made on other ids.
"""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from privmask.daemon.config import Config, load_config
from privmask.daemon.custody.sitekey import site_key
from privmask.daemon.delivery import Custody
from privmask.daemon.journal import SCHEMA_VERSION, FileIdentity, JobState, Journal
from privmask.daemon.retry import RetryPolicy
from privmask.daemon.rulebook import publish
from privmask.daemon.worker import run_job
from privmask.rules.ruleset import RuleSet

from clips import Custodian, write_clip
from harness import PASSWORD, Daemon, privmask
from journals import old_journal

pytestmark = pytest.mark.slow

RULES = """version: 1
rules:
  - name: reviewed
    targets: {{face: {{min_score: {score}}}}}
    review: required
"""


class Site:
    """A daemon's folders, config, rules and journal, driven without the daemon."""

    def __init__(self, root: Path, models_dir: Path, **settings: Any) -> None:
        self.rules = root / "rules"
        self.rules.mkdir()
        self.set_rules(0.6)
        self.daemon = Daemon(root, models_dir, rules=str(self.rules), **settings)
        self.config: Config = load_config(self.daemon.config)
        self.config.state.mkdir(mode=0o700)
        self.custody = Custody.of(self.config, site_key(self.config))
        self.publish()

    def set_rules(self, score: float) -> None:
        (self.rules / "site.yaml").write_text(RULES.format(score=score))

    def publish(self) -> None:
        publish(RuleSet.from_paths([self.rules]), self.config.state / "rulesets")

    def take_in(self, clip: Path) -> int:
        info = clip.stat()
        identity = FileIdentity(str(clip), info.st_size, info.st_mtime_ns, info.st_ino)
        sha = hashlib.sha256(clip.read_bytes()).hexdigest()
        with Journal(self.config.journal_path) as journal:
            job, _ = journal.enqueue(identity, sha, str(clip.parent))
        return job.id

    def work(self) -> JobState:
        """One worker try of the next queued job, as a worker process runs it."""
        with Journal(self.config.journal_path) as journal:
            job = journal.claim("w")
            assert job is not None
            password = PASSWORD.encode()
            run_job(job, journal, self.config, password, self.custody, RetryPolicy(), "w")
            return journal.get(job.id).state

    def review(self, *args: object) -> subprocess.CompletedProcess[str]:
        return privmask("review", *args, "--config", self.daemon.config, timeout=120)

    def events(self, job: int) -> list[str]:
        with Journal(self.config.journal_path) as journal:
            return [f"{state}: {detail}" for _, state, detail in journal.events(job)]


@pytest.fixture
def site(tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]) -> Site:
    made = Site(tmp_path, models_dir, escrow={"recipients": [custodians["age"].recipient]})
    job = made.take_in(write_clip(made.daemon.inbox / "clip.mp4", frames=20))
    assert made.work() is JobState.REVIEW and job == 1
    return made


def test_list_and_show_a_waiting_clip(site: Site) -> None:
    listed = site.review("list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:2] == ["JOB", "WAITING"]
    assert row.split()[0] == "000001" and row.split()[-2:] == ["0", "clip.mp4"]
    shown = site.review("show", "000001")
    assert shown.returncode == 0, shown.stderr
    folder = site.config.state / "review" / "000001"
    assert "0 subjects in 20 frames" in shown.stdout
    assert str(folder / "sheet.html") in shown.stdout
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (viewed,) = [e for e in site.daemon.audit() if e["action"] == "review_viewed"]
    assert viewed["job"] == "000001" and viewed["details"] == {"what": "sheet"}
    assert any("sheet viewed by" in e for e in site.events(1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("1", "--keep-visible", "1"), "no subject 1 in the analysis (its subjects: none)"),
        (("1", "--keep-visible", "x"), "--keep-visible takes subject ids"),
        (("1", "--region", "5,5,oops"), "--region: region"),
        (("2",), "job 2 is not waiting for review"),
        (("1", "--reason", ""), "a reason is required"),
    ],
)
def test_a_refused_decision_is_one_line_exit_2_and_changes_nothing(
    site: Site, args: tuple[str, ...], message: str
) -> None:
    reason = () if "--reason" in args else ("--reason", "because")
    done = site.review("decide", *args, *reason, "--approve")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("privmask: error: ") and message in line
    with Journal(site.config.journal_path) as journal:
        assert journal.get(1).state is JobState.REVIEW
    assert not [e for e in site.daemon.audit() if e["action"] == "review_decided"]


def test_show_and_decide_without_a_journal_say_so(tmp_path: Path, models_dir: Path) -> None:
    bare = Daemon(tmp_path, models_dir)
    listed = privmask("review", "list", "--config", bare.config)
    assert listed.returncode == 0 and "no clips are waiting" in listed.stdout
    done = privmask("review", "decide", "1", "--reason", "x", "--reject", "--config", bare.config)
    assert done.returncode == 2 and "no journal" in done.stderr
    assert not (bare.state / "journal.sqlite").exists()


def test_an_approval_the_rules_no_longer_fit_is_analysed_again(site: Site) -> None:
    approved = site.review("decide", "1", "--reason", "nobody to hide", "--approve")
    assert approved.returncode == 0, approved.stderr
    site.set_rules(0.7)  # another detection setting: the analysis's ids may mean others now
    site.publish()
    assert site.work() is JobState.REVIEW
    assert "analysed again, the review no longer fits" in site.events(1)[-1]
    assert "min_score" in site.events(1)[-1]
    assert site.daemon.packages() == []
    again = site.review("decide", "1", "--reason", "still nobody", "--approve")
    assert again.returncode == 0, again.stderr
    assert site.work() is JobState.DONE
    (package,) = site.daemon.packages()
    _, manifest = site.daemon.read(package)
    assert manifest["review"]["reason"] == "still nobody"
    assert manifest["review"]["kept_visible"] == [] and manifest["review"]["regions"] == 0
    assert not (site.config.state / "review" / "000001").exists()


def test_an_approved_clip_keeps_the_escrow_copy_made_when_it_was_held(site: Site) -> None:
    """The original was sealed before the analysis; the approved try packages against that
    copy instead of sealing (and auditing) a second one that silently replaces it."""
    with Journal(site.config.journal_path) as journal:
        held = journal.escrow("000001")
    assert held is not None
    approved = site.review("decide", "1", "--reason", "nobody to hide", "--approve")
    assert approved.returncode == 0, approved.stderr
    assert site.work() is JobState.DONE
    written = [e for e in site.daemon.audit() if e["action"] == "escrow_written"]
    assert len(written) == 1
    with Journal(site.config.journal_path) as journal:
        assert journal.escrow("000001") == held
    (package,) = site.daemon.packages()
    _, manifest = site.daemon.read(package)
    assert manifest["escrow"]["sha256"] == held.sha256


def test_commands_never_upgrade_a_journal_the_daemon_has_not(
    tmp_path: Path, models_dir: Path
) -> None:
    """A newer privmask's `review list` beside an older running daemon must not move the
    journal to a schema that daemon cannot read (its page and workers would stop)."""
    bare = Daemon(tmp_path, models_dir)
    path = bare.state / "journal.sqlite"
    bare.state.mkdir(parents=True, exist_ok=True)
    old_journal(path, SCHEMA_VERSION - 1).close()
    for command in (("review", "list"), ("review", "show", "1"), ("status",)):
        done = privmask(*command, "--config", bare.config)
        assert done.returncode != 0 and "Traceback" not in done.stderr, command
        assert f"schema {SCHEMA_VERSION - 1}" in done.stderr.strip().splitlines()[-1], command
        assert "privmask run" in done.stderr, command
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION - 1


def test_pixel_areas_are_sized_as_the_viewer_sees_a_turned_clip(
    tmp_path: Path, models_dir: Path
) -> None:
    """A phone-style clip stored 320x240 and shown turned (240x320): an area given in the
    pixels a reviewer sees must be read on that picture, not on the stored one (else it
    lands elsewhere, and what it should hide stays visible)."""
    made = Site(tmp_path, models_dir)
    made.take_in(write_clip(made.daemon.inbox / "turned.mp4", frames=10, rotation=90))
    assert made.work() is JobState.REVIEW
    decided = made.review(
        "decide", "1", "--region", "10,200,200,200,200,300,10,300", "--reason", "x", "--approve"
    )
    assert decided.returncode == 0, decided.stderr
    with Journal(made.config.journal_path) as journal:
        review = journal.review_of(1)
    assert review is not None and review.decision is not None
    (area,) = review.decision.regions
    assert area["reference_size"] == [240, 320]
