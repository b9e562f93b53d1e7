"""The read side: a message's state, its attempts, lists of messages.

Example::

    info = get_status("42")
    info.status, [c.status for c in info.chunks]
    [a.outcome for a in get_attempts("42")]
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import selectinload

from delivery import runtime
from delivery.errors import MessageNotFound
from delivery.ledger.db import session_scope
from delivery.ledger.models import Attempt, Chunk, Message
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    MessageStatus,
    ParkReason,
    Priority,
)
from delivery.validation import parse_message_id

_OPEN = [str(state) for state in OPEN_MESSAGE_STATES]

__all__ = [
    "AttemptInfo",
    "ChunkInfo",
    "MessageInfo",
    "get_attempts",
    "get_status",
    "list_messages",
    "message_info",
]


@dataclass(frozen=True)
class ChunkInfo:
    """The state of one chunk, as :func:`get_status` reports it."""

    seq: int
    status: str
    client_id: str
    chars: int
    attempts: int
    failures: int
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    last_outcome: str | None
    waiting_for: str | None  # parked on its "session" or its "reader", if it is

    @property
    def confirmed(self) -> bool:
        """Sent and answered with a message_id (or by a platform that gives none); False
        for a chunk accepted without one where the account's answers carry one."""
        return self.status == ChunkStatus.SENT and self.last_outcome != AttemptOutcome.UNCONFIRMED


@dataclass(frozen=True)
class MessageInfo:
    """The state of one message and its chunks."""

    id: str
    account_id: str
    to_user_id: str
    status: str
    source: str | None
    created_at: dt.datetime
    deadline_at: dt.datetime
    delivered_at: dt.datetime | None
    dead_at: dt.datetime | None
    dead_reason: str | None
    replay_count: int
    chunks: tuple[ChunkInfo, ...]
    kind: str = "push"  # "reply" (it goes before pushes) or "push"
    reply_to: str | None = None

    @property
    def chunks_sent(self) -> int:
        return sum(1 for chunk in self.chunks if chunk.status == ChunkStatus.SENT)

    @property
    def chunks_unconfirmed(self) -> int:
        """Chunks the platform accepted without a message_id (possibly dropped silently)."""
        return sum(
            1 for chunk in self.chunks if chunk.status == ChunkStatus.SENT and not chunk.confirmed
        )


@dataclass(frozen=True)
class AttemptInfo:
    """One send attempt, with the platform's raw answer."""

    chunk_seq: int
    attempt_no: int
    started_at: dt.datetime
    duration_ms: int | None
    outcome: str
    http_status: int | None
    ret: int | None
    errcode: int | None
    errmsg: str | None
    detail: str | None
    used_context_token: bool
    worker_host: str | None
    platform_message_id: str | None  # the platform's id of an accepted message, if it said


def get_status(message_id: str) -> MessageInfo:
    """The state of a message and of each of its chunks.

    Raises:
        InvalidMessageId: ``message_id`` is not of the form ``enqueue`` returns.
        MessageNotFound: no message has this id.
    """
    row_id = parse_message_id(message_id)
    engine = runtime.current().engine
    with session_scope(engine, readonly=True) as session:
        message = session.scalars(
            select(Message).where(Message.id == row_id).options(selectinload(Message.chunks))
        ).one_or_none()
        if message is None:
            raise MessageNotFound(f"no message with id {message_id}")
        return message_info(message)


def _awaiting_reader() -> ColumnElement[bool]:
    return (
        select(Chunk.id)
        .where(Chunk.message_id == Message.id, Chunk.parked_on == ParkReason.READER)
        .exists()
    )


def shown_status(message: Message) -> str:
    """The message's state as an operator reads it: an open message whose chat
    waits for its reader is ``awaiting_reader``."""
    if message.status in OPEN_MESSAGE_STATES and any(
        chunk.status == ChunkStatus.PENDING and chunk.parked_on == ParkReason.READER
        for chunk in message.chunks
    ):
        return MessageStatus.AWAITING_READER
    return message.status


def message_info(message: Message) -> MessageInfo:
    """A detached, read-only view of a loaded message row and its chunks."""
    return MessageInfo(
        id=str(message.id),
        account_id=message.account_id,
        to_user_id=message.to_user_id,
        status=shown_status(message),
        source=message.source,
        created_at=message.created_at,
        deadline_at=message.deadline_at,
        delivered_at=message.delivered_at,
        dead_at=message.dead_at,
        dead_reason=message.dead_reason,
        replay_count=message.replay_count,
        kind="reply" if message.priority == Priority.REPLY else "push",
        reply_to=message.reply_to,
        chunks=tuple(
            ChunkInfo(
                seq=chunk.seq,
                status=chunk.status,
                client_id=chunk.client_id,
                chars=len(chunk.text),
                attempts=chunk.attempt_count,
                failures=chunk.failure_count,
                next_attempt_at=chunk.next_attempt_at
                if chunk.status == ChunkStatus.PENDING
                else None,
                sent_at=chunk.sent_at,
                last_outcome=chunk.last_outcome,
                waiting_for=chunk.parked_on if chunk.status == ChunkStatus.PENDING else None,
            )
            for chunk in message.chunks
        ),
    )


def get_attempts(message_id: str) -> list[AttemptInfo]:
    """Every attempt at every chunk of a message, in order.

    Raises:
        InvalidMessageId, MessageNotFound: as :func:`get_status`.
    """
    row_id = parse_message_id(message_id)
    with session_scope(runtime.current().engine, readonly=True) as session:
        if session.get(Message, row_id) is None:
            raise MessageNotFound(f"no message with id {message_id}")
        rows = session.execute(
            select(Chunk.seq, Attempt)
            .join(Attempt, Attempt.chunk_id == Chunk.id)
            .where(Chunk.message_id == row_id)
            .order_by(Attempt.started_at, Attempt.id)
        )
        return [
            AttemptInfo(
                chunk_seq=seq,
                attempt_no=a.attempt_no,
                started_at=a.started_at,
                duration_ms=a.duration_ms,
                outcome=a.outcome,
                http_status=a.http_status,
                ret=a.ret,
                errcode=a.errcode,
                errmsg=a.errmsg,
                detail=a.detail,
                used_context_token=a.used_context_token,
                worker_host=a.worker_host,
                platform_message_id=a.platform_message_id,
            )
            for seq, a in rows
        ]


def list_messages(
    *,
    status: str | None = None,
    account_id: str | None = None,
    to_user_id: str | None = None,
    dead_since: dt.datetime | None = None,
    limit: int = 50,
) -> list[MessageInfo]:
    """The newest messages, filtered; each with its chunks."""
    query = select(Message).options(selectinload(Message.chunks)).order_by(Message.id.desc())
    if status == MessageStatus.AWAITING_READER:
        query = query.where(Message.status.in_(_OPEN), _awaiting_reader())
    elif status is not None:
        query = query.where(Message.status == status)
    if account_id is not None:
        query = query.where(Message.account_id == account_id)
    if to_user_id is not None:
        query = query.where(Message.to_user_id == to_user_id)
    if dead_since is not None:
        query = query.where(Message.dead_at >= dead_since)
    with session_scope(runtime.current().engine, readonly=True) as session:
        return [message_info(m) for m in session.scalars(query.limit(limit))]
