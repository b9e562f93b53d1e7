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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
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
from delivery.ledger.models import Account, Attempt, Chunk, Message, Reader
from delivery.ledger.queries import IN_LIST_BATCH, Conversation, conversation_heads
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    MessageStatus,
    ParkReason,
    Priority,
)
from delivery.ledger.types import UTCDateTime, clean_text
from delivery.policy.order import order_key

__all__ = [
    "Accepted",
    "Armed",
    "Look",
    "NewMessage",
    "accept",
    "arm",
    "arm_conversations",
    "arm_new_heads",
    "arm_parked",
    "close_finished",
    "extend_deadlines",
    "extend_leases",
    "hold_parked",
    "insert_messages",
    "kill",
    "look",
    "park",
    "place_in_line",
    "postpone",
    "promote_before_replies",
    "replay",
    "set_text",
    "supersede",
]

_OPEN = [str(state) for state in OPEN_MESSAGE_STATES]
_DELIVERED = [MessageStatus.DELIVERED.value, MessageStatus.UNCONFIRMED.value]
_REASON_CHARS = 2000  # of why a message died


@dataclass(frozen=True)
class Armed:
    """A chunk to offer to its account's line after the commit: the generation its
    task carries, when it is due, its account and its place in the line
    (:func:`~delivery.ratelimit.gate.order_key`)."""

    chunk_id: int
    generation: int
    countdown_seconds: float
    account_id: str
    order: str


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
    priority: int = Priority.PUSH
    reply_to: str | None = None


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
                    "priority": int(m.priority),
                    "reply_to": m.reply_to,
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
        .returning(*_ARMED_COLUMNS)
    )
    return _armed(rows, now)


def _message_of_chunk(column: ColumnElement[Any]) -> ColumnElement[Any]:
    messages = _table(Message)
    return select(column).where(messages.c.id == _table(Chunk).c.message_id).scalar_subquery()


# What an arming statement returns: enough to offer the chunk to its account's line.
_ARMED_COLUMNS = (
    _table(Chunk).c.id,
    _table(Chunk).c.generation,
    _table(Chunk).c.next_attempt_at,
    _table(Chunk).c.message_id,
    _table(Chunk).c.seq,
    _message_of_chunk(_table(Message).c.account_id).label("account_id"),
    _message_of_chunk(_table(Message).c.priority).label("priority"),
)


def _armed(rows: Iterable[Any], now: dt.datetime) -> list[Armed]:
    return [
        Armed(
            chunk_id,
            generation,
            max(0.0, (due - now).total_seconds()),
            account_id,
            place_in_line(message_id=message_id, seq=seq, priority=priority),
        )
        for chunk_id, generation, due, message_id, seq, account_id, priority in rows
    ]


def place_in_line(*, message_id: int, seq: int, priority: int) -> str:
    """A chunk's order key in its account's line: a started message's next part first,
    then replies' first parts, then pushes'."""
    return order_key(message_id=message_id, started=seq > 1, reply=priority == Priority.REPLY)


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
        armed.extend(_armed(rows, now))
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
        .returning(*_ARMED_COLUMNS)
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


