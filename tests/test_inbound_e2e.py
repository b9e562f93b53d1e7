"""The inbound relay end to end: ``delivery relay`` processes, real send workers and
beat, the agent's own Celery worker, a real webhook receiver, the simulator; SQLite
and PostgreSQL; and the faults it must survive.

What every scenario checks at the receivers: every inbound message reached the
agent's task and its webhook, and nothing came under a key that is not the key of
a message the platform sent (a message handed over twice comes with the same key).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select

import delivery
from delivery.devstack import LocalRedis
from delivery.ledger import readers
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Attempt, Chunk, Message
from delivery.ledger.types import utcnow
from delivery.simulator import Fault, Injected
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE
from tests.support import services
from tests.support.bursts import burst
from tests.support.inbound import AgentWorker, InboundReceiver, agent_settings, paced
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

READERS = [f"reader{n}@im.wechat" for n in range(50)]
PER_READER = 4
LONG_POLL_MS = 500
WOKEN_WITHIN_SECONDS = 5.0  # held chats are looked at again after 30 s (the stack's setting)


def relay_ready(stack: Stack, receiver: InboundReceiver) -> tuple[str, AgentWorker]:
    """An account this service owns the inbound side of; webhook and agent task set;
    the agent's worker running."""
    stack.overrides.update({**receiver.settings(), **agent_settings()})
    stack.simulator.model.configure(longpolling_timeout_ms=LONG_POLL_MS)
    account = stack.add_account(owns_inbound=True)
    agent = AgentWorker(env=stack.env(), log_dir=stack.log_dir)
    stack.workers.append(agent.process)
    return account, agent


def key(account: str, sent: Injected) -> str:
    return f"{account}:{sent.message_id}"


def assert_each_once(counts: Counter[str], keys: set[str]) -> None:
    assert set(counts) == keys, f"missing {keys - set(counts)}, unknown {set(counts) - keys}"
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]


def assert_none_lost_no_new_key(
    receiver: InboundReceiver, agent: AgentWorker, keys: set[str]
) -> None:
    """Every message reached both; whatever came twice came with its own key."""
    wait_until(
        lambda: set(receiver.counts()) == keys and set(agent.counts()) == keys,
        timeout=90,
        message=lambda: (
            f"every key at both receivers: webhook misses {len(keys - set(receiver.counts()))}, "
            f"task misses {len(keys - set(agent.counts()))}"
        ),
    )
    assert set(receiver.counts()) == keys and set(agent.counts()) == keys
    assert {e["task_id"] for e in agent.received()} == keys  # the task id is the key


