"""The outbox: the one module that writes ``messages`` and ``chunks``.

Callers say what happened (a message was enqueued, a head is about to be
published, a task waits, a chunk was accepted, a message died, an operator
replays it); this module decides which columns change. Every function takes the
caller's ``Session`` and never commits: the caller's transaction moves chunk,
message, attempt and account together.

**Leases: one live task per chunk.** A send task is a hint; the ledger decides.
Every publish of a chunk is preceded by :func:`arm`, which bumps the chunk's
``generation``; the task carries the generation it was published with, and a
task whose generation is no longer the chunk's exits without a retry.
``lease_until`` is when the live task is expected to show life next: its due
time (:func:`arm`, :func:`postpone`), or the end of the send it is making
(:func:`claim`). A head is *lost* (its task gone with a flushed Redis or a
killed worker) when it is not parked and its lease ran out longer ago than the
reconciler's grace: only then does the reconciler arm and publish it again.

**Parking.** A head that waits for an event (an expired session healed) is
*parked*: no task holds it, and the event's handler arms it
(:func:`arm_parked`). The reconciler arms a parked head whose reason has
cleared, should that wake be lost.

==================  ==========================================================
verb                columns it moves
==================  ==========================================================
insert_messages     new message and chunk rows
arm / arm_parked    chunk: generation+1, lease, due no earlier than now, unparked
arm_new_heads       the same, for new messages that are their chat's head
postpone            chunk: next attempt, lease, failures (live task only)
hold_parked         chunk: a parked chunk's next look (its recheck dropped)
set_text            chunk: what it sends (a notice added or taken off)
extend_deadlines    message: not dead before a time (its reader wrote)
supersede           message superseded, its pending chunks unsent (a collapse key)
extend_leases       chunk: lease (its task was seen late in the queue)
park                chunk: parked until an event or a time, no lease (live task only)
claim               chunk: attempt count, lease (the head, due, under its lock)
accept              chunk sent; message sending or delivered; next chunk's gap
kill                message dead; its pending chunks unsent (or failed)
replay              a dead message's failed/unsent chunks pending again
close_finished      an open message with nothing pending: delivered or dead
==================  ==========================================================

Each message that ends (delivered, dead, superseded) is also counted, in the
same transaction, in :mod:`delivery.ledger.counters` (with its latency, if
delivered): the exporter reads those totals instead of recounting the rows.

Example::

    with session_scope(engine) as db:
        armed = arm(db, [head.chunk_id], now=utcnow())
    for item in armed:            # after the commit
        publisher(item)
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from delivery.ledger import counters
from delivery.ledger.models import Account, Chunk, Message, Reader
from delivery.ledger.queries import IN_LIST_BATCH, Conversation, blocker, conversation_heads
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    ChunkStatus,
    MessageStatus,
    ParkReason,
    SessionState,
)
from delivery.ledger.types import UTCDateTime, clean_text

__all__ = [
    "Accepted",
    "Armed",
    "Claim",
    "NewMessage",
    "Refusal",
    "accept",
    "arm",
    "arm_conversations",
    "arm_new_heads",
    "arm_parked",
    "claim",
    "close_finished",
    "extend_deadlines",
    "extend_leases",
    "hold_parked",
    "insert_messages",
    "kill",
    "park",
    "postpone",
    "replay",
    "set_text",
    "supersede",
]

_OPEN = [str(state) for state in OPEN_MESSAGE_STATES]
_REASON_CHARS = 2000  # of why a message died


@dataclass(frozen=True)
class Armed:
    """A chunk to publish after the commit, with the generation its task carries."""

    chunk_id: int
    generation: int
    countdown_seconds: float


@dataclass(frozen=True)
class NewMessage:
    """One message to write, already validated and chunked."""

    account_id: str
    to_user_id: str
    idempotency_key: str | None
    source: str | None
    text_sha256: str
    text_chars: int
    chunks: Sequence[str] = field(repr=False)
    # Known at enqueue: the account's session is expired; the first chunk waits parked.
    parked_on: ParkReason | None = None
    collapse_key: str | None = None


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def insert_messages(
    db: Session,
    messages: Sequence[NewMessage],
    *,
    now: dt.datetime,
    deadline: dt.datetime,
) -> list[int]:
    """Write the messages and their chunks; return the new ids, in order.

    Chunks get a fixed ``client_id``, and a lease from now, so the reconciler
    leaves them to the enqueuer's own publish for the reconciler's grace. A message's
    ``parked_on`` parks its first chunk at once (no task is published for it).
    """
    if not messages:
        return []
    ids = list(
        db.scalars(
            _insert_messages_statement(),
            [
                {
                    "account_id": m.account_id,
                    "to_user_id": m.to_user_id,
                    "idempotency_key": m.idempotency_key,
                    "status": MessageStatus.QUEUED,
                    "source": m.source,
                    "text_sha256": m.text_sha256,
                    "text_chars": m.text_chars,
                    "chunk_count": len(m.chunks),
                    "created_at": now,
                    "deadline_at": deadline,
                    "replay_count": 0,
                    "collapse_key": m.collapse_key,
                }
                for m in messages
            ],
        )
    )
    db.execute(
        insert(_table(Chunk)),
        [
            {
                "message_id": message_id,
                "seq": seq,
                "text": text,
                "status": ChunkStatus.PENDING,
                "client_id": f"dlv-{uuid.uuid4().hex}",
                "attempt_count": 0,
                "failure_count": 0,
                "generation": 0,
                "lease_until": None if seq == 1 and message.parked_on else now,
                "next_attempt_at": deadline if seq == 1 and message.parked_on else now,
                "parked_on": message.parked_on if seq == 1 else None,
            }
            for message_id, message in zip(ids, messages, strict=True)
            for seq, text in enumerate(message.chunks, start=1)
        ],
    )
    return ids


def _table(model: type[Chunk] | type[Message]) -> Table:
    """A model's table: Core statements skip the ORM's per-row work on hot paths."""
    return cast(Table, model.__table__)


@functools.cache
def _insert_messages_statement() -> ReturningInsert[int]:
    messages = _table(Message)
    return insert(messages).returning(messages.c.id, sort_by_parameter_order=True)


def arm(
    db: Session,
    chunk_ids: Collection[int],
    *,
    now: dt.datetime,
    seen: Mapping[int, int] | None = None,
    due_at: dt.datetime | None = None,
) -> list[Armed]:
    """A new generation for each pending chunk about to be published.

    The chunk is unparked, its lease renewed, and its due time brought up to
    now if it lay in the past (a head that waited behind another message is due
    from now, not from when it was enqueued) or it was parked. The caller publishes the result
    after the commit; any older task of the chunk then exits when it runs.
    With ``seen`` (chunk id to generation), a chunk armed by someone else since
    it was looked at is left to that arming. ``due_at`` sets the due time instead
    (a held chat released to go after a cooldown).
    """
    if not chunk_ids:
        return []
    where = [Chunk.id.in_(sorted(chunk_ids)), Chunk.status == ChunkStatus.PENDING]
    if seen is not None:
        where.append(tuple_(Chunk.id, Chunk.generation).in_(sorted(seen.items())))
    # A parked chunk's next attempt time was when to look again on its own (its
    # deadline, a recheck), not when it may be sent: armed, it is due now.
    return _arm_where(db, where, now=now, due_at=due_at)


def _arm_where(
    db: Session,
    where: Sequence[ColumnElement[bool]],
    *,
    now: dt.datetime,
    due_at: dt.datetime | None = None,
) -> list[Armed]:
    due: dt.datetime | ColumnElement[dt.datetime] = (
        due_at
        if due_at is not None
        else case(
            (Chunk.parked_on.is_not(None), now),
            (Chunk.next_attempt_at < now, now),
            else_=Chunk.next_attempt_at,
        )
    )
    rows = db.execute(
        update(Chunk)
        .where(*where)
        .values(
            generation=Chunk.generation + 1, lease_until=due, parked_on=None, next_attempt_at=due
        )
        .returning(Chunk.id, Chunk.generation, Chunk.next_attempt_at)
    )
    return [
        Armed(chunk_id, generation, max(0.0, (due - now).total_seconds()))
        for chunk_id, generation, due in rows
    ]


def arm_new_heads(
    db: Session, messages: Mapping[int, Conversation], *, now: dt.datetime
) -> list[Armed]:
    """Arm the first chunk of each new message (id to its chat) that is its chat's
    head: no other message of the chat is sending and none older is queued. One
    ``UPDATE ... RETURNING`` per batch of chats; a head parked at enqueue is left
    to its event. Call after the insert committed (see
    :func:`~delivery.pipeline.dispatch.wake_conversations` for why).
    """
    first: dict[Conversation, int] = {}
    for message_id, conversation in sorted(messages.items()):
        first.setdefault(conversation, message_id)
    candidates = sorted(first.values())
    statement = _arm_new_heads_statement()
    armed: list[Armed] = []
    for start in range(0, len(candidates), IN_LIST_BATCH):
        rows = db.execute(statement, {"ids": candidates[start : start + IN_LIST_BATCH], "now": now})
        armed.extend(
            Armed(chunk_id, generation, max(0.0, (due - now).total_seconds()))
            for chunk_id, generation, due in rows
        )
    return armed


@functools.cache
def _arm_new_heads_statement() -> Update:
    """:func:`arm_new_heads`'s statement, built once (it runs on every enqueue)."""
    chunks = _table(Chunk)
    mine, other = Message.__table__.alias("mine"), Message.__table__.alias("other")
    blocked = (
        select(other.c.id)
        .where(
            mine.c.id == chunks.c.message_id,
            other.c.account_id == mine.c.account_id,
            other.c.to_user_id == mine.c.to_user_id,
            other.c.id != mine.c.id,
            or_(
                other.c.status == MessageStatus.SENDING,
                and_(other.c.status == MessageStatus.QUEUED, other.c.id < mine.c.id),
            ),
        )
        .exists()
    )
    now = bindparam("now", type_=UTCDateTime)
    due = case((chunks.c.next_attempt_at < now, now), else_=chunks.c.next_attempt_at)
    return (
        update(chunks)
        .where(
            chunks.c.message_id.in_(bindparam("ids", expanding=True)),
            chunks.c.seq == 1,
            chunks.c.status == ChunkStatus.PENDING,
            chunks.c.parked_on.is_(None),
            ~blocked,
        )
        .values(generation=chunks.c.generation + 1, lease_until=due, next_attempt_at=due)
        .returning(chunks.c.id, chunks.c.generation, chunks.c.next_attempt_at)
    )