def promote_before_replies(
    db: Session, replies: Sequence[tuple[str, str, int]]
) -> set[Conversation]:
    """A new reply (account, peer, its id) carries its chat's earlier open pushes to
    the replies' place in the line: a chat never interleaves, so what must go before
    the reply goes with it. Returns the chats whose messages were promoted (their
    heads are offered again, in their new place)."""
    promoted: set[Conversation] = set()
    for account_id, to_user_id, message_id in replies:
        result = db.execute(
            update(Message)
            .where(
                Message.account_id == account_id,
                Message.to_user_id == to_user_id,
                Message.status.in_(_OPEN),
                Message.id < message_id,
                Message.priority > Priority.REPLY,
            )
            .values(priority=Priority.REPLY)
        )
        if _rowcount(result):
            promoted.add((account_id, to_user_id))
    return promoted


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
class Look:
    """Everything a send task needs to know of its chunk, read in one statement under
    the account's lock: the chunk, its message, account and reader, whether it is its
    chat's head (``blocked_by``), and whether an earlier attempt was cut off
    mid-call (``in_flight``). Token and texts never print."""

    chunk_id: int
    seq: int
    chunk_status: str
    generation: int
    parked_on: str | None
    next_attempt_at: dt.datetime
    attempt_count: int
    failures: int
    client_id: str
    text: str = field(repr=False)
    message_id: int
    message_status: str
    chunk_count: int
    deadline_at: dt.datetime
    created_at: dt.datetime
    account_id: str
    to_user_id: str
    priority: int
    base_url: str
    token: str = field(repr=False)
    token_version: int
    session_state: str
    session_validated_at: dt.datetime | None
    learned_rate_per_minute: float | None
    learned_at: dt.datetime | None
    pace_proven_per_minute: float | None
    cooldown_until: dt.datetime | None
    cooldown_strikes: int
    confirms_sends: bool
    reader_last_inbound_at: dt.datetime | None
    reader_sends_since_inbound: int
    reader_closed_reason: str | None
    reader_unconfirmed_in_row: int
    reader_dropping_since: dt.datetime | None
    context_token: str | None = field(repr=False)  # the reader's latest, unless stale
    blocked_by: int | None  # the message that must go first in the chat, if any
    in_flight: bool  # an attempt of this chunk has no answer recorded

    @property
    def message_sending(self) -> bool:
        """Some chunk of the message was accepted already."""
        return self.message_status == MessageStatus.SENDING

    @property
    def order(self) -> str:
        """Its place in its account's line."""
        return place_in_line(message_id=self.message_id, seq=self.seq, priority=self.priority)


def look(db: Session, chunk_id: int, *, lock: bool = True) -> Look | None:
    """Read the chunk with everything a send needs, in one statement; None when it is
    not in the ledger. ``lock``: the account row is locked (on PostgreSQL; SQLite's
    write transaction locks the database), so a replay of the same account waits."""
    statement = _look_locked_statement() if lock else _look_statement()
    row = db.connection().execute(statement, {"chunk_id": chunk_id}).one_or_none()
    if row is None:
        return None
    values = dict(row._mapping)
    values["reader_sends_since_inbound"] = values["reader_sends_since_inbound"] or 0
    values["reader_unconfirmed_in_row"] = values["reader_unconfirmed_in_row"] or 0
    values["cooldown_strikes"] = values["cooldown_strikes"] or 0
    values["confirms_sends"] = bool(values["confirms_sends"])
    values["in_flight"] = bool(values["in_flight"])
    return Look(**values)


@functools.cache
def _look_statement() -> Select[Any]:
    chunks, messages = _table(Chunk), _table(Message)
    accounts, readers = cast(Table, Account.__table__), cast(Table, Reader.__table__)
    attempts = cast(Table, Attempt.__table__)
    other = messages.alias("other")
    earlier = chunks.alias("earlier")
    sending = messages.c.status == MessageStatus.SENDING
    # The head of a chat: the message sending now, else the oldest open one; within
    # it, the first pending chunk. What stands before this chunk, if anything:
    before = (
        select(other.c.id)
        .where(
            other.c.account_id == messages.c.account_id,
            other.c.to_user_id == messages.c.to_user_id,
            other.c.id != messages.c.id,
            or_(
                and_(
                    other.c.status == MessageStatus.SENDING,
                    or_(~sending, other.c.id < messages.c.id),
                ),
                and_(~sending, other.c.status == MessageStatus.QUEUED, other.c.id < messages.c.id),
            ),
        )
        .order_by(case((other.c.status == MessageStatus.SENDING, 0), else_=1), other.c.id)
        .limit(1)
        .scalar_subquery()
    )
    pending_before = (
        select(earlier.c.id)
        .where(
            earlier.c.message_id == chunks.c.message_id,
            earlier.c.status == ChunkStatus.PENDING,
            earlier.c.seq < chunks.c.seq,
        )
        .exists()
    )
    blocked_by = func.coalesce(before, case((pending_before, messages.c.id), else_=None))
    in_flight = (
        select(attempts.c.id)
        .where(attempts.c.chunk_id == chunks.c.id, attempts.c.outcome == AttemptOutcome.IN_FLIGHT)
        .exists()
    )
    fresh_token = case(
        (readers.c.context_token_stale_at.is_(None), readers.c.context_token), else_=None
    )
    return (
        select(
            chunks.c.id.label("chunk_id"),
            chunks.c.seq,
            chunks.c.status.label("chunk_status"),
            chunks.c.generation,
            chunks.c.parked_on,
            chunks.c.next_attempt_at,
            chunks.c.attempt_count,
            chunks.c.failure_count.label("failures"),
            chunks.c.client_id,
            chunks.c.text,
            messages.c.id.label("message_id"),
            messages.c.status.label("message_status"),
            messages.c.chunk_count,
            messages.c.deadline_at,
            messages.c.created_at,
            messages.c.account_id,
            messages.c.to_user_id,
            messages.c.priority,
            accounts.c.base_url,
            accounts.c.token,
            accounts.c.token_version,
            accounts.c.session_state,
            accounts.c.last_validated_at.label("session_validated_at"),
            accounts.c.learned_rate_per_minute,
            accounts.c.learned_at,
            accounts.c.pace_proven_per_minute,
            accounts.c.cooldown_until,
            accounts.c.cooldown_strikes,
            accounts.c.confirms_sends,
            readers.c.last_inbound_at.label("reader_last_inbound_at"),
            readers.c.sends_since_inbound.label("reader_sends_since_inbound"),
            readers.c.closed_reason.label("reader_closed_reason"),
            readers.c.unconfirmed_in_row.label("reader_unconfirmed_in_row"),
            readers.c.dropping_since.label("reader_dropping_since"),
            fresh_token.label("context_token"),
            blocked_by.label("blocked_by"),
            in_flight.label("in_flight"),
        )
        .select_from(
            chunks.join(messages, messages.c.id == chunks.c.message_id)
            .join(accounts, accounts.c.id == messages.c.account_id)
            .outerjoin(
                readers,
                and_(
                    readers.c.account_id == messages.c.account_id,
                    readers.c.peer_id == messages.c.to_user_id,
                ),
            )
        )
        .where(chunks.c.id == bindparam("chunk_id"))
    )


