"""The account gate on a real Redis: one send in flight, the line hands each slot to
the next part (nobody polls), at the rate, one probe per cooldown."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from delivery.errors import LimiterUnavailable
from delivery.ratelimit import AccountGate, Rate
from delivery.ratelimit.gate import COOLING, PACED, QUEUED, STALE, UNKNOWN, Offer, Pick, order_key
from tests.conftest import RedisInfo


@pytest.fixture
def gate(redis_db: RedisInfo) -> AccountGate:
    client = redis.Redis.from_url(redis_db.url)
    return AccountGate(client, rate=Rate(per_minute=600, burst=1), lock_ttl_seconds=5)


def push(message_id: int, ticket: str | None = None, *, due: float = 0.0, gen: int = 1) -> Offer:
    order = order_key(message_id=message_id, started=False)
    return Offer(ticket or str(message_id), gen, order, due)


def started(message_id: int, ticket: str, *, due: float = 0.0) -> Offer:
    return Offer(ticket, 1, order_key(message_id=message_id, started=True), due)


def reply(message_id: int, ticket: str) -> Offer:
    return Offer(ticket, 1, order_key(message_id=message_id, started=False, reply=True))


def take(gate: AccountGate, pick: Pick | None, account: str = "bot-1") -> str:
    """Run the task of ``pick`` at its slot, as a worker would; return its lock token."""
    assert pick is not None
    time.sleep(pick.in_seconds)
    decision = gate.acquire(account, ticket=pick.ticket, generation=pick.generation)
    assert decision.granted, decision
    assert decision.token is not None
    return decision.token


def test_an_idle_line_gives_the_slot_at_once_and_one_send_is_in_flight(gate: AccountGate) -> None:
    # Given two parts offered to an idle account
    pick = gate.offer("bot-1", [push(1), push(2)])

    # Then the first gets the slot now; its task takes the lock; the other waits, taskless
    assert pick == Pick("1", 1, 0.0)
    token = take(gate, pick)
    assert gate.acquire("bot-1", ticket="2", generation=1).status == QUEUED
    assert gate.state("bot-1").send_in_flight
    # Another account is not held up
    assert gate.offer("bot-2", [push(3)]) == Pick("3", 1, 0.0)
    assert token


def test_the_next_slot_comes_an_interval_after_the_answer(gate: AccountGate) -> None:
    token = take(gate, gate.offer("bot-1", [push(1), push(2)]))

    handed = gate.handoff("bot-1", token=token, answered=True, accepted=True)

    assert handed.pick is not None and handed.pick.ticket == "2"
    assert 0.08 < handed.pick.in_seconds <= 0.1  # 600/min: 100 ms after this answer
    assert not gate.state("bot-1").send_in_flight


def test_a_part_that_was_not_called_does_not_spend_the_rate(gate: AccountGate) -> None:
    token = take(gate, gate.offer("bot-1", [push(1), push(2)]))

    handed = gate.handoff("bot-1", token=token, answered=False)

    assert handed.pick == Pick("2", 1, 0.0)


def test_started_parts_go_first_then_replies_then_pushes_older_first(gate: AccountGate) -> None:
    token = take(gate, gate.offer("bot-1", [push(1)]))
    gate.offer("bot-1", [push(30, "p30"), push(20, "p20"), reply(40, "r40"), reply(35, "r35")])

    order = []
    handed = gate.handoff(
        "bot-1", token=token, answered=False, offers=[started(50, "s50"), started(45, "s45")]
    )
    while handed.pick is not None:
        order.append(handed.pick.ticket)
        token = take(gate, handed.pick)
        handed = gate.handoff("bot-1", token=token, answered=False)

    assert order == ["s45", "s50", "r35", "r40", "p20", "p30"]


def test_a_part_not_due_yet_leaves_the_slot_to_one_that_is(gate: AccountGate) -> None:
    token = take(gate, gate.offer("bot-1", [push(1)]))

    # The next part of message 1 is due after a 300 ms gap; a first part is due now
    handed = gate.handoff(
        "bot-1", token=token, answered=True, offers=[started(1, "1b", due=0.3), push(9)]
    )

    assert handed.pick is not None and handed.pick.ticket == "9"
    token = take(gate, handed.pick)
    handed = gate.handoff("bot-1", token=token, answered=True)
    assert handed.pick is not None and handed.pick.ticket == "1b"
    assert handed.pick.in_seconds > 0.05  # at its due time, not before


def test_a_cooldown_lets_one_part_go_when_it_ends(gate: AccountGate) -> None:
    token = take(gate, gate.offer("bot-1", [push(1), push(2), push(3)]))
    assert gate.cool_down("bot-1", 0.5) == pytest.approx(0.5, abs=0.05)
    assert gate.cool_down("bot-1", 0.2) == pytest.approx(0.5, abs=0.1)  # never shortened

    handed = gate.handoff("bot-1", token=token, answered=True, accepted=False)

    # The slot is the probe's, at the cooldown's end; nobody else may go meanwhile
    assert handed.pick is not None and handed.pick.ticket == "2"
    assert 0.4 < handed.pick.in_seconds <= 0.5
    early = gate.acquire("bot-1", ticket="2", generation=1)
    assert early.status in (COOLING, PACED) and early.wait_seconds > 0.3
    assert gate.acquire("bot-1", ticket="3", generation=1).status == QUEUED
    assert gate.offer("bot-1", [push(4)]) is None
    assert take(gate, handed.pick)


def test_a_far_slot_goes_to_a_part_due_now(gate: AccountGate) -> None:
    # A part backing off for 10 s holds the next slot when a new part comes, due now
    held = gate.offer("bot-1", [push(1, due=10.0)])
    assert held is not None and held.in_seconds > 9

    pick = gate.offer("bot-1", [push(2)])

    assert pick == Pick("2", 1, 0.0)
    # the first part's task finds its slot given up: it waits in the line, taskless
    assert gate.acquire("bot-1", ticket="1", generation=1).status == QUEUED


def test_a_lost_slot_is_reserved_again(gate: AccountGate, redis_db: RedisInfo) -> None:
    gate.offer("bot-1", [push(1), push(2)])
    redis.Redis.from_url(redis_db.url).delete(gate.key("bot-1", "holder"))  # its task is lost

    assert gate.kick("bot-1") == Pick("2", 1, 0.0)
    assert gate.kick("bot-1") is None  # reserved already


def test_tasks_the_line_does_not_know_or_of_an_older_generation(gate: AccountGate) -> None:
    gate.offer("bot-1", [push(1, gen=3)])

    assert gate.acquire("bot-1", ticket="1", generation=2).status == STALE
    assert gate.acquire("bot-1", ticket="7", generation=1).status == UNKNOWN
    assert gate.acquire("bot-1", ticket="1", generation=3).granted


def test_a_newer_generation_offered_replaces_the_slot_of_an_older_one(gate: AccountGate) -> None:
    assert gate.offer("bot-1", [push(1, due=5.0)]) is not None  # generation 1 holds the slot

    pick = gate.offer("bot-1", [push(1, gen=2)])  # the reconciler armed it again

    assert pick == Pick("1", 2, 0.0)


def test_strikes_count_verdicts_an_accepted_send_ends_them(gate: AccountGate) -> None:
    first, began = gate.rate_limited("bot-1", streak_began=time.time() - 5)
    second, still = gate.rate_limited("bot-1")
    token = take(gate, gate.offer("bot-1", [push(1)]))
    gate.handoff("bot-1", token=token, answered=True, accepted=True)

    assert (first, second) == (1, 2)
    assert still == began and time.time() - began == pytest.approx(5, abs=1)
    assert gate.rate_limited("bot-1")[0] == 1


def test_accepted_sends_are_kept_as_evidence(gate: AccountGate) -> None:
    for accepted in (True, False, True):
        token = take(gate, gate.offer("bot-1", [push(1)]))
        gate.handoff("bot-1", token=token, answered=True, accepted=accepted)
        time.sleep(0.1)

    sends, now = gate.accepted_sends("bot-1")

    assert len(sends) == 2
    assert all(now - 5 < s <= now for s in sends)


def test_a_run_at_the_pace_is_counted_and_a_refusal_ends_it(gate: AccountGate) -> None:
    runs = []
    handed = gate.handoff("bot-1", token=None, answered=False, offers=[push(m) for m in range(5)])
    while handed.pick is not None:
        token = take(gate, handed.pick)
        handed = gate.handoff("bot-1", token=token, answered=True, accepted=True)
        runs.append(handed.run)

    gate.rate_limited("bot-1")

    assert runs == [0, 1, 2, 3, 4]  # each answered within 1.5 intervals of the last
    assert gate.handoff("bot-1", token=None, answered=False).run == 0


def test_a_learned_rate_spaces_the_slots_wider(gate: AccountGate) -> None:
    token = take(gate, gate.offer("bot-1", [push(1), push(2)]))

    handed = gate.handoff(
        "bot-1", token=token, answered=True, accepted=True, learned_per_minute=300
    )

    assert handed.pick is not None and 0.15 < handed.pick.in_seconds <= 0.2


def test_a_learned_rate_above_the_configured_one_changes_nothing(gate: AccountGate) -> None:
    assert gate.rate.at_most(6000) is gate.rate
    assert gate.rate.at_most(None) is gate.rate
    assert gate.rate.at_most(300) == Rate(per_minute=300, burst=1)


def test_a_burst_lets_that_many_go_back_to_back(redis_db: RedisInfo) -> None:
    gate = AccountGate(
        redis.Redis.from_url(redis_db.url), rate=Rate(per_minute=60, burst=3), lock_ttl_seconds=5
    )
    waits = []
    handed = gate.handoff("bot-1", token=None, answered=False, offers=[push(m) for m in range(4)])
    while handed.pick is not None:
        waits.append(handed.pick.in_seconds)
        token = take(gate, handed.pick) if handed.pick.in_seconds < 1 else None
        if token is None:
            break
        handed = gate.handoff("bot-1", token=token, answered=True, accepted=True)

    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 0.9


def test_parts_leave_the_line_and_a_slot_they_held_goes_on(gate: AccountGate) -> None:
    gate.offer("bot-1", [push(1), push(2), push(3)])

    pick = gate.leave("bot-1", ["1", "2"])

    assert pick == Pick("3", 1, 0.0)
    assert gate.in_line("bot-1", ["1", "2", "3"]) == {"3"}
    assert gate.state("bot-1").waiting == 1


def test_keys_keep_an_account_in_one_cluster_slot(gate: AccountGate) -> None:
    assert gate.key("bot-1", "lock") == "delivery:acct:{bot-1}:lock"


def test_many_workers_never_hold_one_account_twice(redis_db: RedisInfo) -> None:
    # Eight threads run whatever task is published, as workers would, and also offer
    # parts and kick the line at random: one send in flight, never two.
    gate = AccountGate(
        redis.Redis.from_url(redis_db.url), rate=Rate(per_minute=60_000), lock_ttl_seconds=5
    )
    published: list[Pick] = []
    guard = threading.Lock()
    holders = most = sent = 0

    def publish(pick: Pick | None) -> None:
        if pick is not None:
            with guard:
                published.append(pick)

    publish(gate.offer("bot-1", [push(m) for m in range(200)]))

    def worker(seed: int) -> None:
        nonlocal holders, most, sent
        rng = random.Random(seed)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sent < 200:
            with guard:
                pick = published.pop(0) if published else None
            if pick is None:
                publish(gate.kick("bot-1") if rng.random() < 0.1 else None)
                time.sleep(0.001)
                continue
            decision = gate.acquire("bot-1", ticket=pick.ticket, generation=pick.generation)
            publish(decision.pick)
            if decision.waits:
                with guard:
                    published.append(Pick(pick.ticket, pick.generation, 0))
                continue
            if not decision.granted:
                continue
            with guard:
                holders += 1
                most = max(most, holders)
            gate.state("bot-1")  # a round trip while holding, so overlaps would show
            with guard:
                holders -= 1
                sent += 1
            publish(gate.handoff("bot-1", token=decision.token, answered=True, accepted=True).pick)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sent == 200
    assert most == 1


def test_redis_unreachable_fails_closed() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    gate = AccountGate(client, rate=Rate(per_minute=60), lock_ttl_seconds=5)
    with pytest.raises(LimiterUnavailable, match="unreachable"):
        gate.acquire("bot-1", ticket="1", generation=1)
    with pytest.raises(LimiterUnavailable):
        gate.offer("bot-1", [push(1)])
