"""The outbox reconciler: the ledger is the queue, the broker only a hint.

A head whose next attempt is overdue by more than a grace period has no live task
(Redis was flushed or restarted, a worker died holding it, a publish failed):
publish it again. A waiting chunk keeps its next attempt time in the future, so
it is left alone; a head woken twice is harmless, since a send first checks the
ledger and the chunk's ``client_id`` never changes.

Example::

    reconcile(engine, grace_seconds=120)   # -> how many chunks were re-published
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Engine, update

from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk
from delivery.ledger.queries import overdue_heads
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import publish_send

__all__ = ["reconcile"]

log = logging.getLogger(__name__)

BATCH = 500  # heads re-published per run; the next run takes the rest


def reconcile(engine: Engine, *, grace_seconds: float, limit: int = BATCH) -> int:
    """Re-publish overdue heads; return how many were published."""
    now = utcnow()
    with session_scope(engine) as session:
        heads = overdue_heads(
            session, before=now - dt.timedelta(seconds=grace_seconds), limit=limit
        )
        if heads:
            # Due now: the next run leaves them alone until they are overdue again.
            session.execute(
                update(Chunk)
                .where(Chunk.id.in_([h.chunk_id for h in heads]))
                .values(next_attempt_at=now)
            )
    published = sum(1 for head in heads if publish_send(head.chunk_id))
    if heads:
        log.warning(
            "reconciler: %d chunk(s) had no live task and were published again "
            "(%d published now, the rest next run): chunks %s",
            len(heads),
            published,
            ", ".join(str(h.chunk_id) for h in heads[:20]) + (" ..." if len(heads) > 20 else ""),
        )
    return published