def arm_conversations(
    db: Session, conversations: Collection[Conversation], *, now: dt.datetime
) -> list[Armed]:
    """Arm the head of each conversation (its task, if it has one, then exits)."""
    heads = [head.chunk_id for head in conversation_heads(db, conversations)]
    return arm(db, heads, now=now)


def arm_parked(
    db: Session,
    *,
    account_id: str,
    reason: ParkReason,
    now: dt.datetime,
    peer_id: str | None = None,
) -> list[Armed]:
    """Arm the account's heads parked on ``reason`` (one peer's, if given).

    A parked chunk that is not its chat's head stays parked: it is armed when it
    becomes the head, like any other.
    """
    query = (
        select(Message.account_id, Message.to_user_id, Chunk.id)
        .join(Message, Message.id == Chunk.message_id)
        .where(
            Message.account_id == account_id,
            Chunk.parked_on == reason,
            Chunk.status == ChunkStatus.PENDING,
        )
    )
    if peer_id is not None:
        query = query.where(Message.to_user_id == peer_id)
    parked = {chunk_id: (account, peer) for account, peer, chunk_id in db.execute(query)}
    if not parked:
        return []
    heads = conversation_heads(db, set(parked.values()))
    chunk_ids = [head.chunk_id for head in heads if head.chunk_id in parked]
    # What they waited for is over: due now, not at the time they were parked until.
    return arm(db, chunk_ids, now=now, due_at=now)


