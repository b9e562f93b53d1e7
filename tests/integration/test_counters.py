"""Running totals of outcomes: kept as the ledger writes them, equal to a recount.

Every outcome here is written by the ledger's own verbs (the ones the workers
call), on SQLite and PostgreSQL; the totals are then compared with a count of
the rows themselves.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import Engine, func, select

import delivery
from delivery.ledger import attempts as ledger_attempts
from delivery.ledger import counters, outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Attempt, Chunk, Message
from delivery.ledger.retention import prune_batch
from delivery.ledger.states import FINAL_MESSAGE_STATES, AttemptOutcome, MessageStatus
from delivery.ledger.types import utcnow
from delivery.monitoring import LedgerStats, SqlLedgerSource
from tests.conftest import Ledger, RedisInfo
from tests.support.ledger_ops import accept_chunk

NOW = utcnow().replace(microsecond=0)
BASE_URL = "http://127.0.0.1:9"  # never called: no worker runs in these tests
TWO_CHUNKS = ("a" * 1500) + "\n\n" + ("b" * 1500)


def answer(
    engine: Engine, message_id: str, outcome: AttemptOutcome, *, seq: int = 1, after: float = 0
) -> None:
    """One attempt at a chunk of the message, answered with ``outcome``, as a worker
    records it: accepted moves the message on, permanent kills it, lost is closed as lost."""
    with session_scope(engine) as db:
        message = db.get_one(Message, int(message_id))
        chunk = db.scalars(
            select(Chunk).where(Chunk.message_id == message.id, Chunk.seq == seq)
        ).one()
        number = chunk.attempt_count + 1
        chunk.attempt_count = number
        attempt_id = ledger_attempts.start(
            db, chunk_id=chunk.id, attempt_no=number, context_token=None, host="t", now=NOW
        )
        if outcome == AttemptOutcome.LOST:
            ledger_attempts.close_lost(db, chunk.id)
        elif outcome != AttemptOutcome.IN_FLIGHT:
            result = ledger_attempts.AttemptResult(outcome, "test", None, duration_ms=5)
            ledger_attempts.record(db, attempt_id, result)
        if outcome == AttemptOutcome.ACCEPTED:
            accept_chunk(db, chunk.id, now=message.created_at + dt.timedelta(seconds=after))
        elif outcome == AttemptOutcome.PERMANENT:
            outbox.kill(db, message.id, reason="permanent", now=NOW, failed_chunk_id=chunk.id)


def recount(engine: Engine) -> tuple[dict[str, int], dict[str, int], list[float]]:
    """Final messages by status, attempts by outcome, and the delivered latencies, from the rows."""
    with session_scope(engine, readonly=True) as db:
        final = [str(s) for s in FINAL_MESSAGE_STATES]
        messages = dict(
            db.execute(
                select(Message.status, func.count())
                .where(Message.status.in_(final))
                .group_by(Message.status)
            ).all()
        )
        attempts = dict(
            db.execute(select(Attempt.outcome, func.count()).group_by(Attempt.outcome)).all()
        )
        latencies = [
            (delivered - created).total_seconds()
            for created, delivered in db.execute(
                select(Message.created_at, Message.delivered_at).where(
                    Message.status == MessageStatus.DELIVERED
                )
            )
        ]
    return messages, attempts, latencies


def read(engine: Engine) -> LedgerStats:
    return SqlLedgerSource(engine).read()


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


@pytest.fixture
def mixed_ledger(ledger: Ledger, redis_db: RedisInfo) -> Ledger:
    """Seven messages that met every outcome, written by the ledger's verbs."""
    delivery.add_account("bot-1", token="tok-counters-0001-secret", base_url=BASE_URL)
    engine = ledger.engine
    quick = delivery.enqueue("bot-1", "u1@im.wechat", "quick")
    answer(engine, quick, AttemptOutcome.TRANSIENT)
    answer(engine, quick, AttemptOutcome.ACCEPTED, after=3)
    long = delivery.enqueue("bot-1", "u2@im.wechat", TWO_CHUNKS)
    answer(engine, long, AttemptOutcome.ACCEPTED, seq=1)
    answer(engine, long, AttemptOutcome.LOST, seq=2)
    answer(engine, long, AttemptOutcome.RATE_LIMITED, seq=2)
    answer(engine, long, AttemptOutcome.ACCEPTED, seq=2, after=700)
    refused = delivery.enqueue("bot-1", "u3@im.wechat", "refused")
    answer(engine, refused, AttemptOutcome.PERMANENT)
    delivery.enqueue("bot-1", "u4@im.wechat", "old score", collapse_key="score")
    delivery.enqueue("bot-1", "u4@im.wechat", "older score", collapse_key="other")
    delivery.enqueue("bot-1", "u4@im.wechat", "new score", collapse_key="score")
    waiting = delivery.enqueue("bot-1", "u5@im.wechat", "on its way")
    answer(engine, waiting, AttemptOutcome.IN_FLIGHT)
    return ledger