@functools.cache
def _look_locked_statement() -> Select[Any]:
    return _look_statement().with_for_update(of=cast(Table, Account.__table__))


@dataclass(frozen=True)
class Accepted:
    """What an accepted chunk moved: what to offer to the line, and whether the chat moves on.

    ``next_part``: the message's next chunk, armed after its gap. ``armed``: every
    chunk to offer, that one or, when the message ended, its chat's next head.
    ``final_status``: delivered, or unconfirmed when some chunk was accepted without
    the message_id the account's answers carry."""

    armed: list[Armed]
    message_final: bool
    was_final_already: bool = False
    delivered_after_all: bool = False
    next_part: Armed | None = None
    final_status: str | None = None


def accept(
    db: Session,
    *,
    look: Look,
    attempt_no: int,
    outcome: str,
    now: dt.datetime,
    gap_seconds: float,
) -> Accepted:
    """The platform accepted the chunk (``outcome`` accepted or unconfirmed): mark it
    sent, move the message on.

    The next chunk is due after ``gap_seconds`` and armed here, in the statement that
    marks this one sent; the last one ends the message (delivered, or unconfirmed if
    any of its chunks was) and arms its chat's next head, so the line gets it in this
    same transaction. A message that died while the call was in flight (its deadline)
    stays dead unless this was its last unsent chunk: then everything did arrive, and
    it is delivered after all.
    """
    seq, message_id = look.seq, look.message_id
    if seq < look.chunk_count:
        due = now + dt.timedelta(seconds=gap_seconds)
        rows = (
            db.connection()
            .execute(
                _accept_and_arm_statement(),
                {
                    "b_chunk": look.chunk_id,
                    "b_message": message_id,
                    "b_next_seq": seq + 1,
                    "b_now": now,
                    "b_due": due,
                    "b_outcome": outcome,
                    "b_attempts": attempt_no,
                },
            )
            .all()
        )
        following = [row for row in rows if row.seq == seq + 1]
        if following:
            if not look.message_sending:
                db.connection().execute(_sending_statement(), {"b_message": message_id})
            part = Armed(
                following[0].id,
                following[0].generation,
                gap_seconds,
                look.account_id,
                order_key(message_id=message_id, started=True),
            )
            return Accepted([part], message_final=False, next_part=part)
    else:
        connection = db.connection()
        connection.execute(_sent_statement(), _sent_values(look.chunk_id, now, outcome, attempt_no))
        ended = connection.execute(
            _deliver_statement(), {"b_message": message_id, "b_now": now}
        ).one_or_none()
        if ended is not None:
            created_at, status = ended
            _count_ended(db, status, latency_seconds=(now - created_at).total_seconds())
            woken = arm_next_head(
                db, account_id=look.account_id, to_user_id=look.to_user_id, now=now
            )
            return Accepted(woken, message_final=True, final_status=status)
    return _accept_slowly(db, message_id=message_id, now=now, gap_seconds=gap_seconds)


