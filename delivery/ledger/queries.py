"""Queries the pipeline asks of the ledger, in one place.

The central idea is the *head of a conversation*: the first pending chunk of the
message from one account to one peer that is already sending, or else of the
oldest queued one. Only the head may be sent, so chunks arrive in order and
messages to one chat never interleave.

Example::

    with session_scope(engine) as session:
        heads = conversation_heads(session, [("bot-1", "u@im.wechat")])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from delivery.ledger.models import Account, Chunk, Message, Reader
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    ChunkStatus,
    ClosedReason,
    MessageStatus,
    ParkReason,
    SessionState,
)

__all__ = [
    "IN_LIST_BATCH",
    "Conversation",
    "Head",
    "blocker",
    "conversation_heads",
    "due_parked_heads",
    "lost_heads",
    "oldest_parked_head",
]

Conversation = tuple[str, str]  # (account_id, to_user_id)
IN_LIST_BATCH = 500  # keeps tuple IN lists well inside every driver's parameter limit


@dataclass(frozen=True)
class Head:
    """The chunk a conversation must send next, and when it may be sent."""

    account_id: str
    to_user_id: str
    message_id: int
    chunk_id: int
    next_attempt_at: dt.datetime
    generation: int


def _head(row: Row[str, str, int, int, dt.datetime, int]) -> Head:
    account_id, to_user_id, message_id, chunk_id, next_attempt_at, generation = row
    return Head(account_id, to_user_id, message_id, chunk_id, next_attempt_at, generation)


def _open() -> list[str]:
    return [str(state) for state in OPEN_MESSAGE_STATES]


def _head_rows(message_ids: Any) -> Select[str, str, int, int, dt.datetime, int]:
    """The first pending chunk of each message in ``message_ids`` (a list or a subquery)."""
    first_pending = (
        select(Chunk.message_id, func.min(Chunk.seq).label("seq"))
        .where(Chunk.message_id.in_(message_ids), Chunk.status == ChunkStatus.PENDING)
        .group_by(Chunk.message_id)
        .subquery()
    )
    return (
        select(
            Message.account_id,
            Message.to_user_id,
            Message.id,
            Chunk.id,
            Chunk.next_attempt_at,
            Chunk.generation,
        )
        .join(Chunk, Chunk.message_id == Message.id)
        .join(
            first_pending,
            and_(first_pending.c.message_id == Chunk.message_id, first_pending.c.seq == Chunk.seq),
        )
        .order_by(Message.id)
    )


def _oldest_open() -> Select[int]:
    """Each conversation's head message: the one already sending, else the oldest queued.

    Only one message of a chat is ever sending, so a replayed message (queued
    again) waits for the one in progress instead of interleaving with it.
    """
    sending = func.min(case((Message.status == MessageStatus.SENDING, Message.id)))
    return (
        select(func.coalesce(sending, func.min(Message.id)))
        .where(Message.status.in_(_open()))
        .group_by(Message.account_id, Message.to_user_id)
    )


def conversation_heads(session: Session, conversations: Iterable[Conversation]) -> list[Head]:
    """The head of each conversation that has an open message, oldest message first."""
    unique = sorted(set(conversations))
    heads: list[Head] = []
    for start in range(0, len(unique), IN_LIST_BATCH):
        batch = unique[start : start + IN_LIST_BATCH]
        oldest = _oldest_open().where(tuple_(Message.account_id, Message.to_user_id).in_(batch))
        heads.extend(_head(row) for row in session.execute(_head_rows(oldest)))
    return sorted(heads, key=lambda head: head.message_id)


def lost_heads(
    session: Session, *, now: dt.datetime, grace_seconds: float, limit: int
) -> list[Head]:
    """Heads whose task may be lost: not parked, and their lease (when the live task
    was to show life next) ran out longer ago than the grace. A waiting task's
    lease is its due time, so it is not lost; chunks queued behind a head never are."""
    ran_out_before = now - dt.timedelta(seconds=grace_seconds)
    query = (
        _head_rows(_oldest_open())
        .where(
            Chunk.parked_on.is_(None),
            or_(Chunk.lease_until.is_(None), Chunk.lease_until < ran_out_before),
        )
        .limit(limit)
    )
    return [_head(row) for row in session.execute(query)]


def due_parked_heads(
    session: Session,
    *,
    now: dt.datetime,
    reader_window_seconds: float,
    reader_budget: int,
    limit: int,
) -> list[Head]:
    """Parked heads to publish again: their time came (a deadline, a recheck), or
    what they wait for cleared while the wake that should have published them was
    lost (the account's session is good again; the reader wrote)."""
    heard_since = now - dt.timedelta(seconds=reader_window_seconds)
    reader_open = and_(
        or_(Reader.closed_reason.is_(None), Reader.closed_reason == ClosedReason.RELEASED),
        Reader.last_inbound_at > heard_since,
        Reader.sends_since_inbound < reader_budget,
    )
    query = (
        _head_rows(_oldest_open())
        .join(Account, Account.id == Message.account_id)
        .outerjoin(
            Reader,
            and_(Reader.account_id == Message.account_id, Reader.peer_id == Message.to_user_id),
        )
        .where(
            Chunk.parked_on.is_not(None),
            or_(
                Chunk.next_attempt_at <= now,
                and_(
                    Chunk.parked_on == ParkReason.SESSION,
                    Account.session_state != SessionState.EXPIRED,
                ),
                and_(Chunk.parked_on == ParkReason.READER, reader_open),
            ),
        )
        .limit(limit)
    )
    return [_head(row) for row in session.execute(query)]


def oldest_parked_head(session: Session, *, account_id: str, reason: ParkReason) -> int | None:
    """The chunk id of the account's oldest head parked on ``reason``, if any."""
    query = (
        _head_rows(_oldest_open().where(Message.account_id == account_id))
        .where(Chunk.parked_on == reason)
        .limit(1)
    )
    row = session.execute(query).first()
    return None if row is None else _head(row).chunk_id


def blocker(
    session: Session,
    *,
    account_id: str,
    to_user_id: str,
    message_id: int,
    sending: bool,
    seq: int,
) -> int | None:
    """What stands before chunk ``seq`` of an open message, if it is not its chat's
    head: the message that must go first (that message's own id when an earlier
    chunk of it is still pending), or None. One query, on the conversation index.

    A message is the head when no other message of the chat is sending and none
    older is open; a sending message is the head unless an older one is sending
    too (which the pipeline never lets happen).
    """
    others = select(Message.id).where(
        Message.account_id == account_id,
        Message.to_user_id == to_user_id,
        Message.id != message_id,
    )
    if sending:
        others = others.where(Message.status == MessageStatus.SENDING, Message.id < message_id)
    else:
        others = others.where(
            or_(
                Message.status == MessageStatus.SENDING,
                and_(Message.status == MessageStatus.QUEUED, Message.id < message_id),
            )
        )
    earlier = select(literal(message_id)).where(
        select(Chunk.id)
        .where(
            Chunk.message_id == message_id,
            Chunk.status == ChunkStatus.PENDING,
            Chunk.seq < seq,
        )
        .exists()
    )
    # The message sending now is the head; else the oldest open one.
    first = others.order_by(case((Message.status == MessageStatus.SENDING, 0), else_=1), Message.id)
    found: int | None = session.scalar(
        select(func.coalesce(first.limit(1).scalar_subquery(), earlier.scalar_subquery()))
    )
    return found
