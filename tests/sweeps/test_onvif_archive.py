"""The ONVIF Profile G archive client against a real (small) recorder on loopback: the
device's clock, search paging, EndSearch, gaps from FindEvents, the replay URI, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from onvif_device import FakeRecording, OnvifDevice

from privmask.adapters.onvif_archive import ArchiveError, open_archive

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
USER, PASSWORD = "operator", "recorder-secret"


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def recording(
    token: str, source: str, start: float = 0, end: float = 120, **kw: object
) -> FakeRecording:
    return FakeRecording(token, source, minutes(start), minutes(end), **kw)  # type: ignore[arg-type]


@pytest.fixture
def device() -> Iterator[OnvifDevice]:
    with OnvifDevice([recording("rec-1", "gate")]) as served:
        yield served


@pytest.mark.parametrize("skew", [timedelta(hours=3), timedelta(hours=-3)])
def test_a_recorder_whose_clock_is_3_hours_off_still_answers(skew: timedelta) -> None:
    with OnvifDevice([recording("rec-1", "gate")], skew=skew) as device:
        found = open_archive(device.url, USER, PASSWORD, timeout=5).recordings()
    assert [r.token for r in found] == ["rec-1"]
    assert found[0].source_name == "gate"


def test_the_device_refuses_a_token_signed_on_the_host_clock() -> None:
    """The peer really checks Created against its clock: onvif-python's own token, signed
    with the host's time, is refused by a device 3 h off (why onvif_clock exists)."""
    from onvif import CacheMode
    from onvif.services import Device

    with OnvifDevice([], skew=timedelta(hours=3)) as device:
        port = int(device.url.split(":")[2].split("/")[0])
        plain = Device(
            xaddr=device.url, host="127.0.0.1", port=port, username=USER, password=PASSWORD,
            timeout=5, cache=CacheMode.NONE,
        )  # fmt: skip
        with pytest.raises(Exception, match="(?i)not authorized"):
            plain.GetServices(IncludeCapability=False)


def test_a_clock_set_during_the_session_is_read_again_once() -> None:
    with OnvifDevice([recording("rec-1", "gate")], skew=timedelta(hours=3)) as device:
        archive = open_archive(device.url, USER, PASSWORD, timeout=5)
        device.skew = timedelta(hours=-2)  # someone sets the recorder's clock
        assert [r.token for r in archive.recordings()] == ["rec-1"]
    assert device.calls.count("GetSystemDateAndTime") == 2


def test_service_addresses_are_reached_on_the_configured_host_and_port() -> None:
    """A recorder behind NAT advertises its inner address; the calls still go to the
    address the site configured (and signed requests nowhere else)."""
    with OnvifDevice(
        [recording("rec-1", "gate")], advertised="http://192.0.2.7:8080/onvif"
    ) as device:
        found = open_archive(device.url, USER, PASSWORD, timeout=5).recordings()
    assert [r.token for r in found] == ["rec-1"]


def test_recordings_come_from_every_result_page_and_the_search_is_ended() -> None:
    many = [recording(f"rec-{i}", f"cam-{i}") for i in range(5)]
    with OnvifDevice(many, page_size=2) as device:
        found = open_archive(device.url, USER, PASSWORD, timeout=5).recordings()
    assert [r.token for r in found] == [f"rec-{i}" for i in range(5)]
    pages = [c for c in device.calls if c.startswith("GetRecordingSearchResults")]
    assert len(pages) == 3
    assert device.ended == ["search-1"] and not device.open_searches
    video = found[0].video
    assert video is not None and (video.data_from, video.data_to) == (minutes(0), minutes(120))


def test_the_search_is_ended_also_when_a_results_page_fails() -> None:
    many = [recording(f"rec-{i}", f"cam-{i}") for i in range(5)]
    with OnvifDevice(many, page_size=2) as device:
        archive = open_archive(device.url, USER, PASSWORD, timeout=5)
        device.fail.add("GetRecordingSearchResults")
        with pytest.raises(ArchiveError) as caught:
            archive.recordings()
    assert caught.value.code == "protocol"
    assert device.ended == ["search-1"] and not device.open_searches


def test_a_wrong_password_is_one_line_naming_the_recorder_without_the_password(
    device: OnvifDevice,
) -> None:
    wrong = "not-the-Secret-42"
    with pytest.raises(ArchiveError) as caught:
        open_archive(device.url, USER, wrong, timeout=5)
    message = str(caught.value)
    assert caught.value.code == "auth"
    assert device.url in message and "password" in message
    assert wrong not in message and PASSWORD not in message and "\n" not in message
    # the clock was read again, found unchanged, and the wrong password not tried twice
    # (recorders lock an account after a few failed logins)
    assert device.calls == ["GetSystemDateAndTime", "GetServices", "GetSystemDateAndTime"]


def test_an_unreachable_recorder() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/onvif/device_service"
    with pytest.raises(ArchiveError) as caught:
        open_archive(url, USER, PASSWORD, timeout=2)
    assert caught.value.code == "unreachable"
    assert url in str(caught.value) and PASSWORD not in str(caught.value)


def test_a_gap_in_a_recording_splits_it_into_two_spans() -> None:
    gappy = recording("rec-1", "gate", gaps=[(minutes(30), minutes(40))])
    with OnvifDevice([gappy]) as device:
        archive = open_archive(device.url, USER, PASSWORD, timeout=5)
        (found,) = archive.recordings()
        spans = archive.data_spans(found, minutes(10), minutes(60))
        inside = archive.data_spans(found, minutes(32), minutes(38))
        tail = archive.data_spans(found, minutes(100), minutes(200))
    assert spans == ((minutes(10), minutes(30)), (minutes(40), minutes(60)))
    assert inside == ()
    assert tail == ((minutes(100), minutes(120)),)
    assert not device.open_searches


def test_without_find_events_the_spans_come_from_data_from_and_data_to() -> None:
    gappy = recording("rec-1", "gate", start=5, end=50, gaps=[(minutes(30), minutes(40))])
    with OnvifDevice([gappy], events=False) as device:
        archive = open_archive(device.url, USER, PASSWORD, timeout=5)
        (found,) = archive.recordings()
        spans = archive.data_spans(found, minutes(0), minutes(60))
    assert spans == ((minutes(5), minutes(50)),)


def test_the_replay_uri_of_a_recording() -> None:
    with OnvifDevice(
        [recording("rec-1", "gate")], replay_uri=lambda token: f"rtsp://127.0.0.1:5554/{token}"
    ) as device:
        uri = open_archive(device.url, USER, PASSWORD, timeout=5).replay_uri("rec-1")
    assert uri == "rtsp://127.0.0.1:5554/rec-1"
