"""The review's outbox findings, each forced step by step in this process.

The pipeline runs in the test's process against the real ledger (SQLite and
PostgreSQL), real Redis and the HTTP simulator; the broker is replaced by a
recording publisher so the test drives each task run itself and can force the
order of events. Faults of the ledger are injected with SQLAlchemy's cursor
events on the real engine.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select, update
from sqlalchemy import exc as sa_exc

import delivery
from delivery.cli import cli
from delivery.errors import NotReplayable
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk, Message
from delivery.ledger.types import utcnow
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.pipeline.send import SendPipeline
from delivery.simulator import Fault, PlatformSimulator
from tests.conftest import Ledger, RedisInfo
from tests.integration.conftest import ACCOUNT, TOKEN
from tests.support.configure import Configure
from tests.support.inprocess import Published, in_process_pipeline, settle
from tests.support.waiting import wait_until

PEER = "o9cq80peer@im.wechat"
TWO_CHUNKS = "\n\n".join(f"part {i} " + "x" * 1500 for i in range(2))


@pytest.fixture
def publisher() -> Published:
    return Published()


@pytest.fixture
def pipeline(
    ledger: Ledger,
    redis_db: RedisInfo,
    bot_sim: PlatformSimulator,
    publisher: Published,
    configure: Configure,
) -> SendPipeline:
    # A short lock keeps the outcome's retries short; no gap between chunks.
    configure(
        send_lock_ttl_seconds=5,
        http_timeout_seconds=2,
        chunk_gap_seconds=0,
        chunk_gap_base_seconds=0,
        chunk_gap_per_chunk_seconds=0,
    )
    delivery.add_account(ACCOUNT, token=TOKEN, base_url=bot_sim.base_url)
    return in_process_pipeline(redis_db.url, publisher=publisher)


def chunk_ids(ledger: Ledger, message_id: str) -> list[int]:
    with session_scope(ledger.engine) as db:
        return list(
            db.scalars(
                select(Chunk.id).where(Chunk.message_id == int(message_id)).order_by(Chunk.seq)
            )
        )


def sends(simulator: PlatformSimulator) -> int:
    return simulator.model.snapshot().counters.requests.get("sendmessage", 0)


def run(pipeline: SendPipeline, chunk_id: int) -> StepResult:
    """One task run, with the generation the chunk's live task carries."""
    with session_scope(pipeline._ctx.engine) as db:
        generation = db.scalar(select(Chunk.generation).where(Chunk.id == chunk_id))
    return pipeline.process(chunk_id, generation)


def drain(pipeline: SendPipeline, publisher: Published, *, timeout: float = 30) -> None:
    """Be the broker: run every published task, honouring countdowns, until none is left
    (and each chunk offered to a line the test's publisher kept, as a task of its own)."""
    deadline = time.monotonic() + timeout
    while publisher.tasks or publisher.armed:
        assert time.monotonic() < deadline, "tasks kept coming"
        if publisher.tasks:
            task = publisher.tasks.pop(0)
            time.sleep(min(task.countdown_seconds, 1.0))
            result = pipeline.process(task.chunk_id, task.generation, task.account_id)
            again: Callable[[], None] = lambda task=task: publisher.tasks.append(task)  # noqa: E731
        else:
            armed = publisher.armed.pop(0)
            result = pipeline.process(armed.chunk_id, armed.generation)
            again = lambda armed=armed: publisher.armed.append(armed)  # noqa: E731
        if isinstance(result, Wait):
            time.sleep(min(result.seconds, 1.0))  # the countdown the task asked the broker for
            again()


@contextmanager
def failing(
    ledger: Ledger, starts_with: str, *, times: int, error: Callable[[str], Exception]
) -> Iterator[dict[str, int]]:
    """The next ``times`` statements starting with ``starts_with`` fail with ``error``."""
    left = {"n": times}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(starts_with) and left["n"] > 0:
            left["n"] -= 1
            raise error(statement)

    event.listen(ledger.engine, "before_cursor_execute", before)
    try:
        yield left
    finally:
        event.remove(ledger.engine, "before_cursor_execute", before)


def ledger_gone(statement: str) -> Exception:
    return sa_exc.OperationalError(
        statement, None, Exception("server closed the connection unexpectedly")
    )


def refused_value(statement: str) -> Exception:
    return sa_exc.DataError(statement, None, Exception("value out of range for type integer"))


# -- finding 1: a task that is no longer its chunk's live task ends, never a twin ----------


