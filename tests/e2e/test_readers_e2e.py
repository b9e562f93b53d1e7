"""Readers' reply windows and budgets, end to end: worker processes, the simulator
refusing closed readers with a bare ``{"ret": -2}``, the pipeline telling them apart
from the account's limit."""

from __future__ import annotations

import redis
from sqlalchemy import select

import delivery
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account
from delivery.simulator import Snapshot
from tests.support.bursts import assert_delivered_exactly_once_in_order, paragraph
from tests.support.stack import Stack
from tests.support.waiting import wait_until

HOUR = 3600.0
NOTICE_END = "more parts: reply to get them"


def readers_enforced(stack: Stack, **config: object) -> None:
    """The platform limits each reader; its rate-limit answer is a bare -2 as well."""
    stack.simulator.model.configure(
        reader_window_seconds=HOUR, reader_budget=10, rate_limit_errmsg=None, **config
    )


def reader(n: int) -> str:
    return f"reader{n}@im.wechat"


def writes(stack: Stack, account: str, peer: str, *, tell_pipeline: bool) -> None:
    """The reader writes to the bot; the agent tells the pipeline, or does not."""
    token = stack.simulator.model.inject_inbound(account, from_user_id=peer, text="hi")
    if tell_pipeline:
        delivery.record_inbound(account, peer, context_token=token)


def refusals(snapshot: Snapshot, verdict: str) -> int:
    return snapshot.counters.rejected.get(verdict, 0)


def learned_of(stack: Stack, account: str) -> float | None:
    with session_scope(engine_for(stack.database_url), readonly=True) as db:
        return db.scalar(select(Account.learned_rate_per_minute).where(Account.id == account))


def strikes_and_pace(stack: Stack, account: str) -> list[str | None]:
    """The account gate's rate-limit streak and learned pace (None: never set)."""
    client = redis.Redis.from_url(stack.env()["DELIVERY_REDIS_URL"], decode_responses=True)
    return [client.get(f"delivery:acct:{{{account}}}:{name}") for name in ("strikes", "pace")]


def test_two_closed_readers_cost_one_cooldown_teach_nothing_and_go_when_they_write(
    any_stack: Stack,
) -> None:
    # Given 20 readers, 18 of whom wrote to the bot lately and 2 who did not for a day,
    # none of them known to the pipeline (the agent never told it)
    stack = any_stack
    account = stack.add_account()
    readers_enforced(stack)
    closed = {reader(5), reader(6)}  # back to back in the burst
    for n in range(20):
        if reader(n) not in closed:
            writes(stack, account, reader(n), tell_pipeline=False)
    worker = stack.start_worker()

    # When a burst of one message per reader goes out
    ids = delivery.enqueue_many(
        delivery.OutboundMessage(account, reader(n), f"morning briefing for {n}") for n in range(20)
    )
    by_reader = dict(zip([reader(n) for n in range(20)], ids, strict=True))
    open_ids = [m for r, m in by_reader.items() if r not in closed]

    # Then the 18 are delivered, the 2 wait for their readers ...
    wait_until(
        lambda: {s for s in stack.statuses(open_ids).values()} == {"delivered"},
        timeout=60,
        message="the open readers' messages",
    )
    waiting = [by_reader[r] for r in sorted(closed)]
    wait_until(
        lambda: all(delivery.get_status(m).status == "awaiting_reader" for m in waiting),
        timeout=30,
        message="the closed readers' messages waiting",
    )
    # ... at the price of one cooldown: two unknown readers refused back to back read as
    # the account's limit (every send into a lockout makes it longer), so both were held
    # until the account's next accepted send, tried again then, and refused as theirs;
    # what the cooldown would have taught of the account's pace was never learned
    log = worker.log_text()
    assert log.count("rate limited (strike") == 1 and "pending" in log
    assert "readers' closed windows: nothing learned" in log
    assert strikes_and_pace(stack, account) == [None, None]
    assert learned_of(stack, account) is None
    assert refusals(stack.snapshot(), "reader_refused") == 4
    outcomes = [a.outcome for a in stack.attempts()]
    assert outcomes.count("reader_refused") == 2 and outcomes.count("rate_limited") == 2
    assert set(outcomes) <= {"accepted", "rate_limited", "reader_refused"}

    # When they write (and the agent tells the pipeline), their messages go at once
    for peer in sorted(closed):
        writes(stack, account, peer, tell_pipeline=True)
    wait_until(
        lambda: {s for s in stack.statuses(waiting).values()} == {"delivered"},
        timeout=10,
        message="the waiting messages once their readers wrote",
    )
    assert_delivered_exactly_once_in_order(stack, ids)