def test_totals_equal_a_recount_after_every_kind_of_outcome(mixed_ledger: Ledger) -> None:
    # Given messages delivered, dead, superseded and open, and attempts of every kind
    # When the exporter reads the ledger
    stats = read(mixed_ledger.engine)

    # Then its totals are what a recount of the rows says
    messages, attempts, latencies = recount(mixed_ledger.engine)
    assert messages == {"delivered": 2, "dead": 1, "superseded": 1}
    final = {k: v for k, v in stats.messages.items() if k in FINAL_MESSAGE_STATES}
    assert nonzero(final) == messages
    assert stats.messages["queued"] == 3  # "older score", "new score" and the one in flight
    assert nonzero(dict(stats.attempts)) == attempts
    assert attempts[AttemptOutcome.IN_FLIGHT] == 1
    # and the latency histogram is the delivered messages' (3 s and 700 s)
    assert sorted(latencies) == [3, 700]
    assert stats.latency.count == 2
    assert stats.latency.sum_seconds == pytest.approx(703)
    for bound, cumulative in stats.latency.buckets:
        assert cumulative == sum(1 for s in latencies if s <= bound), bound


def test_pruning_old_rows_leaves_the_totals_as_they_were(mixed_ledger: Ledger) -> None:
    # Given the totals of a ledger with final messages
    before = read(mixed_ledger.engine)

    # When retention deletes every final message, with its chunks and attempts
    statuses = [MessageStatus(s) for s in FINAL_MESSAGE_STATES]
    pruned = 0
    while True:
        with session_scope(mixed_ledger.engine) as db:
            batch = prune_batch(db, before=NOW + dt.timedelta(days=1), statuses=statuses, limit=100)
        if not batch.messages:
            break
        pruned += batch.messages
    assert pruned == 4
    assert recount(mixed_ledger.engine)[0] == {}

    # Then the totals of all time are unchanged: they are counters, not a recount
    after = read(mixed_ledger.engine)
    assert after.messages == before.messages
    assert after.attempts == before.attempts
    assert after.latency == before.latency


def test_a_transaction_rolled_back_counts_nothing(ledger: Ledger, redis_db: RedisInfo) -> None:
    # Given a message, and a worker whose transaction fails after accepting it
    delivery.add_account("bot-1", token="tok-counters-0001-secret", base_url=BASE_URL)
    message_id = delivery.enqueue("bot-1", "u1@im.wechat", "hello")

    def die_before_the_commit() -> None:
        with session_scope(ledger.engine) as db:
            counters.add_delivered(db, latency_seconds=1.0)
            counters.add_attempts(db, AttemptOutcome.ACCEPTED)
            raise RuntimeError("the worker died before the commit")

    with pytest.raises(RuntimeError):
        die_before_the_commit()

    # Then nothing was counted; and the same accepted for real is counted once
    assert read(ledger.engine).messages["delivered"] == 0
    answer(ledger.engine, message_id, AttemptOutcome.ACCEPTED, after=2)
    stats = read(ledger.engine)
    assert stats.messages["delivered"] == 1
    assert stats.attempts["accepted"] == 1
    assert stats.latency.count == 1


def test_a_refusal_decided_later_counts_as_refused_and_as_what_it_was(
    ledger: Ledger, redis_db: RedisInfo
) -> None:
    # Given a bare refusal, recorded as refused
    delivery.add_account("bot-1", token="tok-counters-0001-secret", base_url=BASE_URL)
    message_id = delivery.enqueue("bot-1", "u1@im.wechat", "hello")
    answer(ledger.engine, message_id, AttemptOutcome.REFUSED)
    # When a probe decides it was the account's rate limit
    with session_scope(ledger.engine) as db:
        refused = list(db.scalars(select(Attempt.id)))
        ledger_attempts.reclassify(
            db, refused, outcome=AttemptOutcome.RATE_LIMITED, note="the account's limit"
        )

    # Then the row reads rate_limited, and the counters never go down: both count it
    assert recount(ledger.engine)[1] == {"rate_limited": 1}
    stats = read(ledger.engine)
    assert stats.attempts["refused"] == 1
    assert stats.attempts["rate_limited"] == 1


def test_concurrent_writers_lose_no_count(ledger: Ledger, redis_db: RedisInfo) -> None:
    # Given one chunk, and four workers each recording 25 answers in their own transactions
    delivery.add_account("bot-1", token="tok-counters-0001-secret", base_url=BASE_URL)
    message_id = delivery.enqueue("bot-1", "u1@im.wechat", "hello")
    engine = ledger.engine
    with session_scope(engine, readonly=True) as db:
        chunk_id = db.scalars(select(Chunk.id).where(Chunk.message_id == int(message_id))).one()
    errors: list[BaseException] = []
    go = threading.Barrier(4)

    def worker(number: int) -> None:
        try:
            go.wait(timeout=30)
            for i in range(25):
                with session_scope(engine) as db:
                    attempt_id = ledger_attempts.start(
                        db,
                        chunk_id=chunk_id,
                        attempt_no=number * 1000 + i,
                        context_token=None,
                        host=f"w{number}",
                        now=NOW,
                    )
                    result = ledger_attempts.AttemptResult(
                        AttemptOutcome.TRANSIENT, "test", None, duration_ms=1
                    )
                    ledger_attempts.record(db, attempt_id, result)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every answer is counted, as the rows say
    assert errors == []
    assert recount(engine)[1] == {"transient": 100}
    assert read(engine).attempts["transient"] == 100