def test_a_stale_task_of_a_waiting_chunk_exits_instead_of_waiting(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a chunk armed again (generation up) whose live task waits an hour
    [chunk_id] = chunk_ids(ledger, delivery.enqueue(ACCOUNT, PEER, "hello"))
    with session_scope(ledger.engine) as db:
        [live] = outbox.arm(db, [chunk_id], now=utcnow())
        assert outbox.postpone(
            db, chunk_id, generation=live.generation, until=utcnow() + dt.timedelta(hours=1)
        )

    # When the task of the generation before runs, then it ends instead of waiting too
    stale = pipeline.process(chunk_id, live.generation - 1)
    assert isinstance(stale, Done) and "newer task" in stale.summary, stale
    assert sends(bot_sim) == 0


def test_a_task_armed_over_between_its_look_and_its_claim_does_not_send(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a chunk due now, and its live task
    [chunk_id] = chunk_ids(ledger, delivery.enqueue(ACCOUNT, PEER, "hello"))
    with session_scope(ledger.engine) as db:
        generation = db.scalar(select(Chunk.generation).where(Chunk.id == chunk_id))
    rearmed = threading.Event()

    def rearm_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # right after the task's first look: the reconciler publishes the chunk again
        if not rearmed.is_set() and "JOIN accounts" in statement:
            rearmed.set()
            with session_scope(ledger.engine) as db:
                outbox.arm(db, [chunk_id], now=utcnow())

    # When the chunk is armed over while that task runs
    event.listen(ledger.engine, "after_cursor_execute", rearm_once)
    try:
        stale = pipeline.process(chunk_id, generation)
    finally:
        event.remove(ledger.engine, "after_cursor_execute", rearm_once)
    assert rearmed.is_set()

    # Then the claim turns that task away, and the new task sends the chunk once
    assert isinstance(stale, Done) and sends(bot_sim) == 0, stale
    assert isinstance(settle(pipeline, chunk_id), Done)
    assert sends(bot_sim) == 1


# -- finding 2: a known answer is never thrown away ------------------------------------------


def test_an_accepted_answer_survives_a_ledger_that_stays_away(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a message, and a ledger that refuses every write of the answer for a while
    message_id = delivery.enqueue(ACCOUNT, PEER, "hello")
    [chunk] = chunk_ids(ledger, message_id)

    # When the chunk is sent and its answer cannot be recorded
    with failing(ledger, "UPDATE ATTEMPTS", times=100, error=ledger_gone):
        first = run(pipeline, chunk)
    assert isinstance(first, Wait)
    assert sends(bot_sim) == 1

    # And the task runs again once the ledger is back
    second = settle(pipeline, chunk)

    # Then the kept answer is recorded: no second send, delivered, one accepted attempt
    assert isinstance(second, Done)
    assert sends(bot_sim) == 1
    assert delivery.get_status(message_id).status == "delivered"
    assert [a.outcome for a in delivery.get_attempts(message_id)] == ["accepted"]


def test_an_answer_is_recorded_when_the_ledger_comes_back_within_the_send(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    message_id = delivery.enqueue(ACCOUNT, PEER, "hello")
    [chunk] = chunk_ids(ledger, message_id)

    with failing(ledger, "UPDATE ATTEMPTS", times=2, error=ledger_gone):
        result = run(pipeline, chunk)

    assert isinstance(result, Done)
    assert sends(bot_sim) == 1
    assert delivery.get_status(message_id).status == "delivered"


# -- finding 3: an odd answer is cleaned, and any error after the call is a failure ----------


def test_an_answer_with_nul_and_a_huge_ret_is_stored_cleaned_and_ends_the_chunk(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a platform that answers with a NUL in errmsg and a ret beyond 32 bits
    message_id = delivery.enqueue(ACCOUNT, PEER, "hello")
    [chunk] = chunk_ids(ledger, message_id)
    bot_sim.model.queue_fault(Fault.answer(ret=2**40, errmsg="bad\x00thing"))

    # When the chunk is sent
    result = run(pipeline, chunk)

    # Then the refusal is recorded (cleaned, clamped, the raw value in the detail) and final
    assert isinstance(result, Done)
    status = delivery.get_status(message_id)
    assert status.status == "dead" and "refused" in (status.dead_reason or "")
    [attempt] = delivery.get_attempts(message_id)
    assert attempt.outcome == "permanent"
    assert attempt.errmsg == "badthing"
    assert attempt.ret == 2**31 - 1
    assert "1099511627776 out of range" in (attempt.detail or "")
    assert sends(bot_sim) == 1


def test_an_error_while_recording_is_a_budgeted_failure_not_a_loop(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a ledger that refuses the answer's values once (not a connectivity error)
    message_id = delivery.enqueue(ACCOUNT, PEER, "hello")
    [chunk] = chunk_ids(ledger, message_id)

    # When the chunk is sent
    with failing(ledger, "UPDATE ATTEMPTS", times=1, error=refused_value):
        result = run(pipeline, chunk)

    # Then the attempt is a transient failure saying why, one unit of budget spent; the
    # chunk waits its backoff in the account's line
    assert "transient -> back_off" in result.summary
    [attempt] = delivery.get_attempts(message_id)
    assert attempt.outcome == "transient"
    assert "could not be recorded" in (attempt.detail or "")
    [info] = delivery.get_status(message_id).chunks
    assert (info.status, info.failures) == ("pending", 1)


# -- finding 4: a replay never stalls a chat ---------------------------------------------------


def test_a_late_accept_of_a_killed_message_delivers_it_and_its_chat_moves_on(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger, publisher: Published
) -> None:
    # Given a one-chunk message whose send the platform holds (and then delivers)
    message_id = delivery.enqueue(ACCOUNT, PEER, "slow one")
    [chunk] = chunk_ids(ledger, message_id)
    bot_sim.model.queue_fault(Fault.hang(1.0, deliver=True), account_id=ACCOUNT)
    sending = threading.Thread(target=run, args=(pipeline, chunk))
    sending.start()
    wait_until(
        lambda: bot_sim.model.snapshot().accounts[ACCOUNT].in_flight == 1,
        timeout=10,
        message="the send in flight",
    )

    # When it dies meanwhile (its deadline, found by a task that ran after the lock's TTL)
    with session_scope(ledger.engine) as db:
        assert outbox.kill(db, int(message_id), reason="deadline", now=utcnow()) == 1
    assert delivery.get_status(message_id).status == "dead"
    sending.join(timeout=30)

    # Then the late acceptance delivered it after all, and a replay says so
    assert delivery.get_status(message_id).status == "delivered"
    with pytest.raises(NotReplayable, match="delivered"):
        delivery.replay(message_id)

    # And the chat's next message goes
    following = delivery.enqueue(ACCOUNT, PEER, "the next message to this chat")
    assert "accepted" in settle(pipeline, chunk_ids(ledger, following)[0]).summary


def test_a_replay_of_a_dead_message_with_nothing_left_marks_it_delivered(
    pipeline: SendPipeline, ledger: Ledger
) -> None:
    # Given a dead message every chunk of which the platform had accepted
    message_id = delivery.enqueue(ACCOUNT, PEER, TWO_CHUNKS)
    with session_scope(ledger.engine) as db:
        db.execute(update(Chunk).values(status="sent"))
        db.execute(update(Message).values(status="dead", dead_reason="deadline"))

    # When it is replayed, then it is refused with the reason, and marked delivered
    with pytest.raises(NotReplayable, match="nothing left to send"):
        delivery.replay(message_id)
    assert delivery.get_status(message_id).status == "delivered"

    # And the chat is not stuck behind it
    following = delivery.enqueue(ACCOUNT, PEER, "next")
    assert "accepted" in settle(pipeline, chunk_ids(ledger, following)[0]).summary


# -- finding 5: a replay and a send with an old snapshot never interleave --------------------


def test_a_replay_between_a_tasks_look_and_its_send_does_not_interleave_two_messages(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger, publisher: Published
) -> None:
    # Given OLD, dead after its first chunk was refused, and NEW queued behind it
    old = delivery.enqueue(ACCOUNT, PEER, TWO_CHUNKS.replace("part", "old"))
    bot_sim.model.queue_fault(Fault.answer(ret=-100, errmsg="refused"), account_id=ACCOUNT)
    settle(pipeline, chunk_ids(ledger, old)[0])
    assert delivery.get_status(old).status == "dead"
    new = delivery.enqueue(ACCOUNT, PEER, TWO_CHUNKS.replace("part", "new"))
    new_first = chunk_ids(ledger, new)[0]

    # When OLD is replayed right after NEW's first task has read its snapshot
    replayed = threading.Event()

    def replay_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # right after the task's first look: its snapshot of chunk, message and account
        if not replayed.is_set() and "JOIN accounts" in statement:
            replayed.set()
            delivery.replay(old)

    event.listen(ledger.engine, "after_cursor_execute", replay_once)
    try:
        stale_look = pipeline.process(new_first, None)
    finally:
        event.remove(ledger.engine, "after_cursor_execute", replay_once)
    assert replayed.is_set()

    # Then that task steps aside, and the chat receives OLD whole, then NEW whole
    assert isinstance(stale_look, Done) and "waits behind" in stale_look.summary
    settle(pipeline, chunk_ids(ledger, old)[0])  # the replay's own task
    drain(pipeline, publisher)
    texts = [m.text.split(" ")[0] for m in bot_sim.model.snapshot().messages[PEER]]
    assert texts == ["old", "old", "new", "new"]


# -- the platform's message id --------------------------------------------------------------


def test_an_accepted_attempt_keeps_the_platforms_message_id_and_show_prints_it(
    pipeline: SendPipeline, bot_sim: PlatformSimulator, ledger: Ledger
) -> None:
    # Given a message the platform accepts, answering with a message_id past 2**53
    message_id = delivery.enqueue(ACCOUNT, PEER, "hello")

    # When it is sent
    settle(pipeline, chunk_ids(ledger, message_id)[0])

    # Then the attempt row keeps the id digit for digit, and `delivery show` prints it
    [attempt] = delivery.get_attempts(message_id)
    assert attempt.platform_message_id is not None
    assert int(attempt.platform_message_id) > 2**53
    shown = CliRunner().invoke(cli, ["show", message_id])
    assert shown.exit_code == 0 and attempt.platform_message_id in shown.output