def postpone(
    db: Session,
    chunk_id: int,
    *,
    generation: int | None,
    until: dt.datetime,
    spend_failure: bool = False,
) -> bool:
    """The live task waits until ``until`` (its lease renewed). False for a stale task.

    ``generation`` None is a task published before leases existed: it is live.
    """
    values: dict[str, object] = {
        "next_attempt_at": until,
        "lease_until": until,
        "parked_on": None,
    }
    if spend_failure:
        values["failure_count"] = Chunk.failure_count + 1
    result = db.execute(update(Chunk).where(*_live(chunk_id, generation)).values(**values))
    return _rowcount(result) == 1


def extend_leases(db: Session, chunk_ids: Collection[int], *, until: dt.datetime) -> None:
    """Their tasks are alive (seen waiting in the broker's queue): renew the leases."""
    if chunk_ids:
        db.execute(update(Chunk).where(Chunk.id.in_(sorted(chunk_ids))).values(lease_until=until))


def park(
    db: Session,
    chunk_id: int,
    *,
    generation: int | None,
    reason: ParkReason,
    until: dt.datetime,
) -> bool:
    """The head waits for ``reason`` to clear, holding no task; at ``until`` at the
    latest it is looked at again (its deadline, or a recheck). False for a stale task."""
    result = db.execute(
        update(Chunk)
        .where(*_live(chunk_id, generation))
        .values(parked_on=reason, lease_until=None, next_attempt_at=until)
    )
    return _rowcount(result) == 1