def test_inbound_during_an_outbound_burst_reaches_the_agent_once_and_wakes_held_chats(
    any_stack: Stack, receiver: InboundReceiver
) -> None:
    # Given 50 readers the pipeline knows last wrote two hours ago (their one-hour
    # window is closed), each with a message held for them, and an account whose
    # inbound side the agent keeps (with a message of its own waiting)
    stack = any_stack
    stack.overrides.update(
        {
            "DELIVERY_READER_WINDOW_SECONDS": "3600",
            "DELIVERY_SEND_RATE_PER_MINUTE": "6000",
        }
    )
    account, agent = relay_ready(stack, receiver)
    bystander = stack.add_account("bot-2", token="tok-test-0000-secret-B")
    stack.simulator.model.inbound(bystander, from_user_id=READERS[0], text="for the agent")
    for peer in READERS:
        delivery.record_inbound(account, peer, at=utcnow() - dt.timedelta(hours=2))
    # As `delivery worker` runs them: the send queue in a worker of its own
    stack.start_worker(queues=SEND_QUEUE)
    stack.start_worker(queues=DEFAULT_QUEUE, beat=True)
    stack.start_relay()
    held = delivery.enqueue_many(
        delivery.OutboundMessage(account, peer, f"the answer for {peer}") for peer in READERS
    )
    wait_until(
        lambda: all(delivery.get_status(m).status == "awaiting_reader" for m in held),
        timeout=60,
        message="the 50 messages held for their readers",
    )

    # When an outbound burst to 2 other readers goes out, and meanwhile the 50 write
    # 4 messages each (200, 10 a second)
    outbound = delivery.enqueue_many(
        burst(account, messages=20, recipients=2, seed=15, max_chunks=2)
    )
    wait_until(lambda: stack.snapshot().counters.accepted >= 5, timeout=60, message="the burst")
    arrivals: list[tuple[str, Injected, float]] = []
    for n in paced(len(READERS) * PER_READER, per_second=10):
        peer = READERS[n // PER_READER]
        sent = stack.simulator.model.inbound(account, from_user_id=peer, text=f"{peer} says {n}")
        arrivals.append((peer, sent, stack.snapshot().now))
    keys = {key(account, sent) for _, sent, _ in arrivals}

    # Then every one reaches the agent's task and its webhook, none twice
    assert_none_lost_no_new_key(receiver, agent, keys)
    assert_each_once(receiver.counts(), keys)
    assert_each_once(agent.counts(), keys)
    # And every held message went as soon as its reader's first message arrived: well
    # inside the 30 s after which held chats are looked at again anyway (the 1 s target
    # is measured by `python -m bench inbound`, on a machine running nothing else)
    assert set(stack.wait_final(held + outbound, timeout=120).values()) == {"delivered"}
    snapshot = stack.snapshot()
    first_written: dict[str, float] = {}
    for peer, _, at in arrivals:
        first_written.setdefault(peer, at)
    lags = {peer: snapshot.messages[peer][0].arrived_at - first_written[peer] for peer in READERS}
    assert max(lags.values()) < WOKEN_WITHIN_SECONDS, _breakdown(stack, account)
    # And each reader's state is exact: open, their last message's time and token
    last = {peer: sent for peer, sent, _ in arrivals}
    written = {
        e.peer_id: e.written_at
        for e in reversed(delivery.list_inbox(account, limit=1000))
        if e.status == "received"
    }
    states = {r.peer_id: r for r in delivery.list_readers(account) if r.peer_id in READERS}
    assert {r.state for r in states.values()} == {"open"}
    assert {p: r.last_inbound_at for p, r in states.items()} == {p: written[p] for p in READERS}
    with session_scope(engine_for(stack.database_url)) as db:
        tokens = {
            p: readers.usable_context_token(db, account_id=account, peer_id=p) for p in READERS
        }
    assert tokens == {peer: sent.context_token for peer, sent in last.items()}
    # And the account that does not own its inbound side was never polled
    assert snapshot.accounts[bystander].polls == 0
    assert snapshot.accounts[account].max_polls_in_flight == 1


def test_two_relays_one_polls_and_a_kill_9_mid_poll_loses_nothing(
    stack: Stack, receiver: InboundReceiver
) -> None:
    # Given two relays for one account
    account, agent = relay_ready(stack, receiver)
    first = stack.start_relay("relay-a")
    second = stack.start_relay("relay-b")
    before = [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="hello")
        for n in range(5)
    ]
    wait_until(lambda: len(receiver.counts()) == 5, timeout=60, message="the first messages")
    # Then only one of them polls
    logs = {"relay-a": first.log_text(), "relay-b": second.log_text()}
    leader, standby = (
        (first, second) if "polling its inbound side" in logs["relay-a"] else (second, first)
    )
    # (on a loaded machine the second relay may still be starting: its first scan says it)
    wait_until(
        lambda: "polled by another relay; standing by" in standby.log_text(),
        timeout=30,
        message="the other relay standing by",
    )
    assert "polling its inbound side" not in standby.log_text()

    # When the platform hands messages out in a poll it then holds, and the leader
    # is killed -9 while it waits for that answer
    stack.simulator.model.queue_fault(
        Fault.hang(30, deliver=True, endpoint="getupdates"), account_id=account
    )
    during = [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="are you there")
        for n in range(5)
    ]
    wait_until(
        lambda: stack.snapshot().counters.faults_fired.get("hang", 0) == 1,
        timeout=30,
        message="a poll held",
    )
    leader.kill9()
    after = [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="still there?")
        for n in range(5)
    ]

    # Then the other one takes over, and nothing is lost or handed over with a new key
    keys = {key(account, sent) for sent in before + during + after}
    assert_none_lost_no_new_key(receiver, agent, keys)
    assert "polling its inbound side" in standby.log_text()
    assert stack.snapshot().accounts[account].max_polls_in_flight == 1