def test_a_long_message_stops_where_the_budget_ends_and_says_so(stack: Stack) -> None:
    # Given a reader who wrote, and 7 of their 10 sends spent
    account = stack.add_account()
    readers_enforced(stack)
    peer = reader(1)
    writes(stack, account, peer, tell_pipeline=True)
    stack.start_worker()
    spent = [delivery.enqueue(account, peer, f"short one {n}") for n in range(7)]
    stack.wait_final(spent, timeout=60)

    # When a six-part message is enqueued
    text = "\n\n".join(paragraph(f"p{n}") for n in range(6))
    message_id = delivery.enqueue(account, peer, text)

    # Then three parts go, the third ending with the notice, and the message waits
    wait_until(
        lambda: delivery.get_status(message_id).status == "awaiting_reader",
        timeout=60,
        message="the message waiting for its reader",
    )
    arrived = [m.text for m in stack.snapshot().messages[peer][7:]]
    assert len(arrived) == 3
    assert arrived[2].endswith(f"… 3 {NOTICE_END}")
    assert not any(NOTICE_END in t for t in arrived[:2])
    assert all(len(t) <= 2000 for t in arrived)

    # When the reader writes, the rest goes, in order, nothing twice
    writes(stack, account, peer, tell_pipeline=True)
    assert stack.wait_final([message_id], timeout=60) == {message_id: "delivered"}
    assert_delivered_exactly_once_in_order(stack, [*spent, message_id])
    assert refusals(stack.snapshot(), "reader_refused") == 0  # nothing sent that would be


def test_a_true_rate_limit_among_known_readers_is_still_a_rate_limit(stack: Stack) -> None:
    # Given readers who all wrote (the pipeline knows), and a platform that allows 5
    # sends per 4 s (a worker on a loaded machine still goes faster) and then locks the
    # account out, answering a bare -2
    account = stack.add_account()
    readers_enforced(
        stack,
        rate_limit_sends=5,
        rate_limit_window_seconds=4.0,
        lockout_seconds=1.0,
        lockout_extend_seconds=0.2,
    )
    for n in range(12):
        writes(stack, account, reader(n), tell_pipeline=True)
    worker = stack.start_worker()

    # When a burst goes faster than the platform allows
    ids = delivery.enqueue_many(
        delivery.OutboundMessage(account, reader(n), f"leaderboard for {n}") for n in range(12)
    )

    # Then the refusals are taken for the account's limit: a cooldown, then delivery
    assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, ids)
    outcomes = [a.outcome for a in stack.attempts()]
    assert "rate_limited" in outcomes
    assert "reader_refused" not in outcomes and "refused" not in outcomes
    assert "rate limited (strike 1)" in worker.log_text()


def test_unknown_readers_refused_one_after_another_are_a_rate_limit(stack: Stack) -> None:
    # Given readers the pipeline knows nothing of (all open at the platform), and a
    # platform that allows 3 sends in 3 s (60 a minute; the account is set to 90) and
    # then locks the account out for 3 s, answering a bare -2; held chats are looked
    # at again after 2 s (beat's reconciler)
    stack.overrides["DELIVERY_READER_RECHECK_SECONDS"] = "2"
    stack.overrides["DELIVERY_SEND_RATE_PER_MINUTE"] = "90"
    account = stack.add_account()
    readers_enforced(
        stack,
        rate_limit_sends=3,
        rate_limit_window_seconds=3.0,
        lockout_seconds=3.0,
        lockout_extend_seconds=0.2,
    )
    for n in range(8):
        writes(stack, account, reader(n), tell_pipeline=False)
    stack.start_worker(beat=True)

    # When a burst runs into the lockout
    ids = delivery.enqueue_many(
        delivery.OutboundMessage(account, reader(n), f"note {n}") for n in range(8)
    )

    # Then the second refused reader in a row makes it a rate limit (the held chats go
    # again after the account's next accepted send), and everything arrives once, in
    # order; a refusal nothing decided (the last ones of the burst) is tried again after
    # the recheck
    assert set(stack.wait_final(ids, timeout=120).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, ids)
    outcomes = [a.outcome for a in stack.attempts()]
    assert "rate_limited" in outcomes
    assert "reader_refused" not in outcomes
