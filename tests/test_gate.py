"""The account gate on a real Redis: one send in flight, at the rate, never while cooling."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from delivery.errors import LimiterUnavailable
from delivery.ratelimit import AccountGate, Rate
from delivery.ratelimit.gate import order_key
from delivery.ratelimit.scripts import BUSY, COOLING, GRANTED, PACED
from tests.conftest import RedisInfo


@pytest.fixture
def gate(redis_db: RedisInfo) -> AccountGate:
    client = redis.Redis.from_url(redis_db.url)
    return AccountGate(client, rate=Rate(per_minute=600, burst=1), lock_ttl_seconds=5)


def test_one_send_in_flight_per_account(gate: AccountGate) -> None:
    first = gate.acquire("bot-1", ticket="1")
    assert first.granted and first.token

    second = gate.acquire("bot-1", ticket="2")
    other_account = gate.acquire("bot-2", ticket="3")

    assert second.status in (BUSY, PACED)
    assert other_account.granted
    assert gate.release("bot-1", first.token)
    assert not gate.release("bot-1", first.token)  # only once, and only by its holder


def test_a_waiter_reserves_one_slot_and_keeps_it(gate: AccountGate) -> None:
    granted = gate.acquire("bot-1", ticket="a")
    assert granted.token is not None
    gate.release("bot-1", granted.token)

    b_first = gate.acquire("bot-1", ticket="b")
    b_again = gate.acquire("bot-1", ticket="b")
    c_first = gate.acquire("bot-1", ticket="c")

    assert b_first.status == PACED and 0.05 < b_first.wait_seconds <= 0.1
    assert b_again.status == PACED and b_again.wait_seconds <= b_first.wait_seconds
    assert c_first.status == PACED and 0.15 < c_first.wait_seconds <= 0.2


def test_a_reservation_is_honoured_at_its_slot(gate: AccountGate) -> None:
    token = gate.acquire("bot-1", ticket="a").token
    assert token is not None
    gate.release("bot-1", token)
    wait = gate.acquire("bot-1", ticket="b").wait_seconds

    deadline = time.monotonic() + wait + 1
    decision = gate.acquire("bot-1", ticket="b")
    while not decision.granted and time.monotonic() < deadline:
        decision = gate.acquire("bot-1", ticket="b")
    assert decision.granted


def test_cooldown_holds_every_send_and_is_never_shortened(gate: AccountGate) -> None:
    assert gate.cool_down("bot-1", 2.0) == pytest.approx(2.0, abs=0.05)
    assert gate.cool_down("bot-1", 0.5) == pytest.approx(2.0, abs=0.1)

    decision = gate.acquire("bot-1", ticket="x")

    assert decision.status == COOLING
    assert 1.5 < decision.wait_seconds <= 2.0
    assert gate.state("bot-1").cooldown_seconds > 1.5


def test_strikes_count_consecutive_limits_and_a_success_ends_them(gate: AccountGate) -> None:
    assert [gate.rate_limited("bot-1") for _ in range(3)] == [1, 2, 3]
    gate.answered("bot-1", accepted=False)  # a refusal of another kind: the streak goes on
    assert gate.rate_limited("bot-1") == 4
    gate.answered("bot-1", accepted=True)
    assert gate.rate_limited("bot-1") == 1


def test_keys_keep_an_account_in_one_cluster_slot(gate: AccountGate) -> None:
    assert gate.key("bot-1", "lock") == "delivery:acct:{bot-1}:lock"


def test_many_threads_never_hold_one_account_twice(redis_db: RedisInfo) -> None:
    gate = AccountGate(
        redis.Redis.from_url(redis_db.url),
        rate=Rate(per_minute=60_000, burst=50),
        lock_ttl_seconds=5,
    )
    holders = 0
    most = 0
    granted = 0
    guard = threading.Lock()

    def hammer(ticket: str) -> None:
        nonlocal holders, most, granted
        for _ in range(100):
            decision = gate.acquire("bot-1", ticket=ticket)
            if not decision.granted:
                continue
            with guard:
                holders += 1
                granted += 1
                most = max(most, holders)
            gate.state("bot-1")  # a round trip while holding, so overlaps would show
            with guard:
                holders -= 1
            assert decision.token is not None
            gate.release("bot-1", decision.token)

    threads = [threading.Thread(target=hammer, args=(str(i),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert granted > 0
    assert most == 1


def test_redis_unreachable_fails_closed() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    gate = AccountGate(client, rate=Rate(per_minute=60), lock_ttl_seconds=5)
    with pytest.raises(LimiterUnavailable, match="unreachable"):
        gate.acquire("bot-1", ticket="1")


def test_status_codes_are_distinct() -> None:
    assert len({GRANTED, COOLING, BUSY, PACED}) == 4


def test_a_learned_rate_spaces_the_slots_wider(gate: AccountGate) -> None:
    # 600/min configured, 300/min learned: one send per 200 ms instead of 100
    token = gate.acquire("bot-1", ticket="a", learned_per_minute=300).token
    assert token is not None
    gate.release("bot-1", token)

    waiting = gate.acquire("bot-1", ticket="b", learned_per_minute=300)

    assert waiting.status == PACED
    assert 0.15 < waiting.wait_seconds <= 0.2


def test_a_learned_rate_above_the_configured_one_changes_nothing(gate: AccountGate) -> None:
    assert gate.rate.at_most(6000) is gate.rate
    assert gate.rate.at_most(None) is gate.rate
    assert gate.rate.at_most(300) == Rate(per_minute=300, burst=1)


def test_the_next_part_of_a_started_message_goes_before_first_parts(gate: AccountGate) -> None:
    token = gate.acquire("bot-1", ticket="1", order=order_key(message_id=1, seq=1)).token
    assert token is not None
    gate.release("bot-1", token)
    first_parts = [
        gate.acquire("bot-1", ticket=str(10 + m), order=order_key(message_id=m, seq=1))
        for m in (2, 3, 4)
    ]

    # Part 2 of message 9, enqueued last, comes while three first parts wait
    part_two = gate.acquire("bot-1", ticket="99", order=order_key(message_id=9, seq=2))
    again = gate.acquire("bot-1", ticket="12", order=order_key(message_id=2, seq=1))

    assert [d.status for d in first_parts] == [PACED] * 3
    assert part_two.wait_seconds <= first_parts[0].wait_seconds  # the next slot is its own
    assert again.wait_seconds == pytest.approx(part_two.wait_seconds + 0.1, abs=0.02)
    assert gate.state("bot-1").waiting == 4


def test_first_parts_wait_in_the_order_their_messages_were_enqueued(gate: AccountGate) -> None:
    token = gate.acquire("bot-1", ticket="x").token
    assert token is not None
    gate.release("bot-1", token)

    gate.acquire("bot-1", ticket="c", order=order_key(message_id=30, seq=1))  # came first
    early = gate.acquire("bot-1", ticket="b", order=order_key(message_id=20, seq=1))
    late = gate.acquire("bot-1", ticket="c", order=order_key(message_id=30, seq=1))

    assert late.wait_seconds == pytest.approx(early.wait_seconds + 0.1, abs=0.02)


def test_a_waiter_that_leaves_or_never_comes_back_blocks_no_one(
    gate: AccountGate, redis_db: RedisInfo
) -> None:
    client = redis.Redis.from_url(redis_db.url)
    holder = gate.acquire("bot-1", ticket="holder", order=0)
    stale = gate.acquire("bot-1", ticket="stale", order=1)
    left = gate.acquire("bot-1", ticket="left", order=2)
    assert holder.token is not None and not stale.granted and not left.granted
    gate.release("bot-1", holder.token)
    client.set(gate.key("bot-1", "next"), 0)  # the rate allows a send now

    # "stale"'s task ended without coming back (its time passed); "left" gave up
    client.zadd(gate.key("bot-1", "back"), {"stale": 0})
    gate.leave("bot-1", "left")
    after = gate.acquire("bot-1", ticket="after", order=5)

    assert after.granted
    assert gate.state("bot-1").waiting == 0


def test_the_next_send_waits_an_interval_after_the_answer(
    gate: AccountGate, redis_db: RedisInfo
) -> None:
    # A send granted long ago (its slot passed) whose answer comes only now
    client = redis.Redis.from_url(redis_db.url)
    token = gate.acquire("bot-1", ticket="a").token
    assert token is not None
    client.set(gate.key("bot-1", "next"), redis_now_ms(client) - 1000)
    gate.answered("bot-1", accepted=True)
    gate.release("bot-1", token)

    waiting = gate.acquire("bot-1", ticket="b")

    assert waiting.status == PACED
    assert 0.08 < waiting.wait_seconds <= 0.1  # an interval after the answer, not the grant


def test_accepted_sends_are_kept_as_evidence(gate: AccountGate) -> None:
    gate.answered("bot-1", accepted=True)
    gate.answered("bot-1", accepted=False)
    gate.answered("bot-1", accepted=True)

    sends, now = gate.accepted_sends("bot-1")

    assert len(sends) == 2
    assert all(now - 5 < s <= now for s in sends)


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_a_busy_lock_means_look_again_soon_not_at_its_ttl(redis_db: RedisInfo) -> None:
    client = redis.Redis.from_url(redis_db.url)
    gate = AccountGate(client, rate=Rate(per_minute=600, burst=2), lock_ttl_seconds=60)
    assert gate.acquire("bot-1", ticket="a").granted  # holds the lock (60 s TTL)

    second = gate.acquire("bot-1", ticket="b")  # burst 2: its slot is now

    assert second.status == BUSY
    assert 0 < second.wait_seconds <= 0.1


def test_waiters_are_told_a_time_that_counts_how_long_answers_take(
    gate: AccountGate, redis_db: RedisInfo
) -> None:
    # Given sends of the account answered 200 ms after they were granted
    client = redis.Redis.from_url(redis_db.url)
    token = gate.acquire("bot-1", ticket="a").token
    assert token is not None
    client.set(gate.key("bot-1", "granted"), redis_now_ms(client) - 200)
    gate.answered("bot-1", accepted=True)
    gate.release("bot-1", token)
    client.set(gate.key("bot-1", "next"), 0)

    # When a send is granted, the next waiter is told the interval plus that delay
    token = gate.acquire("bot-1", ticket="b").token
    assert token is not None
    waiting = gate.acquire("bot-1", ticket="c")

    assert waiting.status == PACED
    assert 0.25 < waiting.wait_seconds <= 0.32


def test_a_waiter_is_told_its_turn_from_the_parts_still_to_go_before_it(
    gate: AccountGate,
) -> None:
    token = gate.acquire("bot-1", ticket="x").token
    assert token is not None
    gate.release("bot-1", token)

    # A three-part message waits before a one-part one: three sends go first
    gate.acquire("bot-1", ticket="a", order=order_key(message_id=1, seq=1), weight=3)
    behind = gate.acquire("bot-1", ticket="b", order=order_key(message_id=2, seq=1), weight=1)

    assert behind.status == PACED
    assert 0.35 < behind.wait_seconds <= 0.4  # the next slot, then three intervals
