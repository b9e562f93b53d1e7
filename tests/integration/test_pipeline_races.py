"""Races the pipeline must survive, driven step by step on real Redis, SQL and HTTP.

The send pipeline runs in this process (two "tasks" for one chunk, in threads)
against the simulator, so the order of events can be forced.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import update

import delivery
from delivery import runtime
from delivery.errors import LedgerError
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk, Message
from delivery.ledger.types import utcnow
from delivery.pipeline.results import Done
from delivery.pipeline.send import SendPipeline
from delivery.ratelimit.gate import Pick
from delivery.simulator import Fault, PlatformSimulator
from delivery.worker.queues import SEND_QUEUE
from tests.conftest import Ledger, RedisInfo
from tests.integration.conftest import ACCOUNT, TOKEN
from tests.support.broker import published
from tests.support.inprocess import holder_of, in_process_pipeline, settle
from tests.support.waiting import wait_until

PEER = "o9cq80peer@im.wechat"


@pytest.fixture
def pipeline(
    sqlite_ledger: Ledger, redis_db: RedisInfo, bot_sim: PlatformSimulator
) -> SendPipeline:
    delivery.add_account(ACCOUNT, token=TOKEN, base_url=bot_sim.base_url)
    return in_process_pipeline(redis_db.url)


def chunk_ids(ledger: Ledger, message_id: str) -> list[int]:
    with session_scope(ledger.engine) as session:
        return [c.id for c in session.get(Message, int(message_id)).chunks]  # type: ignore[union-attr]


def test_a_deadline_passing_while_a_send_is_in_flight_waits_for_its_answer(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    # Given a two-chunk message whose first send the platform holds for a while
    text = "\n\n".join(f"part {i} " + "x" * 1500 for i in range(2))
    message_id = delivery.enqueue(ACCOUNT, PEER, text)
    first, second = chunk_ids(sqlite_ledger, message_id)
    bot_sim.model.queue_fault(Fault.hang(1.0, deliver=True), account_id=ACCOUNT)
    sending = threading.Thread(target=pipeline.process, args=(first,))
    sending.start()
    wait_until(
        lambda: bot_sim.model.snapshot().accounts[ACCOUNT].in_flight == 1,
        timeout=10,
        message="the send in flight",
    )

    # When the deadline passes and a duplicate task of the chunk runs meanwhile
    with session_scope(sqlite_ledger.engine) as session:
        session.execute(
            update(Message)
            .where(Message.id == int(message_id))
            .values(deadline_at=utcnow() - dt.timedelta(seconds=1))
        )
    duplicate = pipeline.process(first)
    sending.join(timeout=30)

    # Then the duplicate left the message to the send in flight (it waits in the line) ...
    assert isinstance(duplicate, Done) and "waits in the account's line" in duplicate.summary
    status = delivery.get_status(message_id)
    assert status.status == "sending"
    assert [c.status for c in status.chunks] == ["sent", "pending"]
    assert bot_sim.model.snapshot().counters.requests["sendmessage"] == 1
    # ... and the deadline now kills it cleanly, leaving the chat open for the next message
    assert "deadline" in settle(pipeline, second).summary
    dead = delivery.get_status(message_id)
    assert dead.status == "dead"
    assert [c.status for c in dead.chunks] == ["sent", "unsent"]
    nxt = delivery.enqueue(ACCOUNT, PEER, "the next message to this chat")
    [only] = chunk_ids(sqlite_ledger, nxt)
    assert "accepted" in settle(pipeline, only).summary


def test_a_committed_enqueue_never_raises_for_its_publish(
    sqlite_ledger: Ledger, redis_db: RedisInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a ledger that fails right after the message is committed
    delivery.add_account(ACCOUNT, token=TOKEN, base_url="http://127.0.0.1:9")

    def failing_wake(*args: object, **kwargs: object) -> None:
        raise LedgerError("the ledger at sqlite:///x failed: database is locked")

    monkeypatch.setattr("delivery.api.sending.wake_new_messages", failing_wake)

    # When a message is enqueued, it returns its id (a retry would duplicate it)
    message_id = delivery.enqueue(ACCOUNT, PEER, "committed, then the wake-up failed")

    # Then the message is queued for the reconciler to publish
    assert delivery.get_status(message_id).status == "queued"


def test_every_countdown_stays_under_half_the_visibility_timeout(
    sqlite_ledger: Ledger, redis_db: RedisInfo
) -> None:
    runtime.current().tasks(Pick(ticket="1", generation=1, in_seconds=10 * 86_400), ACCOUNT)

    [task] = published(redis_db.url, SEND_QUEUE)
    assert task.eta is not None
    eta = dt.datetime.fromisoformat(task.eta)
    limit = runtime.current().settings.max_countdown_seconds
    assert (eta - utcnow()).total_seconds() <= limit + 1


def test_a_chunk_with_a_backoff_recorded_is_not_sent_early_by_a_duplicate(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, sqlite_ledger: Ledger
) -> None:
    message_id = delivery.enqueue(ACCOUNT, PEER, "hello")
    [chunk] = chunk_ids(sqlite_ledger, message_id)
    with session_scope(sqlite_ledger.engine) as session:
        # as if another task of this chunk had just recorded a 5 s backoff
        session.execute(
            update(Chunk)
            .where(Chunk.id == chunk)
            .values(next_attempt_at=utcnow() + dt.timedelta(seconds=5))
        )

    result = pipeline.process(chunk)

    # Then it is not sent; it waits in its line, its slot reserved for when it is due
    assert isinstance(result, Done) and "not due yet" in result.summary
    assert bot_sim.model.snapshot().counters.requests.get("sendmessage", 0) == 0
    pick = pipeline._ctx.gate.kick(ACCOUNT)
    assert pick is None  # the slot is reserved already ...
    holder = holder_of(pipeline, ACCOUNT)
    assert holder is not None and holder.chunk_id == chunk  # ... for it, about 5 s out
