"""The outbox's leases and the reconciler, on SQLite and PostgreSQL.

Given / When / Then against the real ledger; publishing goes to a recording
publisher, so what the reconciler would hand the broker is what is asserted.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

import delivery
from delivery.ledger import outbox, queries
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Chunk, Message
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import send_task_id
from delivery.pipeline.reconcile import reconcile
from tests.conftest import Ledger
from tests.support.inprocess import Published

PEER = "o9cq80peer@im.wechat"
GRACE = 2.0


def head_of(ledger: Ledger, message_id: str) -> Chunk:
    with session_scope(ledger.engine) as db:
        chunk = db.scalars(
            select(Chunk)
            .where(Chunk.message_id == int(message_id), Chunk.status == "pending")
            .order_by(Chunk.seq)
        ).first()
        assert chunk is not None
        return chunk


def age(ledger: Ledger, chunk_id: int, *, seconds: float) -> None:
    """As if the chunk's task had last shown life ``seconds`` ago."""
    past = utcnow() - dt.timedelta(seconds=seconds)
    with session_scope(ledger.engine) as db:
        db.execute(
            update(Chunk).where(Chunk.id == chunk_id).values(next_attempt_at=past, lease_until=past)
        )


def test_every_publish_is_a_new_generation(account: str, ledger: Ledger) -> None:
    # Given an enqueued message (its publish armed generation 1)
    message_id = delivery.enqueue(account, PEER, "hello")
    chunk = head_of(ledger, message_id)
    assert chunk.generation == 1

    # When it is armed again
    with session_scope(ledger.engine) as db:
        [armed] = outbox.arm(db, [chunk.id], now=utcnow())

    # Then its task carries generation 2, and a postpone by generation 1 is refused
    assert armed.generation == 2
    with session_scope(ledger.engine) as db:
        now = utcnow()
        stale = outbox.postpone(db, chunk.id, generation=1, until=now)
        live = outbox.postpone(db, chunk.id, generation=2, until=now)
    assert (stale, live) == (False, True)


def test_a_lost_head_is_published_again_once(account: str, ledger: Ledger) -> None:
    # Given a head whose task showed no life for longer than the grace
    message_id = delivery.enqueue(account, PEER, "hello")
    chunk = head_of(ledger, message_id)
    age(ledger, chunk.id, seconds=3 * GRACE)
    publisher = Published()

    # When the reconciler runs twice
    first = reconcile(ledger.engine, publisher, grace_seconds=GRACE)
    second = reconcile(ledger.engine, publisher, grace_seconds=GRACE)

    # Then it was published once, with a new generation, and the second run left it alone
    assert (first.published, second.published) == (1, 0)
    assert [(a.chunk_id, a.generation) for a in publisher.armed] == [(chunk.id, 2)]


def test_a_late_task_waiting_in_the_queue_is_not_twinned(account: str, ledger: Ledger) -> None:
    # Given a head overdue for longer than the grace, whose task still waits in the queue
    message_id = delivery.enqueue(account, PEER, "hello")
    chunk = head_of(ledger, message_id)
    age(ledger, chunk.id, seconds=3 * GRACE)
    queued = {send_task_id(chunk.id, chunk.generation)}
    publisher = Published()

    # When the reconciler runs
    done = reconcile(
        ledger.engine, publisher, grace_seconds=GRACE, presence=lambda ids: queued & set(ids)
    )

    # Then nothing is published, and the lease is renewed: the next run leaves it alone
    assert (done.published, done.late) == (0, 1)
    assert publisher.armed == []
    again = reconcile(ledger.engine, publisher, grace_seconds=GRACE, presence=lambda ids: set())
    assert (again.published, again.late) == (0, 0)


