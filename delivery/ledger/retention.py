"""Retention: the one module that deletes messages, chunks and attempts.

A message goes, with its chunks and their attempts, once it is final and ended
before a cutoff. When it ended, and the index that finds it:

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
letters for an operator to replay (see :mod:`delivery.retention`).

**Small batches.** :func:`prune_batch` is meant to be one short transaction: the
ids of at most ``limit`` messages are selected first, oldest first through the
index above (on PostgreSQL locked, skipping rows another transaction holds, so a
batch never waits on a send or a replay), then their attempts, chunks and the
messages themselves are deleted by those ids. Between batches sending goes on.

Example::

    with session_scope(engine) as db:
        pruned = prune_batch(db, before=cutoff, statuses={MessageStatus.DELIVERED}, limit=500)
    pruned.messages          # 0 once nothing is left to prune
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from delivery.ledger.models import Attempt, Chunk, Message
from delivery.ledger.states import FINAL_MESSAGE_STATES, MessageStatus

__all__ = ["Pruned", "count_prunable", "prune_batch"]


@dataclass(frozen=True)
class Pruned:
    """How many rows went (or would go), per table."""

    messages: int = 0
    chunks: int = 0
    attempts: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.messages + other.messages,
            self.chunks + other.chunks,
            self.attempts + other.attempts,
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