def hold_parked(
    db: Session, chunk_ids: Collection[int], *, reason: ParkReason, until: dt.datetime
) -> None:
    """Chunks parked on ``reason`` stay parked until ``until`` (a recheck dropped)."""
    if chunk_ids:
        db.execute(
            update(Chunk)
            .where(Chunk.id.in_(sorted(chunk_ids)), Chunk.parked_on == reason)
            .values(next_attempt_at=until)
        )


def set_text(db: Session, chunk_id: int, text: str) -> None:
    """What the chunk sends from now on (a notice added to, or taken off, its end)."""
    db.execute(update(Chunk).where(Chunk.id == chunk_id).values(text=text))


def extend_deadlines(db: Session, *, account_id: str, to_user_id: str, until: dt.datetime) -> None:
    """Open messages of the chat are not dead before ``until`` (their reader wrote)."""
    db.execute(
        update(Message)
        .where(
            Message.account_id == account_id,
            Message.to_user_id == to_user_id,
            Message.status.in_(_OPEN),
            Message.deadline_at < until,
        )
        .values(deadline_at=until)
    )


def supersede(
    db: Session,
    *,
    account_id: str,
    to_user_id: str,
    collapse_key: str,
    before_id: int,
    now: dt.datetime,
) -> list[int]:
    """Open messages of the chat with ``collapse_key``, older than ``before_id``, end
    as superseded (their pending chunks unsent). Returns their ids."""
    ids = list(
        db.scalars(
            select(Message.id).where(
                Message.account_id == account_id,
                Message.to_user_id == to_user_id,
                Message.collapse_key == collapse_key,
                Message.status.in_(_OPEN),
                Message.id < before_id,
            )
        )
    )
    if ids:
        ended = db.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status.in_(_OPEN))
            .values(
                status=MessageStatus.SUPERSEDED,
                dead_at=now,
                dead_reason=f"superseded by message {before_id} (same collapse key)",
            )
        )
        counters.add_ended(db, MessageStatus.SUPERSEDED, n=_rowcount(ended))
        db.execute(
            update(Chunk)
            .where(Chunk.message_id.in_(ids), Chunk.status == ChunkStatus.PENDING)
            .values(status=ChunkStatus.UNSENT, parked_on=None, lease_until=None)
        )
    return ids


def _live(chunk_id: int, generation: int | None) -> list[ColumnElement[bool]]:
    conditions = [Chunk.id == chunk_id, Chunk.status == ChunkStatus.PENDING]
    if generation is not None:
        conditions.append(Chunk.generation == generation)
    return conditions


@dataclass(frozen=True)
class Claim:
    """A chunk claimed for one attempt: everything the call needs."""

    chunk_id: int
    seq: int
    attempt_no: int
    chunk_count: int
    failures: int
    message_id: int
    account_id: str
    to_user_id: str
    base_url: str
    token: str = field(repr=False)
    token_version: int
    client_id: str
    text: str = field(repr=False)
    lost_before: bool  # an earlier attempt was cut off mid-call
    created_at: dt.datetime
    message_sending: bool  # some chunk of the message was accepted already
    session_state: str
    session_validated_at: dt.datetime | None
    reader_last_inbound_at: dt.datetime | None
    reader_sends_since_inbound: int
    reader_closed_reason: str | None
    context_token: str | None = field(repr=False)  # the reader's latest, unless stale


