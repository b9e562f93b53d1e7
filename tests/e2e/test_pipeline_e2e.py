"""The send pipeline end to end: real worker processes, real Redis, the simulator.

The clock is compressed about 60 times (see ``tests/support/stack.py``): a 30 s
cooldown takes 0.5 s, and the seed's 12 s of retries would take 0.2 s.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

import delivery
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account, Chunk
from delivery.ledger.queries import conversation_heads
from delivery.simulator import Fault
from tests.support.bursts import assert_delivered_exactly_once_in_order, burst, max_in_window
from tests.support.stack import Stack, expected_texts
from tests.support.waiting import wait_until

PEER = "o9cq80peer@im.wechat"


def test_a_long_message_arrives_whole_and_in_order(any_stack: Stack) -> None:
    # Given an account and a worker that announces itself as client 2.5.1
    account = any_stack.add_account()
    any_stack.overrides["DELIVERY_CLIENT_VERSION"] = "2.5.1"
    any_stack.start_worker()
    text = "\n\n".join(f"Section {i}. " + "lorem ipsum " * 200 for i in range(5))

    # When a long message is enqueued
    message_id = delivery.enqueue(account, PEER, text)

    # Then every chunk arrives once, in order, and the ledger says delivered
    assert any_stack.wait_final([message_id], timeout=60) == {message_id: "delivered"}
    want = expected_texts([message_id], any_stack.database_url)[PEER]
    got = any_stack.snapshot().messages[PEER]
    assert [(m.client_id, m.text) for m in got] == want
    assert len(want) > 1
    assert all(a.outcome == "accepted" for a in any_stack.attempts())
    # ... sent as the configured client version, in the header and in base_info
    sends = [s.client for s in any_stack.snapshot().seen if s.endpoint.endswith("sendmessage")]
    assert {(c.client_version, c.channel_version) for c in sends} == {
        (str((2 << 16) | (5 << 8) | 1), "2.5.1")
    }


def test_a_burst_survives_a_lockout_longer_than_the_seeds_retry_window(stack: Stack) -> None:
    # Given a platform allowing 25 sends a second that has locked the account out for 3 s
    # (the seed's 5 x 3 s of retries, compressed, last 0.2 s) and grows it 0.5 s per try
    account = stack.add_account()
    stack.simulator.model.configure(
        rate_limit_sends=25,
        rate_limit_window_seconds=1.0,
        lockout_seconds=3.0,
        lockout_extend_seconds=0.5,
    )
    stack.start_worker()
    # (locked out only now: a worker can take seconds to start on a loaded machine)
    stack.simulator.model.lock_out(account, seconds=3.0)

    # When 40 messages of 1 to 6 chunks for 8 chats are enqueued at once
    ids = delivery.enqueue_many(burst(account, messages=40, recipients=8, seed=40))

    # Then every message is delivered, once, in order within each chat
    states = stack.wait_final(ids, timeout=180)
    assert set(states.values()) == {"delivered"}
    snapshot = assert_delivered_exactly_once_in_order(stack, ids)
    assert snapshot.counters.duplicates == 0
    # And the ledger shows the rate-limited attempts, none of which spent the budget
    outcomes = [a.outcome for a in stack.attempts()]
    assert outcomes.count("rate_limited") >= 1
    assert outcomes.count("rate_limited") == snapshot.counters.rejected["rate_limited"]
    with session_scope(engine_for(stack.database_url)) as session:
        assert set(session.scalars(select(Chunk.failure_count))) == {0}


def test_two_workers_keep_one_send_in_flight_at_the_account_rate(stack: Stack) -> None:
    # Given a platform that holds each send 20 ms, so overlapping sends would show,
    # and two worker processes on the send queue
    account = stack.add_account()
    stack.simulator.model.configure(send_latency_seconds=0.02)
    stack.start_worker()
    stack.start_worker()

    # When a burst for 6 chats is enqueued
    ids = delivery.enqueue_many(burst(account, messages=24, recipients=6, seed=2, max_chunks=4))

    # Then all arrive in order, never two sends of the account at once, never over the rate
    assert set(stack.wait_final(ids, timeout=180).values()) == {"delivered"}
    snapshot = assert_delivered_exactly_once_in_order(stack, ids)
    report = snapshot.accounts[account]
    assert report.max_in_flight == 1
    # 1200 sends a minute, burst 1: one per 50 ms, at most 21 in any second
    # (one more allowed for network jitter between the worker and the simulator).
    assert max_in_window(report.accepted_at, 1.0) <= 22
    hosts = {a.worker_host for a in stack.attempts()}
    assert hosts  # both workers share one host name here; the lock is per account
    logs = [w.log_text() for w in stack.workers]
    assert all("succeeded" in log for log in logs), "both workers took part"


def test_session_expiry_mid_burst_then_a_token_rotation(stack: Stack) -> None:
    # Given a platform that expires the token after 8 accepted sends
    account = stack.add_account()
    stack.simulator.model.configure(expire_after_sends=8)
    worker = stack.start_worker()
    engine = engine_for(stack.database_url)

    # When a burst runs into the expiry
    ids = delivery.enqueue_many(burst(account, messages=12, recipients=4, seed=3, max_chunks=3))

    def account_state() -> str:
        with session_scope(engine) as session:
            row = session.get(Account, account)
            return row.session_state if row else "missing"

    wait_until(lambda: account_state() == "expired", timeout=60, message="expired mark")
    calls_when_expired = stack.snapshot().counters.requests.get("sendmessage", 0)

    # Then every chat's waiting head is parked: no task polls, nothing calls the platform
    def parked_heads() -> set[str | None]:
        with session_scope(engine) as session:
            heads = conversation_heads(session, [(account, f"user{n}@im.wechat") for n in range(4)])
            return set(
                session.scalars(
                    select(Chunk.parked_on).where(Chunk.id.in_([h.chunk_id for h in heads]))
                )
            )

    wait_until(lambda: parked_heads() == {"session"}, timeout=30, message="heads parked")
    assert stack.snapshot().counters.requests.get("sendmessage", 0) == calls_when_expired

    # When an operator stores a new token (the platform issued it), no worker restart
    stack.simulator.model.configure(expire_after_sends=None)
    stack.simulator.model.set_token(account, token="tok-test-0000-secret-B")
    delivery.add_account(account, token="tok-test-0000-secret-B", base_url=stack.simulator.base_url)

    # Then everything is delivered, in order, with no failure budget spent
    assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, ids)
    expired_attempts = [a for a in stack.attempts() if a.outcome == "session_expired"]
    assert 1 <= len(expired_attempts) <= 4  # at most one per chat already past its check
    with session_scope(engine) as session:
        assert set(session.scalars(select(Chunk.failure_count))) == {0}
    assert account_state() == "ok"
    assert worker.running()
    assert "session expired" in worker.log_text()


def test_flushall_mid_burst_loses_nothing(own_redis_stack: Stack, own_redis: object) -> None:
    # Given a worker with beat (the reconciler every second, grace 2 s)
    stack = own_redis_stack
    account = stack.add_account()
    stack.simulator.model.configure(send_latency_seconds=0.02)
    stack.start_worker(beat=True)
    ids = delivery.enqueue_many(burst(account, messages=30, recipients=20, seed=4, max_chunks=3))
    redis_client = own_redis.client()  # type: ignore[attr-defined]

    def mid_burst() -> bool:
        waiting = redis_client.hlen(f"delivery:acct:{{{account}}}:waiters")
        return stack.snapshot().counters.accepted >= 5 and waiting > 0

    wait_until(mid_burst, timeout=60, message="sends under way and parts still in the line")

    # When Redis loses everything: the account's line, the slot's task, locks
    redis_client.flushall()

    # Then the reconciler re-publishes what was lost and everything is delivered once
    assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, ids)
    assert "reconciler" in stack.worker_logs()


def test_a_permanent_refusal_kills_the_message_and_marks_the_rest_unsent(stack: Stack) -> None:
    # Given a platform that refuses the second chunk for good
    account = stack.add_account()
    stack.start_worker()
    stack.simulator.model.configure()
    text = "\n\n".join(f"part {i} " + "x" * 1500 for i in range(4))
    message_id = delivery.enqueue(account, PEER, text)
    after = delivery.enqueue(account, PEER, "the next message to this chat still goes")
    wait_until(
        lambda: stack.snapshot().counters.accepted >= 1, timeout=30, message="the first chunk"
    )
    stack.simulator.model.queue_fault(
        Fault.answer(ret=-1, errcode=-1, errmsg="invalid param"), account_id=account
    )

    # Then the message is dead with its reason, chunks sent/failed/unsent, and the next goes
    states = stack.wait_final([message_id, after], timeout=60)
    assert states == {message_id: "dead", after: "delivered"}
    status = delivery.get_status(message_id)
    assert status.dead_reason == "refused by the platform: refused (ret -1 'invalid param')"
    chunk_states = [c.status for c in status.chunks]
    assert chunk_states[0] == "sent"
    assert "failed" in chunk_states
    assert chunk_states[-1] == "unsent"
    assert chunk_states.count("failed") == 1


@pytest.mark.parametrize(
    "fault",
    [Fault.http_error(502), Fault.garbage(), Fault.html_200(), Fault.reset_after_delivery()],
    ids=["502", "garbage", "html", "reset-after-delivery"],
)
def test_transient_answers_are_retried_with_the_same_client_id(stack: Stack, fault: Fault) -> None:
    account = stack.add_account()
    stack.simulator.model.queue_fault(fault, count=2, account_id=account)
    stack.start_worker()

    message_id = delivery.enqueue(account, PEER, "hello through trouble")

    assert stack.wait_final([message_id], timeout=60) == {message_id: "delivered"}
    snapshot = stack.snapshot()
    assert [m.text for m in snapshot.messages[PEER]] == ["hello through trouble"]
    attempts = stack.attempts()
    assert [a.outcome for a in attempts][-1] == "accepted"
    assert len(attempts) == 3
    assert all(a.outcome == "transient" for a in attempts[:2])
    chunk = stack.chunks_of(message_id)[0]
    assert chunk.failure_count == 2