def _count_ended(db: Session, status: str, *, latency_seconds: float) -> None:
    if status == MessageStatus.DELIVERED:
        counters.add_delivered(db, latency_seconds=latency_seconds)
    else:
        counters.add_ended(db, status)


def _sent_values(chunk_id: int, now: dt.datetime, outcome: str, attempts: int) -> dict[str, Any]:
    return {"b_chunk": chunk_id, "b_now": now, "b_outcome": outcome, "b_attempts": attempts}


@functools.cache
def _sending_statement() -> Update:
    messages = _table(Message)
    return (
        update(messages)
        .where(
            messages.c.id == bindparam("b_message"),
            messages.c.status == MessageStatus.QUEUED.value,
        )
        .values(status=MessageStatus.SENDING.value)
    )


@functools.cache
def _sent_statement() -> Update:
    chunks = _table(Chunk)
    return (
        update(chunks)
        .where(chunks.c.id == bindparam("b_chunk"))
        .values(
            status=ChunkStatus.SENT,
            sent_at=bindparam("b_now"),
            last_outcome=bindparam("b_outcome"),
            attempt_count=bindparam("b_attempts"),
        )
    )


@functools.cache
def _accept_and_arm_statement() -> Update:
    """One statement: this chunk sent, and the message's next chunk armed after its gap."""
    chunks = _table(Chunk)
    this = chunks.c.id == bindparam("b_chunk")
    return (
        update(chunks)
        .where(
            chunks.c.message_id == bindparam("b_message"),
            or_(
                this,
                and_(
                    chunks.c.seq == bindparam("b_next_seq"),
                    chunks.c.status == ChunkStatus.PENDING,
                ),
            ),
        )
        .values(
            status=case((this, ChunkStatus.SENT.value), else_=chunks.c.status),
            sent_at=case((this, bindparam("b_now")), else_=chunks.c.sent_at),
            last_outcome=case((this, bindparam("b_outcome")), else_=chunks.c.last_outcome),
            attempt_count=case((this, bindparam("b_attempts")), else_=chunks.c.attempt_count),
            generation=case((this, chunks.c.generation), else_=chunks.c.generation + 1),
            lease_until=case((this, chunks.c.lease_until), else_=bindparam("b_due")),
            next_attempt_at=case((this, chunks.c.next_attempt_at), else_=bindparam("b_due")),
            parked_on=case((this, chunks.c.parked_on), else_=None),
        )
        .returning(chunks.c.id, chunks.c.seq, chunks.c.generation)
    )


@functools.cache
def _deliver_statement() -> Update:
    """The message ends, if open with nothing pending: unconfirmed when any chunk was
    accepted without a message_id, else delivered."""
    chunks, messages = _table(Chunk), _table(Message)
    pending = (
        select(chunks.c.id)
        .where(chunks.c.message_id == messages.c.id, chunks.c.status == ChunkStatus.PENDING)
        .exists()
    )
    unconfirmed = (
        select(chunks.c.id)
        .where(
            chunks.c.message_id == messages.c.id,
            chunks.c.last_outcome == AttemptOutcome.UNCONFIRMED,
        )
        .exists()
    )
    return (
        update(messages)
        .where(messages.c.id == bindparam("b_message"), messages.c.status.in_(_OPEN), ~pending)
        .values(
            status=case(
                (unconfirmed, MessageStatus.UNCONFIRMED.value),
                else_=MessageStatus.DELIVERED.value,
            ),
            delivered_at=bindparam("b_now"),
        )
        .returning(messages.c.created_at, messages.c.status)
    )


