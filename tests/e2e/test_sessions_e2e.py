"""Sessions that heal themselves: real beat, worker, simulator, webhook.

Compressed clock: the session check runs every second, waiting sends look
again every 0.3 s.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time

from sqlalchemy import select

import delivery
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account, Attempt, Chunk
from delivery.sessions.store import FileAccountStore, StoredCredentials
from delivery.simulator import Fault
from delivery.worker.queues import DEFAULT_QUEUE
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
        checks_before = stack.worker_logs().count("session expired for")
        wait_until(
            lambda: stack.worker_logs().count("session expired for") >= checks_before + 2,
            timeout=30,
            message="an ERROR line per check",
        )
        # (only trial sends went meanwhile: at most one per check that found it expired)
        trials = stack.snapshot().counters.requests.get("sendmessage", 0) - sends_while_expired
        assert trials <= stack.worker_logs().count("session expired for") - checks_before + 1

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


def test_a_getconfig_saying_unknown_error_does_not_park_a_healthy_account(stack: Stack) -> None:
    # Given a platform whose getconfig answers -2 "unknown error" while sends work
    account = stack.add_account()
    stack.simulator.model.queue_fault(
        Fault.answer(ret=-2, errcode=-2, errmsg="unknown error", endpoint="getconfig"),
        count=10_000,
        account_id=account,
    )
    stack.start_worker(beat=True)
    wait_until(
        lambda: stack.snapshot().counters.requests.get("getconfig", 0) >= 2,
        timeout=30,
        message="two session checks",
    )

    # When messages are sent, then they are delivered: the account was never marked expired
    ids = delivery.enqueue_many(burst(account, messages=6, recipients=3, seed=9, max_chunks=2))
    assert set(stack.wait_final(ids, timeout=60).values()) == {"delivered"}
    assert account_state(stack, account) != "expired"


def test_sends_that_work_clear_an_expired_mark_that_getconfig_keeps_giving(stack: Stack) -> None:
    # Given a platform whose getconfig says -14 every time while sendmessage works
    account = stack.add_account()
    stack.simulator.model.queue_fault(
        Fault.answer(ret=-14, errcode=-14, errmsg="session timeout", endpoint="getconfig"),
        count=10_000,
        account_id=account,
    )
    stack.start_worker(beat=True)
    wait_until(lambda: account_state(stack, account) == "expired", timeout=30, message="marked")

    # When messages are enqueued (parked at once: the account is marked expired)
    ids = delivery.enqueue_many(burst(account, messages=6, recipients=3, seed=11, max_chunks=2))

    # Then a trial send finds the session good, and everything is delivered once, in order
    assert set(stack.wait_final(ids, timeout=90).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, ids)
    assert "tries a send despite the expired mark" in stack.worker_logs()


def test_accounts_whose_getconfig_hangs_do_not_starve_the_reconciler(stack: Stack) -> None:
    # Given four accounts whose getconfig hangs past the HTTP timeout (2 s here), and a
    # default-queue worker as `delivery worker` runs it (two processes), with beat
    # running the reconciler and the session check every second
    accounts = [stack.add_account(f"bot-{n}", token=f"tok-test-0000-secret-{n}") for n in range(4)]
    for account in accounts:
        stack.simulator.model.queue_fault(
            Fault.hang(30, endpoint="getconfig"), count=10_000, account_id=account
        )
    worker = stack.start_worker(queues=DEFAULT_QUEUE, beat=True, concurrency=2)

    # When 15 seconds pass
    start = time.monotonic()
    wait_until(lambda: time.monotonic() - start > 15, timeout=20, interval=0.5)

    # Then the reconciler ran about every second ...
    log = worker.log_text()
    runs = reconcile_runs(log)
    assert len(runs) >= 10, f"{len(runs)} reconciler runs in 15 s"
    assert max(b - a for a, b in itertools.pairwise(runs[2:])) < 3.5
    # ... and a session check took one timeout, not one per hanging account (four)
    took = [
        float(t) for t in re.findall(r"delivery\.check_sessions\[\S+\] succeeded in ([\d.]+)s", log)
    ]
    assert took and max(took) < 4 * 2.0, took


def reconcile_runs(log: str) -> list[float]:
    """When each reconciler run ended (seconds, from the worker's log lines)."""
    stamp = re.compile(r"^\[(\S+ \S+): INFO/\S+\] Task delivery\.reconcile\[\S+\] succeeded")
    times = []
    for line in log.splitlines():
        if match := stamp.match(line):
            at = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            times.append(at.timestamp())
    return times
