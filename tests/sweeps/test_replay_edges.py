"""Replay's edges against a scripted recorder on loopback (scripted_recorder.py): gaps, lost
packets, digest with qop=auth, Basic-only servers, error statuses, no terminal bit."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from replay_peer import decoded
from scripted_recorder import Script, ScriptedRecorder, Unit, decode_units, encoded_units, packetise

from privmask.adapters.replay import ReplayError, replay

START = datetime(2026, 10, 25, 0, 59, 58, tzinfo=UTC)
DIGEST_QOP = 'Digest realm="NVR", nonce="5f1e2d", qop="auth", opaque="0a1b"'


@pytest.fixture(scope="module")
def units() -> list[Unit]:
    return encoded_units(START, 60)  # 2.4 s, keyframes at 0, 25 and 50


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def same_pictures(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_digest_with_qop_auth_is_answered(units: list[Unit], tmp_path: Path) -> None:
    script = Script(units, challenge=DIGEST_QOP, channel=4)  # and channels of its choice
    with ScriptedRecorder(script) as recorder:
        got = replay(recorder.url(), "operator", "pw", at(0), at(1), tmp_path / "c.mp4")

    assert got.frames == 25
    assert script.authorized[-1] and all(script.authorized[1:])
    assert all("qop=auth" in r and 'opaque="0a1b"' in r for r in script.requests[1:])


def test_a_server_offering_only_basic_never_gets_the_password(
    units: list[Unit], tmp_path: Path
) -> None:
    script = Script(units, challenge='Basic realm="NVR"')
    with ScriptedRecorder(script) as recorder, pytest.raises(ReplayError) as error:
        replay(recorder.url(), "operator", "pw", at(0), at(1), tmp_path / "c.mp4")

    assert error.value.code == "auth"
    assert "Basic" in str(error.value)
    secret = base64.b64encode(b"operator:pw").decode()
    assert not any(secret in r or "Authorization" in r for r in script.requests)
    assert list(tmp_path.iterdir()) == []


def test_a_hole_in_the_recording_is_a_gap(units: list[Unit], tmp_path: Path) -> None:
    # 2 s of recording, nothing for 2 s, then the rest (sent with the D bit)
    moved = units[:50] + [replace(u, time=u.time + timedelta(seconds=2)) for u in units[50:]]
    script = Script(moved, discontinuity_at=frozenset({50}))
    target = tmp_path / "c.mp4"
    with ScriptedRecorder(script) as recorder:
        got = replay(recorder.url(), None, None, at(0), at(10), target)

    assert got.gaps == ((at(1.96), at(4.0)),)
    assert (got.first, got.last, got.frames) == (at(0), at(4.36), 60)
    assert same_pictures(decoded(target), decode_units([u.data for u in units]))


def test_lost_packets_drop_frames_up_to_the_next_keyframe(
    units: list[Unit], tmp_path: Path
) -> None:
    first_of_unit_30 = 1000 + sum(len(packetise(u.data)) for u in units[:30])
    script = Script(units, lose_packets=frozenset({first_of_unit_30}))
    target = tmp_path / "c.mp4"
    with ScriptedRecorder(script) as recorder:
        got = replay(recorder.url(), None, None, at(0), at(10), target)

    assert got.frames == 40 and got.gaps == ((at(1.16), at(2.0)),)
    source = decode_units([u.data for u in units])
    assert same_pictures(decoded(target), source[:30] + source[50:])


def test_without_the_terminal_bit_the_end_time_ends_it(units: list[Unit], tmp_path: Path) -> None:
    script = Script(units, terminal=False)
    with ScriptedRecorder(script) as recorder:
        got = replay(recorder.url(), None, None, at(0), at(1), tmp_path / "c.mp4")

    assert (got.frames, got.last) == (25, at(0.96))
    assert script.requests[-1].startswith("TEARDOWN")


@pytest.mark.parametrize(
    ("status", "code"),
    [("457 Invalid Range", "no_data"), ("551 Option not supported", "refused")],
)
def test_an_error_status_for_play(
    units: list[Unit], tmp_path: Path, status: str, code: str
) -> None:
    script = Script(units, play_status=status)
    with ScriptedRecorder(script) as recorder, pytest.raises(ReplayError) as error:
        replay(recorder.url(), None, None, at(0), at(1), tmp_path / "c.mp4")

    assert error.value.code == code
    assert list(tmp_path.iterdir()) == []
