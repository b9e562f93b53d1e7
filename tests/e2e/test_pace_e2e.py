"""The account's pace end to end: at the platform's exact limit, a guess above it,
and a started message finishing before the backlog (real workers, the simulator's
sliding window with network jitter, a compressed clock)."""

from __future__ import annotations

import statistics

import pytest
from sqlalchemy import select

import delivery
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account
from tests.support.bursts import assert_delivered_exactly_once_in_order, burst, paragraph
from tests.support.own_redis import OwnRedis
from tests.support.stack import Stack

# The platform: 5 sends in any 1 s window (300 a minute), jittered on the way in.
# Each test needs the workers to go about as fast as on an idle machine (a guess above
# the limit must trip it; an order depends on who asks when): run alone.
pytestmark = pytest.mark.alone

LIMIT = {
    "rate_limit_sends": 5,
    "rate_limit_window_seconds": 1.0,
    "send_latency_seconds": 0.01,
    "send_jitter_seconds": 0.04,
}


def _learned(stack: Stack, account: str) -> tuple[float | None, str | None]:
    with session_scope(engine_for(stack.database_url), readonly=True) as db:
        row = db.execute(
            select(Account.learned_rate_per_minute, Account.learned_from).where(
                Account.id == account
            )
        ).one()
        return row[0], row[1]


def test_at_exactly_the_platforms_limit_nothing_is_refused(stack: Stack) -> None:
    # Given the configured rate exactly the platform's, two workers, jittered arrivals
    account = stack.add_account()
    stack.simulator.model.configure(**LIMIT, lockout_seconds=3.0)
    stack.overrides["DELIVERY_SEND_RATE_PER_MINUTE"] = "300"
    stack.start_worker()
    stack.start_worker()

    # When a burst of 16 messages (about 30 parts) is enqueued
    ids = delivery.enqueue_many(burst(account, messages=16, recipients=16, seed=5, max_chunks=3))

    # Then it drains with no refusal: sends are spaced from their answers, not their starts
    assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}
    snapshot = assert_delivered_exactly_once_in_order(stack, ids)
    assert snapshot.counters.rejected.get("rate_limited", 0) == 0
    assert snapshot.accounts[account].lockouts == 0
    assert _learned(stack, account) == (None, None)


def test_a_guess_above_the_limit_costs_one_lockout_kept_through_a_flushall(
    own_redis_stack: Stack, own_redis: OwnRedis
) -> None:
    # Given a rate configured at five times the platform's (the sends, each spaced from
    # the previous answer, go at two to three times it), a cooldown outlasting its lockout
    stack = own_redis_stack
    account = stack.add_account()
    stack.simulator.model.configure(**LIMIT, lockout_seconds=1.5, lockout_extend_seconds=0.5)
    stack.overrides.update(
        DELIVERY_SEND_RATE_PER_MINUTE="1500",
        DELIVERY_COOLDOWN_BASE_SECONDS="2",
        DELIVERY_COOLDOWN_MAX_SECONDS="4",
    )
    stack.start_worker(beat=True)
    stack.start_worker()

    # When a burst drains
    first = delivery.enqueue_many(burst(account, messages=12, recipients=12, seed=6, max_chunks=3))
    assert set(stack.wait_final(first, timeout=120).values()) == {"delivered"}

    # Then it cost one lockout, and the account learned a ceiling under the limit
    assert stack.snapshot().accounts[account].lockouts == 1
    learned, evidence = _learned(stack, account)
    # (half the rate that tripped, less 10%: how fast the workers got before the refusal)
    assert learned is not None and 100 <= learned < 300, evidence
    assert evidence is not None and "refused at" in evidence

    # And when Redis loses everything, the next burst still keeps under the limit
    own_redis.client().flushall()
    second = delivery.enqueue_many(burst(account, messages=12, recipients=12, seed=7, max_chunks=3))
    assert set(stack.wait_final(second, timeout=120).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, first + second)
    assert stack.snapshot().accounts[account].lockouts == 1


def test_a_started_message_finishes_before_the_backlog(stack: Stack) -> None:
    # Given an account at 600 sends a minute (one per 100 ms) and one worker
    account = stack.add_account()
    stack.overrides.update(DELIVERY_SEND_RATE_PER_MINUTE="600")
    stack.start_worker()
    parts = 3

    # When 20 three-part messages, one per chat, are enqueued at once
    texts = ["\n\n".join(paragraph(f"m{m}p{p}") for p in range(parts)) for m in range(20)]
    ids = delivery.enqueue_many(
        [delivery.OutboundMessage(account, f"user{m}@im.wechat", t) for m, t in enumerate(texts)]
    )
    assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}
    snapshot = assert_delivered_exactly_once_in_order(stack, ids)

    # Then each message's parts follow each other at the account's rate ...
    arrivals = [[m.arrived_at for m in snapshot.messages[f"user{m}@im.wechat"]] for m in range(20)]
    spans = sorted(a[-1] - a[0] for a in arrivals)
    drain = max(a[-1] for a in arrivals) - min(a[0] for a in arrivals)
    interval = drain / (
        20 * parts - 1
    )  # as sent: 100 ms after each answer, and the worker's own time
    assert statistics.median(spans) <= 1.5 * (parts - 1) * interval, (spans, interval)
    assert spans[-3] < drain / 4, (spans, drain)  # not the whole backlog's time
    # ... and the messages finish in the order they were enqueued, as far as the rate
    # allows: a first part whose elders are told to come back later takes a slot that
    # would go idle (the worker, busy with 20 first asks at once, makes their turns
    # come late), so a message may finish a few places early, never far from its place
    finished = sorted(range(20), key=lambda m: arrivals[m][-1])
    displaced = [abs(place - m) for place, m in enumerate(finished)]
    t0 = min(a[0] for a in arrivals)
    timeline = "\n".join(f"{m}: {[round(t - t0, 2) for t in arrivals[m]]}" for m in range(20))
    assert max(displaced) <= 6 and statistics.mean(displaced) <= 1.5, (finished, timeline)
