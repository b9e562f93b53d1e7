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

from sqlalchemy import select

from delivery import runtime
from delivery.errors import LedgerError, MessageNotFound, NotReplayable
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Message
from delivery.ledger.states import MessageStatus
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import wake_conversations
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
    process = runtime.current()
    settings, engine = process.settings, process.engine
    now = utcnow()
    deadline = now + dt.timedelta(seconds=settings.delivery_deadline_seconds)
    with session_scope(engine) as session:
        status = session.scalar(select(Message.status).where(Message.id == row_id))
        if status is None:
            raise MessageNotFound(f"no message with id {message_id}")
        if status != MessageStatus.DEAD:
            raise NotReplayable(
                f"message {message_id} is {status}; only a dead message is replayed"
            )
        replayed = outbox.replay(session, row_id, now=now, deadline=deadline)
    if replayed is None:
        log.warning("message %s: every chunk had been accepted; marked delivered", message_id)
        raise NotReplayable(
            f"message {message_id} has nothing left to send (the platform accepted every "
            "chunk); it is marked delivered"
        )
    log.info(
        "message %s replayed from chunk %d/%d (it had died: %s)",
        message_id,
        replayed.resumes_at_chunk,
        replayed.chunks,
        replayed.was_dead_because,
    )
    try:
        wake_conversations(engine, process.publisher, [replayed.conversation])
    except LedgerError as exc:  # the replay is committed; the reconciler publishes it
        log.warning(
            "message %s replayed; publishing it waits for the reconciler (%s)", message_id, exc
        )
    return ReplayResult(
        str(row_id), replayed.resumes_at_chunk, replayed.chunks, replayed.was_dead_because
    )


def dead_since(since: dt.datetime) -> list[str]:
    """Ids of the messages that died at or after ``since``, oldest first."""
    with session_scope(runtime.current().engine, readonly=True) as session:
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
