"""Context tokens: the peer's latest one goes with each send; a stale one is dropped once."""

from __future__ import annotations

from delivery import enqueue, record_inbound
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Reader
from delivery.ledger.readers import fingerprint
from delivery.simulator import Fault
from tests.support.stack import Stack

PEER = "o9cq80peer@im.wechat"


def test_the_latest_context_token_goes_with_the_send(stack: Stack) -> None:
    account = stack.add_account()
    stack.start_worker()
    record_inbound(account, PEER, context_token="ctx-old")
    message_id = enqueue(account, PEER, "a reply", context_token="ctx-new")

    assert stack.wait_final([message_id], timeout=30) == {message_id: "delivered"}
    [arrived] = stack.snapshot().messages[PEER]
    assert arrived.context_token == "ctx-new"
    [attempt] = stack.attempts()
    assert attempt.used_context_token
    assert attempt.context_token_fingerprint == fingerprint("ctx-new")


def test_a_stale_context_token_is_dropped_and_the_send_retried_without_it(stack: Stack) -> None:
    # Given a platform that calls the context stale once ("-2 unknown error")
    account = stack.add_account()
    stack.simulator.model.queue_fault(Fault.unknown_error(), account_id=account)
    stack.start_worker()

    # When a reply with a context token is sent
    message_id = enqueue(account, PEER, "a reply", context_token="ctx-stale")

    # Then it is retried once without the token and arrives; the ledger says which was used
    assert stack.wait_final([message_id], timeout=30) == {message_id: "delivered"}
    attempts = stack.attempts()
    assert [(a.outcome, a.used_context_token) for a in attempts] == [
        ("stale_context", True),
        ("accepted", False),
    ]
    [arrived] = stack.snapshot().messages[PEER]
    assert arrived.context_token is None
    with session_scope(engine_for(stack.database_url)) as session:
        row = session.get(Reader, (account, PEER))
        assert row is not None and row.context_token_stale_at is not None
