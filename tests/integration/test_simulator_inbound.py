"""The simulator's inbound side: ``getupdates`` with a cursor that acknowledges, a
long poll that answers as soon as a message arrives, and the platform's re-sends."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from delivery.ilink.protocol import ENDPOINT_GETUPDATES, build_headers, encode_body, endpoint_url
from delivery.simulator import PlatformSimulator, SimulatorControl
from tests.support.waiting import wait_until

ACCOUNT = "bot-1@im.bot"
TOKEN = "token-one-123"
PEER = "peer@im.wechat"


@pytest.fixture
def sim_accounts() -> dict[str, str]:
    return {ACCOUNT: TOKEN}


@pytest.fixture
def control(sim: PlatformSimulator) -> SimulatorControl:
    control = SimulatorControl(sim.base_url)
    control.configure(longpolling_timeout_ms=300)
    return control


def poll(sim: PlatformSimulator, cursor: str, *, timeout: float = 10.0) -> dict[str, Any]:
    response = requests.post(
        endpoint_url(sim.base_url, ENDPOINT_GETUPDATES),
        data=encode_body({"get_updates_buf": cursor}),
        headers=build_headers(token=TOKEN),
        timeout=timeout,
    )
    payload: dict[str, Any] = response.json()
    return payload


def texts(answer: dict[str, Any]) -> list[str]:
    return [m["item_list"][0]["text_item"]["text"] for m in answer["msgs"]]


def test_an_old_cursor_gets_again_what_it_has_not_acknowledged(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given two messages handed out, and a third arriving after
    for text in ("one", "two"):
        control.inbound(ACCOUNT, from_user_id=PEER, text=text)
    first = poll(sim, "")
    control.inbound(ACCOUNT, from_user_id=PEER, text="three")

    # When the client polls again with the cursor it had before (it lost the new one)
    again = poll(sim, "")

    # Then it gets everything it has not acknowledged, the new one included
    assert texts(first) == ["one", "two"]
    assert texts(again) == ["one", "two", "three"]
    # When it acknowledges the first two only, then only the third comes again
    assert texts(poll(sim, first["get_updates_buf"])) == ["three"]
    # And once everything is acknowledged, an older cursor brings nothing back
    assert poll(sim, again["get_updates_buf"])["msgs"] == []
    assert poll(sim, first["get_updates_buf"])["msgs"] == []


def test_a_long_poll_is_held_and_answered_as_soon_as_a_message_arrives(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    # Given a poll with nothing to hand out, held up to 5 s
    control.configure(longpolling_timeout_ms=5000)
    answers: list[tuple[float, dict[str, Any]]] = []

    def long_poll() -> None:
        answers.append((time.monotonic(), poll(sim, "")))

    poller = threading.Thread(target=long_poll)
    poller.start()
    wait_until(
        lambda: control.received().accounts[ACCOUNT].polls_in_flight == 1,
        timeout=5,
        message="the poll held",
    )

    # When a reader writes
    written = time.monotonic()
    injected = control.inbound(ACCOUNT, from_user_id=PEER, text="are you there?")
    poller.join(timeout=10)

    # Then the held poll answers at once, with the message
    answered, answer = answers[0]
    assert answered - written < 0.5
    assert texts(answer) == ["are you there?"]
    message = answer["msgs"][0]
    assert str(message["message_id"]) == injected.message_id
    assert message["context_token"] == injected.context_token
    assert message["from_user_id"] == PEER and message["message_type"] == 1
    assert abs(message["create_time_ms"] / 1000 - time.time()) < 60


def test_a_long_poll_with_nothing_to_hand_out_ends_empty_after_the_timeout(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    started = time.monotonic()
    answer = poll(sim, "")
    held = time.monotonic() - started
    assert answer["ret"] == 0 and answer["msgs"] == []
    assert answer["longpolling_timeout_ms"] == 300
    assert 0.25 < held < 2.0
    snap = control.received().accounts[ACCOUNT]
    assert (snap.polls, snap.polls_in_flight, snap.max_polls_in_flight) == (1, 0, 1)


def test_a_held_long_poll_says_when_the_session_expires(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    control.configure(longpolling_timeout_ms=5000)
    answers: list[dict[str, Any]] = []
    poller = threading.Thread(target=lambda: answers.append(poll(sim, "")))
    poller.start()
    wait_until(lambda: control.received().accounts[ACCOUNT].polls_in_flight == 1, timeout=5)
    control.expire_session(ACCOUNT)
    poller.join(timeout=10)
    assert answers[0]["ret"] == -14


def test_the_platform_resends_a_message_under_a_new_id_on_demand(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    original = control.inbound(ACCOUNT, from_user_id=PEER, text="what's the score?")
    copy = control.resend_inbound(ACCOUNT, message_id=original.message_id)
    answer = poll(sim, "")
    assert texts(answer) == ["what's the score?", "what's the score?"]
    ids = [str(m["message_id"]) for m in answer["msgs"]]
    assert ids == [original.message_id, copy.message_id] and copy.message_id != ids[0]
    assert {m["from_user_id"] for m in answer["msgs"]} == {PEER}
    assert copy.context_token == original.context_token


def test_anything_can_be_queued_as_an_inbound_item(
    sim: PlatformSimulator, control: SimulatorControl
) -> None:
    control.inject_raw_inbound(ACCOUNT, item={"message_id": "not a number"})
    control.inject_raw_inbound(ACCOUNT, item=42)
    assert poll(sim, "")["msgs"] == [{"message_id": "not a number"}, 42]
