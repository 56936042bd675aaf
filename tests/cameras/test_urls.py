"""adapters/urls.py: credentials never survive redact or scrub, and come back only on request."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from privmask.adapters import urls

PASSWORD = "hunter2-Zq"

# (url, what redact must give): passwords in the netloc, in the query, or in both
SECRET_URLS = [
    (f"rtsp://admin:{PASSWORD}@10.0.0.5:554/Streaming/101", "rtsp://10.0.0.5:554/Streaming/101"),
    (f"rtsp://admin:{PASSWORD}@[fe80::1]:554/live", "rtsp://[fe80::1]:554/live"),
    (f"rtsp://admin:{PASSWORD}@cam/a@b", "rtsp://cam/a@b"),  # '@' in the path is no userinfo
    (f"rtsp://admin:p@{PASSWORD}@cam/live", "rtsp://cam/live"),  # an unencoded '@' in it
    (f"http://cam/snap.jpg?PWD={PASSWORD}", "http://cam/snap.jpg"),
    (
        f"rtsp://cam/cam/realmonitor?channel=1&user=admin&password={PASSWORD}&subtype=0",
        "rtsp://cam/cam/realmonitor?channel=1&subtype=0",
    ),
    (f"https://mirror/models/x.onnx?Token={PASSWORD}&v=2", "https://mirror/models/x.onnx?v=2"),
    (f"https://mirror/x?access_token={PASSWORD}&sig={PASSWORD}", "https://mirror/x"),
    (f"rtsp://u:{PASSWORD}@cam/live?pass={PASSWORD}#top", "rtsp://cam/live#top"),
]


@pytest.mark.parametrize(("url", "clean"), SECRET_URLS)
def test_redact_removes_every_credential(url: str, clean: str) -> None:
    redacted = urls.redact(url)
    assert redacted == clean
    assert PASSWORD not in redacted
    assert "admin" not in redacted


@pytest.mark.parametrize(
    "url",
    ["rtsp://cam:554/live", "rtsp://cam/live?ch=1&subtype=0", "http://[::1]:8080/onvif/device"],
)
def test_redact_keeps_a_url_without_credentials(url: str) -> None:
    assert urls.redact(url) == url


@pytest.mark.parametrize(("url", "clean"), SECRET_URLS)
def test_scrub_blanks_the_url_and_its_parts_wherever_they_are_quoted(url: str, clean: str) -> None:
    parts = urlsplit(url)
    message = (
        f"Could not open '{url}': 401 Unauthorized (sent password {parts.password or PASSWORD}); "
        f"netloc {parts.netloc}, query {parts.query}"
    )
    scrubbed = urls.scrub(message, url)
    assert PASSWORD not in scrubbed
    assert clean in scrubbed  # the URL is still named, so the message still helps


def test_scrub_leaves_text_without_the_url_alone() -> None:
    text = "Connection refused"
    assert urls.scrub(text, "rtsp://cam/live") == text
    assert urls.scrub(text, f"rtsp://admin:{PASSWORD}@cam/live") == text


def test_scrub_blanks_a_percent_decoded_password() -> None:
    url = "rtsp://admin:Zq%40ss%2F9@cam/live"
    assert "Zq@ss/9" not in urls.scrub("auth with Zq@ss/9 refused", url)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("admin", PASSWORD),
        ("ad:min", "p@ss/w:rd?#%&= ~"),
        ("user@site", "%41%"),
        ("ünï", "пароль€"),
    ],
)
def test_with_credentials_round_trip(username: str, password: str) -> None:
    plain = "rtsp://cam.example:8554/live/main?channel=1&subtype=0"
    connect = urls.with_credentials(plain, username, password)
    parts = urlsplit(connect)
    assert unquote(parts.username or "") == username
    assert unquote(parts.password or "") == password
    assert (parts.hostname, parts.port, parts.path) == ("cam.example", 8554, "/live/main")
    assert parts.query == "channel=1&subtype=0"
    assert urls.redact(connect) == plain  # and out again, exactly
    scrubbed = urls.scrub(f"failed: {connect}", connect)
    assert scrubbed == f"failed: {plain}"


def test_with_credentials_replaces_credentials_already_there() -> None:
    connect = urls.with_credentials("rtsp://old:stale@cam/live", "new", PASSWORD)
    assert "old" not in connect and "stale" not in connect
    assert urlsplit(connect).password == PASSWORD


UNPARSEABLE = f"rtsp://admin:{PASSWORD}@[fe80::1/live"  # an unclosed IPv6 bracket


def test_an_unparseable_url_is_never_shown() -> None:
    with pytest.raises(ValueError):
        urlsplit(UNPARSEABLE)  # the premise: the standard library refuses it
    assert urls.redact(UNPARSEABLE) == urls.UNPARSEABLE
    assert PASSWORD not in urls.scrub(f"cannot open {UNPARSEABLE}", UNPARSEABLE)
    assert urls.host_keys(UNPARSEABLE) == ()


def test_host_keys_name_the_device_without_credentials() -> None:
    keys = urls.host_keys(f"rtsp://admin:{PASSWORD}@10.0.0.5:554/live?password={PASSWORD}")
    assert keys == ("rtsp://10.0.0.5:554/live", "10.0.0.5:554", "10.0.0.5")
    assert urls.host_keys("rtsp://cam/live") == ("rtsp://cam/live", "cam")  # no duplicates
    assert urls.host_keys("rtsp://[fe80::1]:554/a")[1:] == ("[fe80::1]:554", "fe80::1")