@dataclass(frozen=True)
class Refusal:
    """Why a claim was refused; ``due_in_seconds`` when the chunk is not due yet."""

    why: str
    due_in_seconds: float | None = None
    session_expired: bool = False
    superseded: bool = False


def claim(
    db: Session,
    chunk_id: int,
    *,
    generation: int | None,
    now: dt.datetime,
    lease_seconds: float,
    early_seconds: float,
    expired_may_try: bool = False,
) -> Claim | Refusal:
    """Under the account's send lock: re-check the chunk and take an attempt number.

    The chunk must still be this task's (``generation``), pending, due (within
    ``early_seconds``), of an open message, and the head of its conversation:
    a replay that moved the head since the task looked makes it step aside. The
    account row is locked, so a replay of the same account waits for this
    transaction. The lease covers the call (``lease_seconds``). An account marked
    expired refuses, unless ``expired_may_try`` (a trial send).
    """
    row = db.execute(
        select(Chunk, Message, Account, Reader)
        .join(Message, Message.id == Chunk.message_id)
        .join(Account, Account.id == Message.account_id)
        .outerjoin(
            Reader,
            and_(Reader.account_id == Message.account_id, Reader.peer_id == Message.to_user_id),
        )
        .where(Chunk.id == chunk_id)
        .with_for_update(of=Account)
    ).one_or_none()
    if row is None:
        return Refusal(f"chunk {chunk_id} is not in the ledger")
    chunk, message, account, reader = row
    if chunk.status != ChunkStatus.PENDING:
        return Refusal(f"chunk {chunk_id} was {chunk.status} meanwhile")
    if generation is not None and chunk.generation != generation:
        return Refusal(f"chunk {chunk_id} has a newer task", superseded=True)
    if message.status not in OPEN_MESSAGE_STATES:
        return Refusal(f"chunk {chunk_id} belongs to a message that is {message.status}")
    due_in = (chunk.next_attempt_at - now).total_seconds()
    if due_in > early_seconds:
        return Refusal(f"chunk {chunk_id} not due yet", due_in_seconds=due_in)
    if account.session_state == SessionState.EXPIRED and not expired_may_try:
        return Refusal("the account's session expired", session_expired=True)
    behind = blocker(
        db,
        account_id=message.account_id,
        to_user_id=message.to_user_id,
        message_id=message.id,
        sending=message.status == MessageStatus.SENDING,
        seq=chunk.seq,
    )
    if behind is not None:
        return Refusal(f"chunk {chunk_id} waits behind message {behind} of its chat")
    lost_before = chunk.attempt_count > 0
    attempt_no = chunk.attempt_count + 1
    db.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id)
        .values(attempt_count=attempt_no, lease_until=now + dt.timedelta(seconds=lease_seconds))
    )
    return Claim(
        chunk_id=chunk.id,
        seq=chunk.seq,
        attempt_no=attempt_no,
        chunk_count=message.chunk_count,
        failures=chunk.failure_count,
        message_id=message.id,
        account_id=account.id,
        to_user_id=message.to_user_id,
        base_url=account.base_url,
        token=account.token,
        token_version=account.token_version,
        client_id=chunk.client_id,
        text=chunk.text,
        lost_before=lost_before,
        created_at=message.created_at,
        message_sending=message.status == MessageStatus.SENDING,
        session_state=account.session_state,
        session_validated_at=account.last_validated_at,
        context_token=(
            reader.context_token if reader and reader.context_token_stale_at is None else None
        ),
        reader_last_inbound_at=reader.last_inbound_at if reader else None,
        reader_sends_since_inbound=reader.sends_since_inbound if reader else 0,
        reader_closed_reason=reader.closed_reason if reader else None,
    )


@dataclass(frozen=True)
class Accepted:
    """What an accepted chunk moved: what to publish, and whether the chat moves on."""

    armed: list[Armed]
    message_final: bool
    was_final_already: bool = False
    delivered_after_all: bool = False