def test_a_waiting_chunk_is_not_lost(account: str, ledger: Ledger) -> None:
    # Given a head whose live task waits for a cooldown that ends in an hour
    message_id = delivery.enqueue(account, PEER, "hello")
    chunk = head_of(ledger, message_id)
    with session_scope(ledger.engine) as db:
        outbox.postpone(
            db, chunk.id, generation=chunk.generation, until=utcnow() + dt.timedelta(hours=1)
        )
    publisher = Published()

    # When the reconciler runs
    reconcile(ledger.engine, publisher, grace_seconds=GRACE)

    # Then the chunk is left to its task
    assert publisher.armed == []


def test_a_parked_head_is_woken_by_the_reconciler_once_its_session_is_good(
    account: str, ledger: Ledger
) -> None:
    # Given an account whose session is expired, so its new message is parked at once
    with session_scope(ledger.engine) as db:
        db.execute(update(Account).values(session_state="expired"))
    message_id = delivery.enqueue(account, PEER, "hello")
    chunk = head_of(ledger, message_id)
    assert (chunk.parked_on, chunk.generation) == ("session", 0)
    with session_scope(ledger.engine) as db:  # the enqueue's wake leaves it to its event
        assert outbox.arm_new_heads(db, {int(message_id): (account, PEER)}, now=utcnow()) == []
    publisher = Published()

    # When the reconciler runs while the session is still expired
    assert reconcile(ledger.engine, publisher, grace_seconds=GRACE).published == 0

    # And again after the session was marked good (the heal's own wake was lost)
    with session_scope(ledger.engine) as db:
        db.execute(update(Account).values(session_state="ok"))
    done = reconcile(ledger.engine, publisher, grace_seconds=GRACE)

    # Then only the second run published it, unparked
    assert (done.published, done.unparked) == (1, 1)
    assert head_of(ledger, message_id).parked_on is None


def test_an_open_message_with_nothing_pending_is_closed_and_its_chat_moves_on(
    account: str, ledger: Ledger
) -> None:
    # Given a message whose only chunk was accepted while it stayed open, and one behind it
    stuck = delivery.enqueue(account, PEER, "accepted, never closed")
    behind = delivery.enqueue(account, PEER, "the next one")
    with session_scope(ledger.engine) as db:
        db.execute(update(Chunk).where(Chunk.message_id == int(stuck)).values(status="sent"))
    publisher = Published()

    # When the reconciler runs
    done = reconcile(ledger.engine, publisher, grace_seconds=GRACE)

    # Then the stuck message is delivered and the next one is published
    assert done.closed == 1
    assert delivery.get_status(stuck).status == "delivered"
    assert [a.chunk_id for a in publisher.armed] == [head_of(ledger, behind).id]


def test_messages_of_a_chat_behind_a_head_are_never_lost_heads(
    account: str, ledger: Ledger
) -> None:
    # Given two messages to one chat, both long overdue
    first = delivery.enqueue(account, PEER, "first")
    second = delivery.enqueue(account, PEER, "second")
    for message_id in (first, second):
        age(ledger, head_of(ledger, message_id).id, seconds=3 * GRACE)
    publisher = Published()

    # When the reconciler runs, then only the head is published
    reconcile(ledger.engine, publisher, grace_seconds=GRACE)
    assert [a.chunk_id for a in publisher.armed] == [head_of(ledger, first).id]
    with session_scope(ledger.engine) as db:
        assert db.scalar(select(Message.status).where(Message.id == int(second))) == "queued"


def test_a_chunk_parked_at_enqueue_is_due_at_once_when_its_chat_reaches_it(
    account: str, ledger: Ledger
) -> None:
    # Given a message in progress, and one behind it parked at enqueue (expired session)
    first = delivery.enqueue(account, PEER, "in progress")
    with session_scope(ledger.engine) as db:
        db.execute(update(Account).values(session_state="expired"))
    behind = delivery.enqueue(account, PEER, "parked while the session was expired")
    with session_scope(ledger.engine) as db:
        db.execute(update(Account).values(session_state="ok"))
        db.execute(update(Chunk).where(Chunk.message_id == int(first)).values(status="sent"))
        db.execute(update(Message).where(Message.id == int(first)).values(status="delivered"))

    # When the chat moves on to it (the first message ended)
    with session_scope(ledger.engine) as db:
        [armed] = outbox.arm_conversations(db, [(account, PEER)], now=utcnow())

    # Then it is due now, not at the deadline it was parked until
    assert armed.chunk_id == head_of(ledger, behind).id
    assert armed.countdown_seconds == 0


