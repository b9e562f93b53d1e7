"""Fault injection: what the pipeline survives, with real processes and services.

Each scenario runs a burst and ends by comparing what the simulator received
with the ledger: every message delivered (or dead with a reason), none lost, in
order, no chunk delivered twice (a resend always carries the same client_id,
which the platform de-duplicates; a resend with a new one would show here as a
second arrival).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

import delivery
from delivery.devstack import LocalRedis
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Attempt, Message
from delivery.simulator import Fault
from tests.support import services
from tests.support.bursts import assert_delivered_exactly_once_in_order, burst
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def verify(stack: Stack, ids: list[str]) -> list[Attempt]:
    """Everything delivered exactly once, in order; returns the attempts."""
    assert set(stack.wait_final(ids, timeout=180).values()) == {"delivered"}
    assert_delivered_exactly_once_in_order(stack, ids)
    return stack.attempts()


def test_kill_9_of_the_worker_mid_send_then_a_new_worker(stack: Stack) -> None:
    # Given a platform that will deliver one send and then hold its answer
    account = stack.add_account()
    first = stack.start_worker()
    ids = delivery.enqueue_many(burst(account, messages=12, recipients=4, seed=6, max_chunks=3))
    wait_until(lambda: stack.snapshot().counters.accepted >= 4, timeout=60, message="4 sends")
    stack.simulator.model.queue_fault(Fault.hang(30, deliver=True), account_id=account)

    # When the worker is killed -9 while that send is in flight
    wait_until(
        lambda: stack.snapshot().accounts[account].in_flight == 1,
        timeout=60,
        message="a send in flight",
    )
    first.kill9()

    # Then a new worker (with beat: the reconciler) delivers everything once
    stack.start_worker(beat=True)
    attempts = verify(stack, ids)
    lost = [a for a in attempts if a.outcome == "lost"]
    assert len(lost) == 1  # the attempt the kill cut off, marked so by the next one
    assert stack.snapshot().counters.duplicates >= 1  # its resend, recognised by client_id


def test_redis_restart_mid_burst(own_redis_stack: Stack, own_redis: LocalRedis) -> None:
    stack = own_redis_stack
    account = stack.add_account()
    stack.simulator.model.configure(send_latency_seconds=0.02)
    # A short watchdog: a worker that reconnects is never taken for a stuck one.
    stack.overrides["DELIVERY_WORKER_WATCHDOG_SECONDS"] = "10"
    worker = stack.start_worker(beat=True)
    ids = delivery.enqueue_many(burst(account, messages=24, recipients=12, seed=7, max_chunks=3))
    wait_until(lambda: stack.snapshot().counters.accepted >= 5, timeout=60, message="5 sends")

    # When Redis stops (losing everything: it keeps nothing on disk) and comes back
    own_redis.stop()
    wait_until(
        lambda: "Connection" in worker.log_text() and "redis" in worker.log_text().lower(),
        timeout=60,
        message="the worker noticing",
    )
    own_redis.start()

    # Then everything is delivered once, in order, by the same worker
    verify(stack, ids)
    assert worker.running()
    assert "Unrecoverable error" not in worker.log_text()


def test_redis_restarted_three_times_mid_burst(
    own_redis_stack: Stack, own_redis: LocalRedis
) -> None:
    # Given a burst slow enough to span three restarts, under a 10 s watchdog
    stack = own_redis_stack
    account = stack.add_account()
    stack.overrides.update(
        DELIVERY_SEND_RATE_PER_MINUTE="300", DELIVERY_WORKER_WATCHDOG_SECONDS="10"
    )
    worker = stack.start_worker(beat=True)
    ids = delivery.enqueue_many(burst(account, messages=36, recipients=12, seed=11, max_chunks=3))

    # When Redis stops and comes back three times, with sends in between
    for restart in range(1, 4):
        accepted = stack.snapshot().counters.accepted
        wait_until(
            lambda: stack.snapshot().counters.accepted >= accepted + 3,  # noqa: B023
            timeout=90,
            message=f"3 sends before restart {restart}",
        )
        noticed = worker.log_text().count("Connection to broker lost")
        own_redis.stop()
        wait_until(
            lambda: worker.log_text().count("Connection to broker lost") > noticed,  # noqa: B023
            timeout=60,
            message=f"the worker noticing stop {restart}",
        )
        own_redis.start()

    # Then the same worker delivers everything once, in order
    verify(stack, ids)
    assert worker.running()
    assert "Unrecoverable error" not in worker.log_text()


def test_database_unreachable_for_a_while(pg_stack: Stack) -> None:
    stack = pg_stack
    database = stack.database_url.rsplit("/", 1)[1]
    account = stack.add_account()
    worker = stack.start_worker(beat=True)
    ids = delivery.enqueue_many(burst(account, messages=16, recipients=8, seed=8, max_chunks=3))
    wait_until(lambda: stack.snapshot().counters.accepted >= 4, timeout=60, message="4 sends")

    # When the workers are cut off from PostgreSQL
    services.allow_connections(database, False)
    try:
        wait_until(
            lambda: (
                worker.log_text().count("failed: connection") >= 3
                or worker.log_text().count("does not allow connections") >= 3
            ),
            timeout=60,
            message="the worker retrying, logging why",
        )
        accepted_during = stack.snapshot().counters.accepted
    finally:
        services.allow_connections(database, True)
    engine_for(stack.database_url).dispose()

    # Then it recovers by itself: no crash loop, nothing lost, nothing twice
    verify(stack, ids)
    assert worker.running()
    log = worker.log_text()
    assert f"the ledger at postgresql+psycopg://postgres@127.0.0.1:5432/{database} failed" in log
    assert "Traceback" not in log
    assert stack.snapshot().counters.accepted >= accepted_during


def test_platform_faults_in_a_burst(stack: Stack) -> None:
    # Given a platform that answers 5xx, hangs past the timeout, sends HTML and
    # garbage, and resets connections after delivering
    account = stack.add_account()
    faults = [
        (Fault.http_error(502), 3),
        (Fault.http_error(500, empty_body=True), 1),
        (Fault.hang(3.0), 2),  # the client's timeout is 2 s
        (Fault.html_200(), 2),
        (Fault.garbage(), 2),
        (Fault.reset_after_delivery(), 2),
    ]
    for fault, count in faults:
        stack.simulator.model.queue_fault(fault, count=count, account_id=account)
    stack.start_worker()

    # When a burst goes through
    ids = delivery.enqueue_many(burst(account, messages=16, recipients=4, seed=9, max_chunks=3))

    # Then every chunk arrives once, in order; the ledger kept each raw answer
    attempts = verify(stack, ids)
    transient = [a for a in attempts if a.outcome == "transient"]
    assert len(transient) == sum(count for _, count in faults)
    assert {a.http_status for a in transient} >= {502, 500, 200, None}
    assert any("may have arrived" in (a.detail or "") for a in transient)
    assert stack.snapshot().counters.duplicates == 2  # the two resets after delivery
    with session_scope(engine_for(stack.database_url)) as session:
        assert set(session.scalars(select(Message.status))) == {"delivered"}
