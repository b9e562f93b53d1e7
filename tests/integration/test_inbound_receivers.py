"""The project's own receivers, written as the README tells an agent to write one: the
webhook (a real HTTP server) answers 401, never 500 or a dropped connection, to any
signature it cannot read, and both it and the agent's task handle each message once, by
the idempotency key in the message itself (signed, for the webhook), never by the
unsigned ``Idempotency-Key`` header."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from delivery.devstack import agent
from delivery.inbound.signing import SIGNATURE_HEADER, sign
from tests.support.inbound import InboundReceiver


@pytest.fixture
def receiver() -> Iterator[InboundReceiver]:
    with InboundReceiver() as webhook:
        yield webhook


def body_of(key: str, text: str = "hi") -> bytes:
    return json.dumps({"idempotency_key": key, "text": text}).encode()


def post(
    http: requests.Session, receiver: InboundReceiver, body: bytes, *, header: str, key: str
) -> int:
    response = http.post(
        receiver.url,
        data=body,
        headers={SIGNATURE_HEADER: header, "Idempotency-Key": key},
        timeout=5,
    )
    return response.status_code


@pytest.mark.parametrize(
    "header",
    [
        "t={now},v1=" + "é" * 64,
        "t=\u00b2,v1=" + "0" * 64,
        "t=" + "9" * 5000 + ",v1=" + "0" * 64,
    ],
)
def test_a_signature_that_cannot_be_read_is_answered_401(
    receiver: InboundReceiver, http: requests.Session, header: str
) -> None:
    # Given a POST whose signature header is malformed (sent as UTF-8 bytes)
    body = body_of("bot-1:1")
    raw = header.format(now=int(time.time())).encode("utf-8")

    # When it reaches the receiver, then it is refused, and the receiver goes on
    response = http.post(receiver.url, data=body, headers={SIGNATURE_HEADER: raw}, timeout=5)
    assert response.status_code == 401
    assert receiver.refused_signatures == 1
    good = sign(secret=receiver.secret, body=body, timestamp=int(time.time()))
    assert post(http, receiver, body, header=good, key="bot-1:1") == 204
    assert receiver.handled() == Counter({"bot-1:1": 1})


def test_the_webhook_handles_each_message_once_by_the_key_in_its_signed_body(
    receiver: InboundReceiver, http: requests.Session
) -> None:
    # Given one message, signed
    body = body_of("bot-1:7")
    header = sign(secret=receiver.secret, body=body, timestamp=int(time.time()))

    # When it comes three times (the relay retried; someone replayed it with another
    # header key), and another message comes under the first one's header key
    other = body_of("bot-1:8", text="another")
    other_header = sign(secret=receiver.secret, body=other, timestamp=int(time.time()))
    answers = [
        post(http, receiver, body, header=header, key="bot-1:7"),
        post(http, receiver, body, header=header, key="bot-1:7"),
        post(http, receiver, body, header=header, key="bot-1:replayed"),
        post(http, receiver, other, header=other_header, key="bot-1:7"),
    ]

    # Then each is a receipt, and each message is handled once: by its body's key
    assert answers == [204, 204, 204, 204]
    assert receiver.counts() == Counter({"bot-1:7": 3, "bot-1:8": 1})
    assert receiver.handled() == Counter({"bot-1:7": 1, "bot-1:8": 1})


def test_the_agents_task_handles_each_message_once_by_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the agent's task, writing what it handles to its file
    received = tmp_path / "agent.jsonl"
    received.touch()
    monkeypatch.setenv("AGENT_RECEIVED_FILE", str(received))
    monkeypatch.setattr(agent, "_handled", None)  # as a worker starts
    message = {"idempotency_key": "bot-1:7", "text": "hi"}

    # When the relay publishes it twice (a broker restart), and once more after the
    # agent's worker restarted
    agent.on_inbound.apply(args=[message], task_id="bot-1:7")
    agent.on_inbound.apply(args=[message], task_id="bot-1:7")
    monkeypatch.setattr(agent, "_handled", None)
    agent.on_inbound.apply(args=[message], task_id="bot-1:7")
    agent.on_inbound.apply(args=[{**message, "idempotency_key": "bot-1:8"}], task_id="bot-1:8")

    # Then it is handled once, and the repeats are on record as repeats
    lines = [json.loads(line) for line in received.read_text().splitlines()]
    assert [(e["message"]["idempotency_key"], e["repeat"]) for e in lines] == [
        ("bot-1:7", False),
        ("bot-1:7", True),
        ("bot-1:7", True),
        ("bot-1:8", False),
    ]