def test_the_claim_knows_what_stands_before_a_chunk(account: str, ledger: Ledger) -> None:
    # Given an old dead message, then two messages to one chat, the first of two chunks
    old = delivery.enqueue(account, PEER, "old, dead")
    with session_scope(ledger.engine) as db:
        outbox.kill(db, int(old), reason="refused", now=utcnow())
    first = delivery.enqueue(account, PEER, "\n\n".join("x" * 1500 for _ in range(2)))
    second = delivery.enqueue(account, PEER, "later")
    one, two = (c.id for c in chunks_of(ledger, first))
    [later] = (c.id for c in chunks_of(ledger, second))
    [revived] = (c.id for c in chunks_of(ledger, old))

    def before(chunk_id: int) -> int | None:
        with session_scope(ledger.engine) as db:
            chunk = db.get(Chunk, chunk_id)
            assert chunk is not None
            message = chunk.message
            return queries.blocker(
                db,
                account_id=message.account_id,
                to_user_id=message.to_user_id,
                message_id=message.id,
                sending=message.status == "sending",
                seq=chunk.seq,
            )

    # Then the first chunk is the head; its second part waits for it; the later message
    # waits for the first
    assert before(one) is None
    assert before(two) == int(first)
    assert before(later) == int(first)

    # When the first is sending and the older dead message is replayed (queued again)
    with session_scope(ledger.engine) as db:
        db.execute(update(Message).where(Message.id == int(first)).values(status="sending"))
        db.execute(update(Chunk).where(Chunk.id == one).values(status="sent"))
        outbox.replay(db, int(old), now=utcnow(), deadline=utcnow() + dt.timedelta(hours=1))

    # Then the sending message stays the head: the replayed one waits behind it
    assert before(two) is None
    assert before(revived) == int(first)
    assert before(later) == int(first)


def chunks_of(ledger: Ledger, message_id: str) -> list[Chunk]:
    with session_scope(ledger.engine) as db:
        return list(
            db.scalars(select(Chunk).where(Chunk.message_id == int(message_id)).order_by(Chunk.seq))
        )


def test_an_enqueue_arms_only_the_new_messages_that_head_their_chat(
    account: str, ledger: Ledger
) -> None:
    # Given a chat with a message sending, and one chat with nothing open
    busy, idle = "busy@im.wechat", "idle@im.wechat"
    sending = delivery.enqueue(account, busy, "in progress")
    with session_scope(ledger.engine) as db:
        db.execute(update(Message).where(Message.id == int(sending)).values(status="sending"))

    # When a batch brings two messages to each chat
    batch = delivery.enqueue_many(
        delivery.OutboundMessage(account, peer, f"{peer} {n}")
        for n in range(2)
        for peer in (busy, idle)
    )
    new = {int(m): (account, peer) for m, peer in zip(batch, [busy, idle] * 2, strict=True)}
    with session_scope(ledger.engine) as db:
        armed = outbox.arm_new_heads(db, new, now=utcnow())

    # Then only the idle chat's first message is armed, due now, a generation up
    [first_idle] = chunks_of(ledger, batch[1])
    assert [(a.chunk_id, a.generation, a.countdown_seconds) for a in armed] == [
        (first_idle.id, 2, 0.0)
    ]

    # ... and once the busy chat's message has ended, its next message is the head
    with session_scope(ledger.engine) as db:
        db.execute(update(Message).where(Message.id == int(sending)).values(status="delivered"))
        db.execute(update(Chunk).where(Chunk.message_id == int(sending)).values(status="sent"))
        [armed_busy] = outbox.arm_new_heads(db, {int(batch[0]): (account, busy)}, now=utcnow())
    assert armed_busy.chunk_id == chunks_of(ledger, batch[0])[0].id
