"""Reading what ``getupdates`` hands out, signing what the webhook gets, and what its answer
means: pure, no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from delivery.inbound.channels import webhook_answer
from delivery.inbound.items import (
    InboundItem,
    Malformed,
    NotInbound,
    fingerprint,
    read_item,
    read_updates,
)
from delivery.inbound.signing import sign, verify

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
PEER = "o9cq80abc@im.wechat"


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 3,
        "message_id": 18446744073709551615,
        "from_user_id": PEER,
        "to_user_id": "bot-1",
        "client_id": "c-1",
        "create_time_ms": int(NOW.timestamp() * 1000) - 1500,
        "message_type": 1,
        "message_state": 2,
        "context_token": "ctx-1",
        "item_list": [{"type": 1, "text_item": {"text": "what's on today?"}}],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_a_readers_message_is_read_as_known_clients_read_it() -> None:
    item = read_item(message(), received_at=NOW)
    assert item == InboundItem(
        platform_message_id="18446744073709551615",  # every digit of a uint64
        peer_id=PEER,
        text="what's on today?",
        item_types=(1,),
        written_at=NOW - dt.timedelta(seconds=1.5),
        context_token="ctx-1",
    )


def test_voice_transcriptions_and_media_are_kept() -> None:
    items = [
        {"type": 2, "image_item": {"url": "x"}},
        {"type": 3, "voice_item": {"text": "call me back"}},
        {"type": 1, "text_item": {"text": "thanks"}},
    ]
    item = read_item(message(item_list=items), received_at=NOW)
    assert isinstance(item, InboundItem)
    assert (item.text, item.item_types) == ("call me back\nthanks", (2, 3, 1))


def test_without_a_message_id_the_client_id_names_it() -> None:
    item = read_item(message(message_id=None), received_at=NOW)
    assert isinstance(item, InboundItem) and item.platform_message_id == "c:c-1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (42, "not a JSON object but a int"),
        (None, "not a JSON object but null"),
        (message(message_id="seven"), "message_id 'seven' is not a uint64"),
        (message(message_id=2**64), "is not a uint64"),
        (message(message_id=None, client_id=None), "no message_id and no client_id"),
        (message(from_user_id=None), "from_user_id: recipient id must be a str"),
        (message(from_user_id="has space@im.wechat"), "from_user_id: recipient id"),
        (message(item_list="hi"), "item_list is a str, not a list"),
        (message(item_list=[]), "item_list is empty"),
        (message(item_list=[{"text_item": {"text": "x"}}]), "item_list[0] is not an object"),
    ],
)
def test_a_malformed_item_says_why(raw: Any, reason: str) -> None:
    item = read_item(raw, received_at=NOW)
    assert isinstance(item, Malformed)
    assert reason in item.reason
    assert item.raw_excerpt  # kept for the operator


def test_the_bots_own_message_is_not_inbound() -> None:
    assert isinstance(read_item(message(message_type=2), received_at=NOW), NotInbound)


def test_a_malformed_context_token_is_dropped_and_the_message_kept() -> None:
    item = read_item(message(context_token="bad token\x00"), received_at=NOW)
    assert isinstance(item, InboundItem)
    assert (item.context_token, item.dropped_token) == (None, True)


@pytest.mark.parametrize(
    "create_time_ms",
    [None, "yesterday", 5, int((NOW + dt.timedelta(hours=1)).timestamp() * 1000), 10**20],
)
def test_a_missing_or_impossible_time_is_the_time_of_receipt(create_time_ms: Any) -> None:
    item = read_item(message(create_time_ms=create_time_ms), received_at=NOW)
    assert isinstance(item, InboundItem) and item.written_at == NOW


def test_the_fingerprint_names_sender_and_text_whitespace_aside() -> None:
    assert fingerprint(peer_id=PEER, text=" score?\n") == fingerprint(peer_id=PEER, text="score?")
    assert fingerprint(peer_id=PEER, text="score?") != fingerprint(peer_id="x@y", text="score?")
    assert fingerprint(peer_id=PEER, text=" \n") is None  # an image alone has none


def test_an_answer_gives_its_items_cursor_and_long_poll_time() -> None:
    updates = read_updates(
        {"ret": 0, "msgs": [1], "get_updates_buf": "c", "longpolling_timeout_ms": 9}
    )
    assert (updates.items, updates.cursor, updates.longpolling_timeout_ms) == ([1], "c", 9)
    empty = read_updates({"ret": 0, "get_updates_buf": ""})
    assert (empty.items, empty.cursor, empty.longpolling_timeout_ms) == ([], None, None)
    with pytest.raises(ValueError, match="msgs is a dict"):
        read_updates({"msgs": {}})


def test_a_signature_verifies_only_with_the_same_secret_body_and_a_recent_time() -> None:
    secret, body = "webhook-secret-0123", b'{"text":"hi"}'
    header = sign(secret=secret, body=body, timestamp=1_764_489_600)
    assert header.startswith("t=1764489600,v1=")
    assert verify(secret=secret, body=body, header=header, now=1_764_489_610)
    assert not verify(secret="another-secret-0123", body=body, header=header, now=1_764_489_610)
    assert not verify(secret=secret, body=b'{"text":"hi!"}', header=header, now=1_764_489_610)
    assert not verify(secret=secret, body=body, header=header, now=1_764_489_600 + 3600)
    assert not verify(secret=secret, body=body, header=None, now=1_764_489_600)


URL = "http://agent.example:8080/in?key=s3cr3t"


@pytest.mark.parametrize(
    ("status", "location", "delivered", "detail"),
    [
        (204, None, True, "HTTP 204"),
        (
            301,
            "https://agent.example/in?key=s3cr3t",
            False,
            "HTTP 301 redirect to agent.example refused: configure the final URL",
        ),
        (
            307,
            "https://user:pw@other.example:8443/x?key=s3cr3t",
            False,
            "HTTP 307 redirect to other.example:8443 refused: configure the final URL",
        ),
        (
            302,
            "/moved?key=s3cr3t",
            False,
            "HTTP 302 redirect to agent.example:8080 refused: configure the final URL",
        ),
        (
            308,
            "http://[::1",
            False,
            "HTTP 308 redirect to an unreadable location refused: configure the final URL",
        ),
        (304, None, False, "HTTP 304 from the webhook"),
        (503, None, False, "HTTP 503 from the webhook"),
    ],
)
def test_only_a_2xx_is_a_receipt_and_a_redirect_says_where_it_pointed(
    status: int, location: str | None, delivered: bool, detail: str
) -> None:
    handed = webhook_answer(status=status, location=location, url=URL)
    assert (handed.delivered, handed.detail, handed.http_status) == (delivered, detail, status)
    assert "s3cr3t" not in handed.detail and "pw" not in handed.detail


@given(status=st.integers(min_value=300, max_value=399), location=st.text())
def test_any_redirect_is_a_failure_that_never_raises(status: int, location: str) -> None:
    assume("s3cr3t" not in location)
    handed = webhook_answer(status=status, location=location, url=URL)
    assert not handed.delivered and "s3cr3t" not in handed.detail
