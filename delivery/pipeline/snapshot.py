"""A send task's first look at the ledger: its chunk, message, account and reader.

Read in one short read-only transaction (one statement; two for a chunk tried
before), before anything is locked. Whether the chunk is still its chat's head
is checked by the claim, under the account's lock: a task is published only for
a head, so a task that is not one is rare, and looking here too would cost every
chunk a query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from delivery.ledger.models import Account, Attempt, Chunk, Message, Reader
from delivery.ledger.states import AttemptOutcome

__all__ = ["Snapshot", "read_snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """What a send task needs to decide whether to try now."""

    chunk_id: int
    chunk_status: str
    seq: int
    generation: int
    parked_on: str | None
    next_attempt_at: dt.datetime
    message_id: int
    message_status: str
    chunk_count: int
    deadline_at: dt.datetime
    account_id: str
    to_user_id: str
    session_state: str
    in_flight_attempts: tuple[int, ...]  # attempts with no answer recorded (yet)
    created_at: dt.datetime
    reader_last_inbound_at: dt.datetime | None
    reader_sends_since_inbound: int
    reader_closed_reason: str | None
    learned_rate_per_minute: float | None = None  # the account's learned limit, if any
    learned_at: dt.datetime | None = None


def read_snapshot(session: Session, chunk_id: int) -> Snapshot | None:
    """The chunk's snapshot, or None when the chunk is not in the ledger."""
    row = session.execute(
        select(
            Chunk.status,
            Chunk.seq,
            Chunk.generation,
            Chunk.parked_on,
            Chunk.next_attempt_at,
            Chunk.attempt_count,
            Message.id,
            Message.status,
            Message.chunk_count,
            Message.deadline_at,
            Message.account_id,
            Message.to_user_id,
            Account.session_state,
            Message.created_at,
            Reader.last_inbound_at,
            Reader.sends_since_inbound,
            Reader.closed_reason,
            Account.learned_rate_per_minute,
            Account.learned_at,
        )
        .join(Message, Chunk.message_id == Message.id)
        .join(Account, Message.account_id == Account.id)
        .outerjoin(
            Reader,
            and_(Reader.account_id == Message.account_id, Reader.peer_id == Message.to_user_id),
        )
        .where(Chunk.id == chunk_id)
    ).one_or_none()
    if row is None:
        return None
    values: tuple[Any, ...] = tuple(row)  # more columns than the Row's typing follows
    (status, seq, generation, parked_on, due, attempts, message_id, message_status) = values[:8]
    chunk_count, deadline_at, account_id, to_user_id, session_state = values[8:13]
    created_at, last_inbound_at, sends_since_inbound, closed_reason = values[13:17]
    learned_rate_per_minute, learned_at = values[17:]
    in_flight: tuple[int, ...] = ()
    if attempts:  # only a chunk tried before can have an attempt without an answer
        in_flight = tuple(
            session.scalars(
                select(Attempt.id).where(
                    Attempt.chunk_id == chunk_id, Attempt.outcome == AttemptOutcome.IN_FLIGHT
                )
            )
        )
    return Snapshot(
        chunk_id=chunk_id,
        chunk_status=status,
        seq=seq,
        generation=generation,
        parked_on=parked_on,
        next_attempt_at=due,
        message_id=message_id,
        message_status=message_status,
        chunk_count=chunk_count,
        deadline_at=deadline_at,
        account_id=account_id,
        to_user_id=to_user_id,
        session_state=session_state,
        in_flight_attempts=in_flight,
        created_at=created_at,
        reader_last_inbound_at=last_inbound_at,
        reader_sends_since_inbound=sends_since_inbound or 0,
        reader_closed_reason=closed_reason,
        learned_rate_per_minute=learned_rate_per_minute,
        learned_at=learned_at,
    )