def accept(
    db: Session,
    *,
    chunk_id: int,
    message_id: int,
    seq: int,
    chunk_count: int,
    sending: bool,
    outcome: str,
    now: dt.datetime,
    gap_seconds: float,
) -> Accepted:
    """The platform accepted the chunk: mark it sent, move the message on.

    The next chunk is due after ``gap_seconds`` and armed here; the last one
    delivers the message. A message that died while the call was in flight (its
    deadline) stays dead unless this was its last unsent chunk: then everything
    did arrive, and it is delivered after all. ``seq``, ``chunk_count`` and
    ``sending`` (the message was already sending) are what the claim read; the
    common case then takes two or three statements.
    """
    db.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id)
        .values(status=ChunkStatus.SENT, sent_at=now, last_outcome=outcome)
    )
    if seq < chunk_count:
        due = now + dt.timedelta(seconds=gap_seconds)
        # Pending chunks exist only in open messages: the next one armed, it goes on.
        armed = db.execute(
            update(Chunk)
            .where(
                Chunk.message_id == message_id,
                Chunk.seq == seq + 1,
                Chunk.status == ChunkStatus.PENDING,
            )
            .values(
                generation=Chunk.generation + 1,
                lease_until=due,
                parked_on=None,
                next_attempt_at=due,
            )
            .returning(Chunk.id, Chunk.generation)
        ).first()
        if armed is not None:
            if not sending:
                db.execute(
                    update(Message)
                    .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
                    .values(status=MessageStatus.SENDING)
                )
            return Accepted([Armed(armed[0], armed[1], gap_seconds)], message_final=False)
    else:
        has_pending = (
            select(Chunk.id)
            .where(Chunk.message_id == message_id, Chunk.status == ChunkStatus.PENDING)
            .exists()
        )
        created_at = db.scalar(
            update(Message)
            .where(Message.id == message_id, Message.status.in_(_OPEN), ~has_pending)
            .values(status=MessageStatus.DELIVERED, delivered_at=now)
            .returning(Message.created_at)
        )
        if created_at is not None:
            counters.add_delivered(db, latency_seconds=(now - created_at).total_seconds())
            return Accepted([], message_final=True)
    return _accept_slowly(db, message_id=message_id, now=now, gap_seconds=gap_seconds)


def _accept_slowly(
    db: Session, *, message_id: int, now: dt.datetime, gap_seconds: float
) -> Accepted:
    """After the chunk is marked sent, when the common case did not apply: the
    message is final already, or its pending chunks are not where they usually are
    (a replay revived earlier ones)."""
    status = db.scalar(select(Message.status).where(Message.id == message_id).with_for_update())
    pending = _pending_seqs(db, message_id)
    if status not in OPEN_MESSAGE_STATES:
        unsent = db.scalar(
            select(func.count())
            .select_from(Chunk)
            .where(Chunk.message_id == message_id, Chunk.status != ChunkStatus.SENT)
        )
        if status == MessageStatus.DEAD and not unsent:
            _deliver(db, message_id, now)
            return Accepted([], message_final=True, delivered_after_all=True)
        return Accepted([], message_final=False, was_final_already=True)
    if not pending:
        _deliver(db, message_id, now)
        return Accepted([], message_final=True)
    db.execute(update(Message).where(Message.id == message_id).values(status=MessageStatus.SENDING))
    next_id = db.scalar(
        select(Chunk.id).where(Chunk.message_id == message_id, Chunk.seq == min(pending))
    )
    assert next_id is not None
    db.execute(
        update(Chunk)
        .where(Chunk.id == next_id)
        .values(next_attempt_at=now + dt.timedelta(seconds=gap_seconds))
    )
    return Accepted(arm(db, [next_id], now=now), message_final=False)


def _pending_seqs(db: Session, message_id: int) -> list[int]:
    return list(
        db.scalars(
            select(Chunk.seq).where(
                Chunk.message_id == message_id, Chunk.status == ChunkStatus.PENDING
            )
        )
    )


def _deliver(db: Session, message_id: int, now: dt.datetime) -> None:
    created_at = db.scalar(
        update(Message)
        .where(Message.id == message_id, Message.status != MessageStatus.DELIVERED)
        .values(status=MessageStatus.DELIVERED, delivered_at=now, dead_at=None, dead_reason=None)
        .returning(Message.created_at)
    )
    if created_at is not None:
        counters.add_delivered(db, latency_seconds=(now - created_at).total_seconds())


def record_outcome(db: Session, chunk_id: int, *, outcome: str) -> None:
    """Note the class of the chunk's latest attempt (shown by ``delivery show``)."""
    db.execute(update(Chunk).where(Chunk.id == chunk_id).values(last_outcome=outcome))


