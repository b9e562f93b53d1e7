"""Sessions that heal themselves: real beat, worker, simulator, webhook.

Compressed clock: the session check runs every second, waiting sends look
again every 0.3 s.
"""

from __future__ import annotations

import time

from sqlalchemy import select

import delivery
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account, Attempt, Chunk
from delivery.sessions.store import FileAccountStore, StoredCredentials
from tests.support.bursts import assert_delivered_exactly_once_in_order, burst
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver

NEW_TOKEN = "tok-test-0000-secret-NEW"


def account_state(stack: Stack, account: str) -> str:
    with session_scope(engine_for(stack.database_url)) as session:
        row = session.get(Account, account)
        return row.session_state if row else "missing"


def test_expiry_mid_burst_heals_from_the_account_store(stack: Stack, tmp_path: object) -> None:
    store = FileAccountStore(stack.log_dir / "account-store")
    with WebhookReceiver() as hook:
        # Given a worker, a beat, an account store and an alert webhook
        stack.overrides.update(
            DELIVERY_ACCOUNT_STORE_DIR=str(store.directory),
            DELIVERY_ALERT_WEBHOOK_URL=hook.url,
        )
        account = stack.add_account()
        stack.simulator.model.configure(expire_after_sends=8)
        worker = stack.start_worker()
        stack.start_beat("beat")

        # When the platform expires the session mid-burst
        ids = delivery.enqueue_many(burst(account, messages=12, recipients=4, seed=5, max_chunks=3))
        wait_until(lambda: account_state(stack, account) == "expired", timeout=60, message="expiry")
        wait_until(lambda: hook.of("session_expired"), timeout=30, message="the expiry alert")
        sends_while_expired = stack.snapshot().counters.requests.get("sendmessage", 0)
        wait_until(
            lambda: stack.worker_logs().count("session expired for") >= 2,
            timeout=30,
            message="an ERROR line per check",
        )
        assert stack.snapshot().counters.requests.get("sendmessage", 0) == sends_while_expired

        # And a good token appears in the account store (an agent logged in again)
        stack.simulator.model.configure(expire_after_sends=None)
        stack.simulator.model.set_token(account, token=NEW_TOKEN)
        accepted_before = stack.snapshot().counters.accepted
        stored_at = time.monotonic()
        store.save(account, StoredCredentials(token=NEW_TOKEN, base_url=stack.simulator.base_url))

        # Then sends resume by themselves, with no restart
        wait_until(
            lambda: stack.snapshot().counters.accepted > accepted_before,
            timeout=30,
            message="the first accepted chunk after the new token",
        )
        print(f"good token stored -> first chunk accepted: {time.monotonic() - stored_at:.2f}s")
        assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}

        # And nothing was lost or duplicated, no budget spent, one alert per expiry
        assert_delivered_exactly_once_in_order(stack, ids)
        with session_scope(engine_for(stack.database_url)) as session:
            assert set(session.scalars(select(Chunk.failure_count))) == {0}
            expired = session.scalars(
                select(Attempt).where(Attempt.outcome == "session_expired")
            ).all()
            assert 1 <= len(expired) <= 4
        assert len(hook.of("session_expired")) == 1
        wait_until(lambda: hook.of("session_recovered"), timeout=30, message="recovery event")
        assert len(hook.of("session_recovered")) == 1
        assert all(NEW_TOKEN not in str(e) and "secret" not in str(e) for e in hook.events)
        assert hook.of("session_expired")[0]["waiting_messages"] >= 1
        assert stack.snapshot().counters.requests.get("getupdates", 0) == 0
        assert account_state(stack, account) == "ok"
        assert worker.running()
        assert "imported token" in stack.worker_logs()


def test_the_check_marks_an_expired_account_before_any_send_fails(stack: Stack) -> None:
    # Given an account whose session the platform has already expired
    account = stack.add_account()
    stack.simulator.model.expire_session(account)
    stack.start_worker()
    stack.start_beat("beat")

    # When beat's check runs, the account is marked expired by getconfig alone
    wait_until(lambda: account_state(stack, account) == "expired", timeout=30, message="expiry")
    assert stack.snapshot().counters.requests.get("sendmessage", 0) == 0

    # Then a message waits without calling, and an operator's rotation lets it go
    message_id = delivery.enqueue(account, "peer@im.wechat", "waits for a good token")
    wait_until(
        lambda: delivery.get_status(message_id).chunks[0].next_attempt_at is not None,
        timeout=10,
        message="the chunk parked",
    )
    assert stack.snapshot().counters.requests.get("sendmessage", 0) == 0
    stack.simulator.model.set_token(account, token=NEW_TOKEN)
    delivery.add_account(account, token=NEW_TOKEN, base_url=stack.simulator.base_url)
    assert stack.wait_final([message_id], timeout=30) == {message_id: "delivered"}
    attempts = stack.attempts()
    assert [a.outcome for a in attempts] == ["accepted"]
