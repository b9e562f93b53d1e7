"""Replaying dead messages once their cause is cured.

A replay puts a dead message back in the pipeline from its first unsent chunk:
chunks already accepted by the platform stay sent and are never sent again;
the failed and unsent ones become pending with a fresh failure budget and a new
deadline, keeping their ``client_id`` (so the platform can still de-duplicate).
The message is queued again: it goes next in its chat, ahead of newer messages
still queued there, but after a message that is being sent right now (chunks of
two messages never interleave).

Example::

    replay("42")                                   # one message
    replay_dead_since(utcnow() - timedelta(hours=2))   # every message dead since then
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from delivery.errors import LedgerError, MessageNotFound, NotReplayable
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Chunk, Message
from delivery.ledger.states import ChunkStatus, MessageStatus
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import wake_conversations
from delivery.settings import get_settings
from delivery.validation import parse_message_id

__all__ = ["ReplayResult", "dead_since", "replay", "replay_dead_since"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    """A replayed message: where it resumes and why it had died."""

    message_id: str
    resumes_at_chunk: int
    chunks: int
    was_dead_because: str | None


def replay(message_id: str) -> ReplayResult:
    """Put a dead message back in the pipeline from its first unsent chunk.

    Raises:
        InvalidMessageId: not a message id.
        MessageNotFound: no such message.
        NotReplayable: the message is not dead.
        LedgerError: the database is unreachable.
    """
    row_id = parse_message_id(message_id)
    settings = get_settings()
    engine = engine_for(settings.database_url)
    now = utcnow()
    with session_scope(engine) as session:
        message = session.get(Message, row_id, with_for_update=True)
        if message is None:
            raise MessageNotFound(f"no message with id {message_id}")
        if message.status != MessageStatus.DEAD:
            raise NotReplayable(
                f"message {message_id} is {message.status}; only a dead message is replayed"
            )
        session.execute(
            update(Chunk)
            .where(
                Chunk.message_id == row_id,
                Chunk.status.in_([ChunkStatus.FAILED, ChunkStatus.UNSENT]),
            )
            .values(status=ChunkStatus.PENDING, failure_count=0, next_attempt_at=now)
        )
        statuses = list(
            session.scalars(
                select(Chunk.status).where(Chunk.message_id == row_id).order_by(Chunk.seq)
            )
        )
        sent = statuses.count(ChunkStatus.SENT)
        reason = message.dead_reason
        # Queued, even with chunks sent: it must not take the chat from a message in progress.
        message.status = MessageStatus.QUEUED
        message.dead_at = None
        message.dead_reason = None
        message.deadline_at = now + dt.timedelta(seconds=settings.delivery_deadline_seconds)
        message.replay_count += 1
        conversation = (message.account_id, message.to_user_id)
    log.info(
        "message %s replayed from chunk %d/%d (it had died: %s)",
        message_id,
        sent + 1,
        len(statuses),
        reason,
    )
    try:
        wake_conversations(engine, [conversation])
    except LedgerError as exc:  # the replay is committed; the reconciler publishes it
        log.warning(
            "message %s replayed; publishing it waits for the reconciler (%s)", message_id, exc
        )
    return ReplayResult(str(row_id), sent + 1, len(statuses), reason)


def dead_since(since: dt.datetime) -> list[str]:
    """Ids of the messages that died at or after ``since``, oldest first."""
    with session_scope(engine_for(get_settings().database_url), readonly=True) as session:
        rows = session.scalars(
            select(Message.id)
            .where(Message.status == MessageStatus.DEAD, Message.dead_at >= since)
            .order_by(Message.id)
        )
        return [str(row) for row in rows]


def replay_dead_since(
    since: dt.datetime, *, progress: Callable[[ReplayResult], None] | None = None
) -> list[ReplayResult]:
    """Replay every message dead since ``since``, one transaction each."""
    results = []
    for message_id in dead_since(since):
        try:
            result = replay(message_id)
        except NotReplayable:
            continue  # replayed by someone else meanwhile
        results.append(result)
        if progress is not None:
            progress(result)
    return results