def test_redis_restarted_loses_no_inbound_message(
    own_redis_stack: Stack, own_redis: LocalRedis, receiver: InboundReceiver
) -> None:
    stack = own_redis_stack
    account, agent = relay_ready(stack, receiver)
    relay = stack.start_relay()
    sent = [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="one")
        for n in range(10)
    ]
    wait_until(lambda: len(agent.counts()) >= 5, timeout=60, message="some handed over")

    # When Redis stops (keeping nothing) while messages arrive, and comes back
    own_redis.stop()
    sent += [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="two")
        for n in range(10)
    ]
    wait_until(
        lambda: (
            "Redis is unreachable" in relay.log_text() or "lease not renewed" in relay.log_text()
        ),
        timeout=60,
        message="the relay noticing",
    )
    own_redis.start()
    sent += [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="three")
        for n in range(10)
    ]

    # Then every message reaches both receivers, under its own key
    assert_none_lost_no_new_key(receiver, agent, {key(account, s) for s in sent})
    assert relay.running()


def test_the_database_down_for_a_while_loses_no_inbound_message(
    pg_stack: Stack, receiver: InboundReceiver
) -> None:
    stack = pg_stack
    database = stack.database_url.rsplit("/", 1)[1]
    account, agent = relay_ready(stack, receiver)
    relay = stack.start_relay()
    sent = [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="one")
        for n in range(10)
    ]
    wait_until(lambda: len(receiver.counts()) == 10, timeout=60, message="the first ten")

    # When the relay is cut off from PostgreSQL while readers write
    services.allow_connections(database, False)
    try:
        sent += [
            stack.simulator.model.inbound(account, from_user_id=READERS[n], text="two")
            for n in range(10)
        ]
        wait_until(
            lambda: (
                relay.log_text().count("does not allow connections") >= 2
                or relay.log_text().count("failed: connection") >= 2
            ),
            timeout=60,
            message="the relay retrying, saying why",
        )
    finally:
        services.allow_connections(database, True)
    engine_for(stack.database_url).dispose()

    # Then it recovers by itself: everything handed over, under its own key
    sent += [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="three")
        for n in range(10)
    ]
    assert_none_lost_no_new_key(receiver, agent, {key(account, s) for s in sent})
    assert relay.running() and "Traceback" not in relay.log_text()


def test_the_webhook_down_for_a_while_gets_everything_once_it_is_back(
    stack: Stack, receiver: InboundReceiver
) -> None:
    account, agent = relay_ready(stack, receiver)
    stack.start_relay()
    receiver.down()
    sent = [
        stack.simulator.model.inbound(account, from_user_id=READERS[n], text="hi")
        for n in range(20)
    ]
    wait_until(lambda: len(agent.counts()) == 20, timeout=60, message="the task channel unaffected")
    wait_until(
        lambda: all(
            "pending, " in e.handovers.get("webhook", "") for e in delivery.list_inbox(account)
        ),
        timeout=60,
        message="failed webhook attempts on record",
    )
    receiver.up()
    keys = {key(account, s) for s in sent}
    assert_none_lost_no_new_key(receiver, agent, keys)
    assert_each_once(receiver.counts(), keys)


def _breakdown(stack: Stack, account: str) -> str:
    """Where the slowest held messages spent their time (for a failure's message)."""
    first: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for e in reversed(delivery.list_inbox(account, limit=1000)):
        if e.peer_id is not None and e.status == "received":
            first.setdefault(e.peer_id, (e.written_at, e.received_at))
    with session_scope(engine_for(stack.database_url)) as db:
        rows = db.execute(
            select(Message.to_user_id, Attempt.started_at)
            .join(Chunk, Chunk.message_id == Message.id)
            .join(Attempt, Attempt.chunk_id == Chunk.id)
            .where(Attempt.outcome == "accepted", Message.to_user_id.in_(READERS))
        ).all()
    parts = sorted(
        (
            (started - first[peer][0]).total_seconds(),
            (first[peer][1] - first[peer][0]).total_seconds(),
            peer,
        )
        for peer, started in rows
    )
    return "; ".join(
        f"{p}: {total:.2f}s (recorded after {rec:.2f}s)" for total, rec, p in parts[-6:]
    )
