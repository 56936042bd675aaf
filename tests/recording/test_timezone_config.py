"""`timezone:` in the daemon's config: an IANA name, checked; by default the host's zone."""

from __future__ import annotations

import pickle
from datetime import UTC
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo

import pytest

from privmask.daemon.config import ConfigError, load_config
from privmask.daemon.timezones import host_timezone


def config_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "privmask.yaml"
    path.write_text(text)
    return path


def test_a_named_zone_is_used(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, "timezone: America/Sao_Paulo\n"))
    assert config.timezone == ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize(
    "name", ["Mars/Olympus_Mons", "../../etc/passwd", "CET-1CEST", "Europe", ""]
)
def test_an_unknown_zone_is_one_clear_error(tmp_path: Path, name: str) -> None:
    path = config_with(tmp_path, f"timezone: '{name}'\n")
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    assert str(failure.value) == (
        f"{path}: timezone: unknown time zone {name!r}; give an IANA name such as Europe/Berlin"
    )


def test_without_the_key_the_host_zone_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert load_config(None).timezone == ZoneInfo("Asia/Kolkata")
    monkeypatch.setenv("TZ", ":Pacific/Auckland")  # the glibc form of the same thing
    assert load_config(None).timezone == ZoneInfo("Pacific/Auckland")


def zone_file(name: str) -> Path:
    return next(Path(root, name) for root in TZPATH if Path(root, name).is_file())


def test_a_copied_localtime_is_recognised_by_its_zone_data(tmp_path: Path) -> None:
    """/etc/localtime as a plain copy (Docker images, some installers): the zone is found by
    its data, and it travels to worker processes (which get the config pickled)."""
    localtime = tmp_path / "localtime"
    localtime.write_bytes(zone_file("Europe/Lisbon").read_bytes())
    zone = host_timezone({}, localtime, tmp_path / "no-timezone-file")
    assert zone == ZoneInfo("Europe/Lisbon")
    assert pickle.loads(pickle.dumps(zone)) == zone


def test_the_host_zone_sources_in_order(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to(zone_file("Asia/Tokyo"))
    named = tmp_path / "timezone"
    named.write_text("America/Chicago\n")
    assert host_timezone({"TZ": "Africa/Nairobi"}, link, named) == ZoneInfo("Africa/Nairobi")
    assert host_timezone({}, link, named) == ZoneInfo("Asia/Tokyo")
    assert host_timezone({}, tmp_path / "none", named) == ZoneInfo("America/Chicago")
    assert host_timezone({}, tmp_path / "none", tmp_path / "none") == UTC  # as glibc does
