"""Handing chunks to the broker, always after the ledger has committed them.

A publish is a hint, never the record: if it fails (broker down, Redis flushed),
the chunk is still pending in SQL and the reconciler publishes it again once it
is overdue. Kombu's errors are translated here, at the one place that publishes.

Example::

    with session_scope(engine) as session:
        ...                                   # write message and chunks
    wake_conversations(engine, [("bot-1", "u@im.wechat")])   # after the commit
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from sqlalchemy import Engine, update

from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk
from delivery.ledger.queries import Conversation, Head, conversation_heads
from delivery.ledger.types import utcnow
from delivery.settings import get_settings

__all__ = ["SEND_TASK", "publish_head", "publish_send", "wake_conversations"]

log = logging.getLogger(__name__)

SEND_TASK = "delivery.send_chunk"
# Publishing must not hang a caller when the broker is down: the ledger has it.
_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.1,
    "interval_step": 0.4,
    "interval_max": 1.0,
}


def publish_send(chunk_id: int, *, countdown_seconds: float = 0.0) -> bool:
    """Publish the send task of one chunk; ``False`` (logged) if the broker refused.

    Only the chunk id travels: no token and no text (Flower shows arguments).
    """
    from delivery.worker.app import app

    # A countdown past the visibility timeout would make the broker redeliver the
    # task again and again; a task woken early just waits again.
    countdown = min(max(0.0, countdown_seconds), get_settings().max_countdown_seconds)
    try:
        app.send_task(
            SEND_TASK,
            args=[chunk_id],
            countdown=countdown,
            retry=True,
            retry_policy=_PUBLISH_RETRY_POLICY,
        )
    except Exception as exc:  # kombu and redis raise many types; all mean "not published"
        log.warning(
            "could not publish chunk %s (%s: %s); it stays pending in the ledger "
            "and the reconciler will publish it",
            chunk_id,
            type(exc).__name__,
            exc,
        )
        return False
    return True


def publish_head(head: Head) -> bool:
    """Publish a conversation's head with a countdown to its not-before time."""
    countdown = (head.next_attempt_at - utcnow()).total_seconds()
    return publish_send(head.chunk_id, countdown_seconds=countdown)


def wake_conversations(
    engine: Engine,
    conversations: Iterable[Conversation],
    *,
    only_messages: Collection[int] | None = None,
) -> list[Head]:
    """Publish the head of each conversation; return the heads published.

    Call after the transaction that changed the conversations has committed: a
    head computed after both commits cannot be missed by both sides (the sender
    finishing a message, and the enqueuer adding one). With ``only_messages``,
    a head is published only when it belongs to one of those messages (an older
    head is already on its way, and waking it again would duplicate its task).
    """
    now = utcnow()
    with session_scope(engine) as session:
        heads = [
            head
            for head in conversation_heads(session, conversations)
            if only_messages is None or head.message_id in only_messages
        ]
        # A head that waited behind another message is due from now, not from
        # when it was enqueued: the reconciler must not take it for lost.
        stale = [head.chunk_id for head in heads if head.next_attempt_at < now]
        if stale:
            session.execute(update(Chunk).where(Chunk.id.in_(stale)).values(next_attempt_at=now))
    return [head for head in heads if publish_head(head)]