def arm_next_head(
    db: Session, *, account_id: str, to_user_id: str, now: dt.datetime
) -> list[Armed]:
    """Arm the chat's head (its message sending now, else its oldest open one; the
    first pending chunk of it), in one statement: call it in the transaction that
    ended the chat's previous message.

    On PostgreSQL a message enqueued into the chat while this runs is armed by its
    enqueuer, which waits for this transaction (see :func:`lock_chat_senders`).
    """
    rows = db.connection().execute(
        _arm_next_head_statement(), {"b_account": account_id, "b_peer": to_user_id, "b_now": now}
    )
    return _armed(rows, now)


@functools.cache
def _arm_next_head_statement() -> Update:
    chunks, messages = _table(Chunk), _table(Message)
    head_chunks = chunks.alias("head_chunks")
    head = (
        select(head_chunks.c.id)
        .select_from(head_chunks.join(messages, messages.c.id == head_chunks.c.message_id))
        .where(
            messages.c.account_id == bindparam("b_account"),
            messages.c.to_user_id == bindparam("b_peer"),
            messages.c.status.in_(_OPEN),
            head_chunks.c.status == ChunkStatus.PENDING,
        )
        .order_by(
            case((messages.c.status == MessageStatus.SENDING, 0), else_=1),
            messages.c.id,
            head_chunks.c.seq,
        )
        .limit(1)
        .scalar_subquery()
    )
    now = bindparam("b_now", type_=UTCDateTime)
    due = case(
        (chunks.c.parked_on.is_not(None), now),
        (chunks.c.next_attempt_at < now, now),
        else_=chunks.c.next_attempt_at,
    )
    return (
        update(chunks)
        .where(chunks.c.id == head)
        .values(
            generation=chunks.c.generation + 1, lease_until=due, parked_on=None, next_attempt_at=due
        )
        .returning(*_ARMED_COLUMNS)
    )


def lock_chat_senders(db: Session, conversations: Collection[Conversation]) -> None:
    """Wait for the sends that are ending a message in these chats (PostgreSQL).

    The send that ends a chat's message arms its next head in the same transaction
    (:func:`arm_next_head`); a message enqueued meanwhile is invisible to it. Locking
    the chats' sending messages first makes the enqueuer's own arming wait for that
    transaction, and then see the message ended. SQLite runs one writer at a time.
    """
    if not conversations or db.get_bind().dialect.name != "postgresql":
        return
    unique = sorted(set(conversations))
    for start in range(0, len(unique), IN_LIST_BATCH):
        batch = unique[start : start + IN_LIST_BATCH]
        db.execute(
            select(Message.id)
            .where(
                tuple_(Message.account_id, Message.to_user_id).in_(batch),
                Message.status == MessageStatus.SENDING,
            )
            .with_for_update(read=True)
        )


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
    armed = arm(db, [next_id], now=now)
    return Accepted(armed, message_final=False, next_part=armed[0] if armed else None)


def _pending_seqs(db: Session, message_id: int) -> list[int]:
    return list(
        db.scalars(
            select(Chunk.seq).where(
                Chunk.message_id == message_id, Chunk.status == ChunkStatus.PENDING
            )
        )
    )


def _deliver(db: Session, message_id: int, now: dt.datetime) -> None:
    unconfirmed = (
        select(Chunk.id)
        .where(Chunk.message_id == message_id, Chunk.last_outcome == AttemptOutcome.UNCONFIRMED)
        .exists()
    )
    ended = db.execute(
        update(Message)
        .where(Message.id == message_id, Message.status.not_in(_DELIVERED))
        .values(
            status=case(
                (unconfirmed, MessageStatus.UNCONFIRMED.value),
                else_=MessageStatus.DELIVERED.value,
            ),
            delivered_at=now,
            dead_at=None,
            dead_reason=None,
        )
        .returning(Message.created_at, Message.status)
    ).one_or_none()
    if ended is not None:
        _count_ended(db, ended[1], latency_seconds=(now - ended[0]).total_seconds())


def record_outcome(db: Session, chunk_id: int, *, outcome: str, attempt_no: int) -> None:
    """Note the class of the chunk's latest attempt (shown by ``delivery show``) and
    how many attempts it had."""
    db.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id)
        .values(
            last_outcome=outcome,
            attempt_count=case(
                (Chunk.attempt_count < attempt_no, attempt_no), else_=Chunk.attempt_count
            ),
        )
    )


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
