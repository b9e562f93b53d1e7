"""Retention: the one module that deletes ledger rows, outbound and inbound.

**Outbound.** A message goes, with its chunks and their attempts, once it is
final and ended before a cutoff. When it ended, and the index that finds it:

============  ====================================  ===========================
status        ended at                              index
============  ====================================  ===========================
delivered     ``delivered_at``                      ``ix_messages_delivered_at``
superseded    ``dead_at`` (when it was replaced)    ``ix_messages_dead_at``
dead          ``dead_at``                           ``ix_messages_dead_at``
============  ====================================  ===========================

**Nothing open is deleted.** The statuses asked for must be final, and the status
is part of the selection and of the delete of the message rows themselves. A
replayed dead letter is open again (its ``dead_at`` cleared), so it is not
selected. Which final statuses go is the caller's choice: beat leaves dead
letters for an operator to replay (see :mod:`delivery.api.pruning`).

**Small batches.** :func:`prune_batch` is meant to be one short transaction: the
ids of at most ``limit`` messages are selected first, oldest first through the
index above (on PostgreSQL locked, skipping rows another transaction holds, so a
batch never waits on a send or a replay), then their attempts, chunks and the
messages themselves are deleted by those ids. Between batches sending goes on.

**Inbound.** An inbound message goes, with its hand-overs and their attempts,
once it was received (``received_at``, index ``ix_inbound_messages_received_at``)
before a cutoff and **none of its hand-overs is pending**: a message the agent
has not had yet stays, however old. Duplicates and malformed items (which have
no hand-overs) go by age alone. :func:`prune_inbound_batch` goes as
:func:`prune_batch` does: the oldest ids first (locked, skipping held rows, on
PostgreSQL), then their attempts, hand-overs and the messages. Each delete asks
again that no hand-over of the message is pending, so a hand-over reopened
meanwhile (a broker that lost its tasks) keeps its message.

Example::

    with session_scope(engine) as db:
        pruned = prune_batch(db, before=cutoff, statuses={MessageStatus.DELIVERED}, limit=500)
    pruned.messages          # 0 once nothing is left to prune
    with session_scope(engine) as db:
        pruned = prune_inbound_batch(db, before=cutoff, limit=500)
    pruned.inbound_messages  # 0 once nothing is left to prune
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import astuple, dataclass

from sqlalchemy import ColumnElement, Select, delete, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from delivery.ledger.models import (
    Attempt,
    Chunk,
    Handover,
    HandoverAttempt,
    InboundMessage,
    Message,
)
from delivery.ledger.states import FINAL_MESSAGE_STATES, HandoverStatus, MessageStatus

__all__ = [
    "Pruned",
    "count_prunable",
    "count_prunable_inbound",
    "prune_batch",
    "prune_inbound_batch",
]


@dataclass(frozen=True)
class Pruned:
    """How many rows went (or would go), per table: ``messages``, ``chunks`` and
    ``attempts``; ``inbound_messages``, ``inbound_handovers`` and ``inbound_attempts``."""

    messages: int = 0
    chunks: int = 0
    attempts: int = 0
    inbound_messages: int = 0
    inbound_handovers: int = 0
    inbound_attempts: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            *(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True))
        )


def _groups(
    statuses: Collection[MessageStatus],
) -> list[tuple[InstrumentedAttribute[dt.datetime | None], list[str]]]:
    """The statuses asked for, grouped by the column that says when they ended."""
    wanted = set(statuses)
    if not wanted <= FINAL_MESSAGE_STATES:
        open_ = ", ".join(sorted(wanted - FINAL_MESSAGE_STATES))
        raise ValueError(f"only final messages are ever deleted, not {open_}")
    groups = [
        (Message.delivered_at, [MessageStatus.DELIVERED]),
        (Message.dead_at, [MessageStatus.SUPERSEDED, MessageStatus.DEAD]),
    ]
    return [
        (column, [str(s) for s in group if s in wanted])
        for column, group in groups
        if wanted.intersection(group)
    ]


def _ended_before(
    column: InstrumentedAttribute[dt.datetime | None], states: list[str], before: dt.datetime
) -> list[ColumnElement[bool]]:
    return [Message.status.in_(states), column < before]


def count_prunable(
    db: Session, *, before: dt.datetime, statuses: Collection[MessageStatus]
) -> Pruned:
    """How many messages, chunks and attempts :func:`prune_batch` would delete in all."""
    total = Pruned()
    for column, states in _groups(statuses):
        ids = select(Message.id).where(*_ended_before(column, states, before))
        chunk_ids = select(Chunk.id).where(Chunk.message_id.in_(ids))
        total += Pruned(
            messages=_count(db, select(func.count()).where(*_ended_before(column, states, before))),
            chunks=_count(db, select(func.count()).where(Chunk.message_id.in_(ids))),
            attempts=_count(db, select(func.count()).where(Attempt.chunk_id.in_(chunk_ids))),
        )
    return total


def _count(db: Session, query: Select[int]) -> int:
    return int(db.scalar(query) or 0)


def prune_batch(
    db: Session, *, before: dt.datetime, statuses: Collection[MessageStatus], limit: int
) -> Pruned:
    """Delete at most ``limit`` messages in ``statuses`` that ended before ``before``.

    Oldest first, with their chunks and attempts. Returns what went; ``messages``
    is 0 when nothing is left. The caller's transaction should hold one batch.

    Raises:
        ValueError: a status in ``statuses`` is not final.
    """
    for column, states in _groups(statuses):
        query = (
            select(Message.id)
            .where(*_ended_before(column, states, before))
            .order_by(column, Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
        ids = list(db.scalars(query))
        if ids:
            return _delete(db, ids, states)
    return Pruned()


def _delete(db: Session, ids: list[int], states: list[str]) -> Pruned:
    chunk_ids = select(Chunk.id).where(Chunk.message_id.in_(ids))
    # None of these rows is loaded in the session: nothing to synchronise.
    plain = {"synchronize_session": False}
    attempts = db.execute(
        delete(Attempt).where(Attempt.chunk_id.in_(chunk_ids)), execution_options=plain
    )
    chunks = db.execute(delete(Chunk).where(Chunk.message_id.in_(ids)), execution_options=plain)
    messages = db.execute(
        delete(Message).where(Message.id.in_(ids), Message.status.in_(states)),
        execution_options=plain,
    )
    return Pruned(_rowcount(messages), _rowcount(chunks), _rowcount(attempts))


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# --- inbound --------------------------------------------------------------------------------


def _settled(inbound_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """None of the message's hand-overs is pending (true of one that has none)."""
    other = aliased(Handover)  # an alias: within a delete of hand-overs it is not the row itself
    return ~exists().where(other.inbound_id == inbound_id, other.status == HandoverStatus.PENDING)


