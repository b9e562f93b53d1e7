"""A send task's first look at the ledger: its chunk, message, account and chat head.

Read in one short read-only transaction, before anything is locked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.ledger.models import Account, Chunk, Message
from delivery.ledger.queries import conversation_heads

__all__ = ["Snapshot", "read_snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """What a send task needs to decide whether to try now."""

    chunk_id: int
    chunk_status: str
    seq: int
    next_attempt_at: dt.datetime
    message_id: int
    message_status: str
    chunk_count: int
    deadline_at: dt.datetime
    account_id: str
    to_user_id: str
    session_state: str
    head_chunk_id: int | None
    head_message_id: int | None


def read_snapshot(session: Session, chunk_id: int) -> Snapshot | None:
    """The chunk's snapshot, or None when the chunk is not in the ledger."""
    row = session.execute(
        select(Chunk, Message, Account.session_state)
        .join(Message, Chunk.message_id == Message.id)
        .join(Account, Message.account_id == Account.id)
        .where(Chunk.id == chunk_id)
    ).one_or_none()
    if row is None:
        return None
    chunk, message, session_state = row
    heads = conversation_heads(session, [(message.account_id, message.to_user_id)])
    head = heads[0] if heads else None
    return Snapshot(
        chunk_id=chunk.id,
        chunk_status=chunk.status,
        seq=chunk.seq,
        next_attempt_at=chunk.next_attempt_at,
        message_id=message.id,
        message_status=message.status,
        chunk_count=message.chunk_count,
        deadline_at=message.deadline_at,
        account_id=message.account_id,
        to_user_id=message.to_user_id,
        session_state=session_state,
        head_chunk_id=head.chunk_id if head else None,
        head_message_id=head.message_id if head else None,
    )