def kill(
    db: Session,
    message_id: int,
    *,
    reason: str,
    now: dt.datetime,
    failed_chunk_id: int | None = None,
) -> int | None:
    """Make an open message dead: the failing chunk ``failed``, every other pending
    one ``unsent``. Returns how many were left unsent, or None if it was final."""
    result = db.execute(
        update(Message)
        .where(Message.id == message_id, Message.status.in_(_OPEN))
        .values(
            status=MessageStatus.DEAD,
            dead_at=now,
            dead_reason=clean_text(reason, limit=_REASON_CHARS),
        )
    )
    if _rowcount(result) != 1:
        return None
    counters.add_ended(db, MessageStatus.DEAD)
    if failed_chunk_id is not None:
        db.execute(
            update(Chunk)
            .where(Chunk.id == failed_chunk_id, Chunk.status == ChunkStatus.PENDING)
            .values(status=ChunkStatus.FAILED, parked_on=None, lease_until=None)
        )
    unsent = db.execute(
        update(Chunk)
        .where(Chunk.message_id == message_id, Chunk.status == ChunkStatus.PENDING)
        .values(status=ChunkStatus.UNSENT, parked_on=None, lease_until=None)
    )
    return _rowcount(unsent)


@dataclass(frozen=True)
class Replayed:
    """A replayed message: where it resumes, and why it had died."""

    conversation: Conversation
    resumes_at_chunk: int
    chunks: int
    was_dead_because: str | None


def replay(
    db: Session, message_id: int, *, now: dt.datetime, deadline: dt.datetime
) -> Replayed | None:
    """Put a dead message's failed and unsent chunks back to pending, with a fresh
    failure budget and deadline; queued again, so it waits for a message in
    progress in its chat. The account row is locked first, as :func:`claim` does,
    so a send that is checking its head finishes first.

    Returns None when nothing is left to send (every chunk was accepted): the
    message is then marked delivered instead.
    """
    account_id = db.scalar(select(Message.account_id).where(Message.id == message_id))
    db.execute(select(Account.id).where(Account.id == account_id).with_for_update())
    message = db.execute(
        select(Message.to_user_id, Message.dead_reason, Message.chunk_count).where(
            Message.id == message_id
        )
    ).one()
    to_user_id, reason, chunk_count = message
    revived = db.execute(
        update(Chunk)
        .where(
            Chunk.message_id == message_id,
            Chunk.status.in_([ChunkStatus.FAILED, ChunkStatus.UNSENT]),
        )
        .values(
            status=ChunkStatus.PENDING,
            failure_count=0,
            next_attempt_at=now,
            parked_on=None,
            lease_until=None,
        )
    )
    if _rowcount(revived) == 0:
        _deliver(db, message_id, now)
        return None
    db.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(
            status=MessageStatus.QUEUED,
            dead_at=None,
            dead_reason=None,
            deadline_at=deadline,
            replay_count=Message.replay_count + 1,
        )
    )
    first = min(_pending_seqs(db, message_id))
    assert account_id is not None
    return Replayed((account_id, to_user_id), first, chunk_count, reason)


def close_finished(db: Session, *, now: dt.datetime, limit: int) -> list[tuple[int, Conversation]]:
    """Close open messages with nothing left pending (a late answer sent the last
    chunk of a message that a duplicate had killed, say): every chunk sent is
    delivered, otherwise dead. Returns the closed messages and their chats."""
    has_pending = (
        select(Chunk.id)
        .where(Chunk.message_id == Message.id, Chunk.status == ChunkStatus.PENDING)
        .exists()
    )
    stuck = db.execute(
        select(Message.id, Message.account_id, Message.to_user_id)
        .where(Message.status.in_(_OPEN), ~has_pending)
        .order_by(Message.id)
        .limit(limit)
    ).all()
    closed = []
    for message_id, account_id, to_user_id in stuck:
        unsent = db.scalar(
            select(func.count())
            .select_from(Chunk)
            .where(Chunk.message_id == message_id, Chunk.status != ChunkStatus.SENT)
        )
        if unsent:
            kill(db, message_id, reason="closed with nothing left to send", now=now)
        else:
            _deliver(db, message_id, now)
        closed.append((message_id, (account_id, to_user_id)))
    return closed