def _inbound_past(before: dt.datetime) -> list[ColumnElement[bool]]:
    return [InboundMessage.received_at < before, _settled(InboundMessage.id)]


def count_prunable_inbound(db: Session, *, before: dt.datetime) -> Pruned:
    """How many inbound messages, hand-overs and their attempts
    :func:`prune_inbound_batch` would delete in all."""
    ids = select(InboundMessage.id).where(*_inbound_past(before))
    return Pruned(
        inbound_messages=_count(db, select(func.count()).where(*_inbound_past(before))),
        inbound_handovers=_count(db, select(func.count()).where(Handover.inbound_id.in_(ids))),
        inbound_attempts=_count(
            db, select(func.count()).where(HandoverAttempt.inbound_id.in_(ids))
        ),
    )


def prune_inbound_batch(db: Session, *, before: dt.datetime, limit: int) -> Pruned:
    """Delete at most ``limit`` inbound messages received before ``before`` none of whose
    hand-overs is pending.

    Oldest first, with their hand-overs and attempts. Returns what went;
    ``inbound_messages`` is 0 when nothing is left. The caller's transaction should
    hold one batch.
    """
    query = (
        select(InboundMessage.id)
        .where(*_inbound_past(before))
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
    )
    ids = list(db.scalars(query))
    if not ids:
        return Pruned()
    plain = {"synchronize_session": False}  # none of these rows is loaded in the session
    attempts = db.execute(
        delete(HandoverAttempt).where(
            HandoverAttempt.inbound_id.in_(ids), _settled(HandoverAttempt.inbound_id)
        ),
        execution_options=plain,
    )
    handovers = db.execute(
        delete(Handover).where(
            Handover.inbound_id.in_(ids),
            Handover.status != HandoverStatus.PENDING,  # checked again on a row just reopened
            _settled(Handover.inbound_id),
        ),
        execution_options=plain,
    )
    messages = db.execute(
        delete(InboundMessage).where(
            InboundMessage.id.in_(ids),
            ~exists().where(Handover.inbound_id == InboundMessage.id),
            ~exists().where(HandoverAttempt.inbound_id == InboundMessage.id),
        ),
        execution_options=plain,
    )
    return Pruned(
        inbound_messages=_rowcount(messages),
        inbound_handovers=_rowcount(handovers),
        inbound_attempts=_rowcount(attempts),
    )
