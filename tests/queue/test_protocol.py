"""What travels through the broker and how a worker finds the daemon's folders: plain values,
no broker needed."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from kombu.utils.url import maybe_sanitize_url
from pydantic import ValidationError

from privmask.daemon.queue.protocol import Order, Report, daemon_path, local_path
from privmask.daemon.queue.settings import QueueSpec, broker_url, shown

PATHS = {
    "/srv/privmask": "/mnt/site",
    "/srv/privmask/inbox": "/mnt/nvr/inbox",
    "/srv/a": "/mnt/a",
}


@pytest.mark.parametrize(
    ("there", "here"),
    [
        ("/srv/privmask/inbox/cam1/clip.mp4", "/mnt/nvr/inbox/cam1/clip.mp4"),  # longest wins
        ("/srv/privmask/outbox", "/mnt/site/outbox"),
        ("/srv/privmask/inbox", "/mnt/nvr/inbox"),  # the folder itself
        ("/srv/privmask", "/mnt/site"),
        ("/srv/ab/clip.mp4", "/srv/ab/clip.mp4"),  # /srv/a is not a prefix of /srv/ab
        ("/var/archive/clip.mp4", "/var/archive/clip.mp4"),  # outside every mapping: kept
    ],
)
def test_a_daemon_path_is_found_on_this_machine_by_its_longest_mapping(
    there: str, here: str
) -> None:
    assert local_path(there, PATHS) == Path(here)
    assert daemon_path(here, PATHS) == Path(there)  # and back


def test_the_way_back_takes_the_longest_local_folder() -> None:
    # two daemon folders mounted one inside the other here: the inner one names the file
    paths = {"/srv/site": "/mnt/site", "/srv/escrow": "/mnt/site/escrow"}
    assert daemon_path("/mnt/site/escrow/000001.age", paths) == Path("/srv/escrow/000001.age")
    assert daemon_path("/mnt/site/outbox/x.zip", paths) == Path("/srv/site/outbox/x.zip")
    assert daemon_path("/mnt/sitex/y", paths) == Path("/mnt/sitex/y")


def test_no_mapping_leaves_every_path_as_it_is() -> None:
    assert local_path("/srv/privmask/inbox/a.mp4", {}) == Path("/srv/privmask/inbox/a.mp4")
    assert daemon_path("/mnt/x", {}) == Path("/mnt/x")


def _order() -> Order:
    return Order(
        job=7,
        attempt=2,
        try_id="0123456789abcdef",
        queue="privmask.jobs",
        path="/srv/privmask/inbox/cam1/clip.mp4",
        sha256="ab" * 32,
        size=12345,
        camera="cam1",
        folder="/srv/privmask/inbox",
        taken=("/srv/privmask/inbox/cam1/clip.mp4", 12345, 1_700_000_000_000_000_000, 42),
        swept=None,
        timezone="Europe/Berlin",
        recipients=("age1publickey",),
        retention_days=30,
        duration=12.5,
        ruleset="cd" * 32,
        rules=(("site.yaml", "version: 1\n"), ("lobby.yaml", "version: 1\nrules: []\n")),
        created=1_700_000_000.25,
    )


def test_an_order_survives_the_trip_through_json() -> None:
    order = _order()
    message = json.loads(json.dumps(order.to_message()))  # as Celery's json serializer
    assert Order.from_message(message) == order
    assert order.task_id == "job-7-try-2-01234567"
    assert 0 < order.soft_limit < order.hard_limit


def test_a_report_survives_the_trip_through_json() -> None:
    report = Report("done", 7, 2, "0123456789abcdef", "w0@host", {"package": "/x/y.zip"})
    assert Report.from_message(json.loads(json.dumps(report.to_message()))) == report


def test_an_order_carries_no_secret() -> None:
    assert set(_order().to_message()) == {
        "job", "attempt", "try_id", "queue", "path", "sha256", "size", "camera", "folder",
        "taken", "swept", "timezone", "recipients", "retention_days", "duration", "ruleset",
        "rules", "created",
    }  # fmt: skip


SECRET = "p@ss:w/rd%41 x"


def test_the_broker_password_is_quoted_into_the_url_and_read_back_whole() -> None:
    url = broker_url("amqp://privmask@broker.example:5671/site", SECRET.encode())
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("broker.example", 5671, "/site")
    assert parts.username == "privmask"
    assert SECRET not in url  # quoted: @ : / % would otherwise cut the URL elsewhere
    assert unquote(parts.password or "") == SECRET


def test_the_url_without_a_password_is_left_as_it_is() -> None:
    assert broker_url("amqp://guest@localhost//", None) == "amqp://guest@localhost//"


@pytest.mark.parametrize(
    "url",
    [
        "amqp://privmask@broker.example:5671/site",
        "amqps://privmask@broker.example/site",
        "amqp://broker.example//",
    ],
)
def test_shown_never_shows_the_password(url: str) -> None:
    full = broker_url(url, SECRET.encode())
    assert shown(full) == shown(url)  # the same with or without the password put in
    assert urlsplit(shown(full)).password is None
    assert "p%40ss" not in shown(full) and "p@ss" not in shown(full)


def test_shown_keeps_what_an_operator_needs_to_find_the_broker() -> None:
    full = broker_url("amqp://privmask@broker.example:5671/site", SECRET.encode())
    assert shown(full) == "amqp://privmask@broker.example:5671/site"
    # kombu's own redaction (Celery's banner) agrees: no password there either
    assert "p%40ss" not in maybe_sanitize_url(full)


def test_a_broker_url_holding_a_password_is_refused_with_the_key_to_use() -> None:
    with pytest.raises(ValidationError) as caught:
        QueueSpec(broker="amqp://privmask:hunter2@broker.example/")
    message = caught.value.errors()[0]["msg"]  # what `privmask` shows (config.py), not the input
    assert "use `password`" in message and "hunter2" not in message


def test_an_ipv6_broker_keeps_its_brackets() -> None:
    url = broker_url("amqp://privmask@[fd00::5]:5672/site", SECRET.encode())
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, unquote(parts.password or "")) == ("fd00::5", 5672, SECRET)
    assert shown(url) == "amqp://privmask@[fd00::5]:5672/site"


def test_a_broker_port_that_is_not_a_number_is_a_config_error() -> None:
    with pytest.raises(ValidationError) as caught:
        QueueSpec(broker="amqp://privmask@broker.example:56x2/")
    assert "port" in caught.value.errors()[0]["msg"]


def test_a_path_that_climbs_out_of_its_mapping_is_refused() -> None:
    paths = {"/srv/privmask/inbox": "/mnt/inbox"}
    with pytest.raises(ValueError, match="not a plain absolute path"):
        local_path("/srv/privmask/inbox/../../etc/shadow", paths)
    with pytest.raises(ValueError, match="not a plain absolute path"):
        local_path("relative/clip.mp4", paths)


def test_a_user_name_quoted_in_the_url_is_sent_as_it_means() -> None:
    url = broker_url("amqps://site%40north@broker.example/privmask", b"pw")
    assert url == "amqps://site%40north:pw@broker.example/privmask"
