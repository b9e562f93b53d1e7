"""The enqueue API on both ledgers: what is written, what is refused, what is published."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select

import delivery
from delivery import errors, runtime
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk, Message, Reader
from delivery.pipeline.dispatch import SEND_TASK
from delivery.worker.queues import SEND_QUEUE
from tests.conftest import Ledger, RedisInfo
from tests.integration.conftest import ACCOUNT
from tests.support.broker import published

PEER = "o9cq80abc@im.wechat"


def counts(ledger: Ledger) -> tuple[int, int]:
    with session_scope(ledger.engine) as session:
        messages = session.scalar(select(func.count()).select_from(Message))
        chunks = session.scalar(select(func.count()).select_from(Chunk))
    return messages or 0, chunks or 0


def test_enqueue_writes_a_queued_message_with_fixed_client_ids(
    account: str, ledger: Ledger
) -> None:
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 150 for i in range(8))

    message_id = delivery.enqueue(account, PEER, text)

    status = delivery.get_status(message_id)
    assert status.status == "queued"
    assert status.account_id == account and status.to_user_id == PEER
    assert len(status.chunks) > 1
    assert [c.seq for c in status.chunks] == list(range(1, len(status.chunks) + 1))
    assert all(c.status == "pending" and c.chars <= 2000 for c in status.chunks)
    assert len({c.client_id for c in status.chunks}) == len(status.chunks)
    assert status.deadline_at > status.created_at


def test_same_idempotency_key_returns_the_first_message(account: str, ledger: Ledger) -> None:
    first = delivery.enqueue(account, PEER, "hello", idempotency_key="brief-2026-11-24")
    before = counts(ledger)

    second = delivery.enqueue(account, PEER, "hello again", idempotency_key="brief-2026-11-24")

    assert second == first
    assert counts(ledger) == before


def test_same_key_on_another_account_is_another_message(ledger: Ledger, account: str) -> None:
    delivery.add_account("bot-2", token="tok-secret-0002", base_url="http://127.0.0.1:9")
    first = delivery.enqueue(account, PEER, "hello", idempotency_key="k")
    assert delivery.enqueue("bot-2", PEER, "hello", idempotency_key="k") != first


def test_two_threads_racing_with_one_key_make_one_message(account: str, ledger: Ledger) -> None:
    for round_no in range(5):
        barrier = threading.Barrier(2)
        results: list[str] = []
        failures: list[BaseException] = []

        def racer(
            barrier: threading.Barrier = barrier,
            key: str = f"race-{round_no}",
            results: list[str] = results,
            failures: list[BaseException] = failures,
        ) -> None:
            barrier.wait()
            try:
                results.append(delivery.enqueue(account, PEER, "same", idempotency_key=key))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=racer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert failures == []
        assert len(results) == 2 and results[0] == results[1]
    assert counts(ledger)[0] == 5


def test_batch_writes_all_in_one_go_and_keys_repeat_inside_it(account: str, ledger: Ledger) -> None:
    batch = [
        delivery.OutboundMessage(account, f"user{i}@im.wechat", f"Leaderboard line {i}")
        for i in range(20)
    ]
    batch.append(delivery.OutboundMessage(account, PEER, "keyed", idempotency_key="k1"))
    batch.append(delivery.OutboundMessage(account, PEER, "keyed", idempotency_key="k1"))

    ids = delivery.enqueue_many(batch)

    assert len(ids) == 22 and ids[-1] == ids[-2]
    assert counts(ledger) == (21, 21)


def test_a_bad_message_refuses_the_whole_batch(account: str, ledger: Ledger) -> None:
    batch = [
        delivery.OutboundMessage(account, PEER, "fine"),
        delivery.OutboundMessage(account, PEER, "   "),
    ]
    with pytest.raises(errors.InvalidText, match="message 1: text is only whitespace"):
        delivery.enqueue_many(batch)
    assert counts(ledger) == (0, 0)


def test_an_unknown_account_in_a_batch_writes_nothing(account: str, ledger: Ledger) -> None:
    batch = [
        delivery.OutboundMessage(account, PEER, "fine"),
        delivery.OutboundMessage("nobody", PEER, "fine"),
    ]
    with pytest.raises(errors.UnknownAccount, match="unknown account 'nobody'"):
        delivery.enqueue_many(batch)
    assert counts(ledger) == (0, 0)


def test_status_of_unknown_or_malformed_ids(account: str, ledger: Ledger) -> None:
    with pytest.raises(errors.MessageNotFound, match="no message with id 999"):
        delivery.get_status("999")
    with pytest.raises(errors.InvalidMessageId):
        delivery.get_status("abc")


def test_context_token_is_kept_as_the_peers_latest(account: str, ledger: Ledger) -> None:
    delivery.enqueue(account, PEER, "one", context_token="ctx-1")
    delivery.record_inbound(account, PEER, context_token="ctx-2")
    with session_scope(ledger.engine) as session:
        row = session.get(Reader, (account, PEER))
        assert row is not None and row.context_token == "ctx-2"


def test_record_context_token_still_works_and_says_it_is_deprecated(
    account: str, ledger: Ledger
) -> None:
    with pytest.warns(DeprecationWarning, match="record_inbound"):
        delivery.record_context_token(account, PEER, "ctx-3")
    with session_scope(ledger.engine) as session:
        row = session.get(Reader, (account, PEER))
        assert row is not None and row.context_token == "ctx-3"
        assert row.last_inbound_at is not None  # a token comes with an inbound message


def chunk_ids(ledger: Ledger, message_id: str) -> list[int]:
    with session_scope(ledger.engine) as session:
        return list(
            session.scalars(
                select(Chunk.id).where(Chunk.message_id == int(message_id)).order_by(Chunk.seq)
            )
        )


def test_publish_after_commit_carries_the_chunk_id_only(
    account: str, ledger: Ledger, redis_db: RedisInfo
) -> None:
    message_id = delivery.enqueue(account, PEER, "secret text that must not travel")

    tasks = published(redis_db.url, SEND_QUEUE)

    first_chunk = delivery.get_status(message_id)
    assert len(tasks) == 1
    assert tasks[0].task == SEND_TASK
    with session_scope(ledger.engine) as session:
        chunk_id = session.scalar(select(Chunk.id).where(Chunk.message_id == int(message_id)))
    # chunk, generation and the account's line: ids only
    assert tasks[0].args == [chunk_id, 1, ACCOUNT] and tasks[0].kwargs == {}
    assert "secret text" not in tasks[0].raw and "tok-secret" not in tasks[0].raw
    assert first_chunk.status == "queued"


def test_one_task_per_account_slot_and_a_message_behind_an_open_one_waits_outside_the_line(
    account: str, ledger: Ledger, redis_db: RedisInfo
) -> None:
    first = delivery.enqueue(account, PEER, "first")
    second = delivery.enqueue(account, PEER, "second, waits for the first")
    other = delivery.enqueue(account, "other@im.wechat", "another chat goes after it")

    # One task: the account's next slot is the first message's; the other chat's head
    # waits in the account's line without a task; the second message is not a head yet
    assert len(published(redis_db.url, SEND_QUEUE)) == 1
    gate = runtime.current().gate
    heads = {m: chunk_ids(ledger, m)[0] for m in (first, second, other)}
    assert gate.in_line(account, {str(c) for c in heads.values()}) == {
        str(heads[first]),
        str(heads[other]),
    }


def test_a_broker_that_is_down_loses_nothing(
    account: str, ledger: Ledger, redis_db: RedisInfo
) -> None:
    # A real process with a broker URL where nothing listens.
    env = dict(
        os.environ, DELIVERY_BROKER_URL="redis://127.0.0.1:1/0", DELIVERY_DATABASE_URL=ledger.url
    )
    script = (
        f"import delivery; print(delivery.enqueue({ACCOUNT!r}, {PEER!r}, 'kept in the ledger'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    message_id = done.stdout.strip()
    assert delivery.get_status(message_id).status == "queued"
    assert "could not publish" in done.stderr and "reconciler" in done.stderr


def test_a_broker_that_is_down_is_tried_once_per_batch_not_once_per_chat(
    account: str, ledger: Ledger, redis_db: RedisInfo
) -> None:
    # Given a broker where nothing listens, and 20 messages to 20 chats (each a head)
    env = dict(
        os.environ, DELIVERY_BROKER_URL="redis://127.0.0.1:1/0", DELIVERY_DATABASE_URL=ledger.url
    )
    script = (
        "import delivery\n"
        f"ids = delivery.enqueue_many(delivery.OutboundMessage({ACCOUNT!r}, f'u{{n}}@im.wechat',"
        " 'kept in the ledger') for n in range(20))\n"
        "print(' '.join(ids))"
    )

    # When they are enqueued
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )

    # Then one publish was tried (the account's next slot; the other 19 wait in its line),
    # and all are queued
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("could not publish") == 1
    assert {delivery.get_status(m).status for m in done.stdout.split()} == {"queued"}
