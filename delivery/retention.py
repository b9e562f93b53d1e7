"""Retention: final messages are deleted some time after they ended, a small batch at a time.

Beat runs ``delivery.prune`` every ``DELIVERY_RETENTION_INTERVAL_SECONDS``:
delivered and superseded messages that ended more than ``DELIVERY_RETENTION_DAYS``
ago go, with their chunks and attempts, for at most :data:`RUN_SECONDS` per run
(the rest waits for the next run). Dead letters stay until an operator replays
them, or prunes them with ``delivery prune --include-dead``. Open messages are
never deleted, however old (:mod:`delivery.ledger.retention` holds the rules and
the only deletes of those tables).

Each batch of at most :data:`BATCH_MESSAGES` messages is its own short
transaction, so sends go on between batches and a stopped prune loses nothing.

Example::

    before = cutoff(now=utcnow(), older_than_days=30)
    prune(engine, before=before, statuses=statuses(include_dead=False))
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from sqlalchemy import Engine

from delivery.ledger.db import session_scope
from delivery.ledger.retention import Pruned, count_prunable, prune_batch
from delivery.ledger.states import MessageStatus

__all__ = ["BATCH_MESSAGES", "RUN_SECONDS", "Pruned", "count", "cutoff", "prune", "statuses"]

BATCH_MESSAGES = 500  # messages per transaction: a few thousand rows with their parts
RUN_SECONDS = 20.0  # the most one beat run spends pruning; the rest waits for the next


def statuses(*, include_dead: bool) -> frozenset[MessageStatus]:
    """The final statuses pruned: delivered and superseded, and dead when asked."""
    kept = {MessageStatus.DELIVERED, MessageStatus.SUPERSEDED}
    return frozenset(kept | {MessageStatus.DEAD} if include_dead else kept)


def cutoff(*, now: dt.datetime, older_than_days: float) -> dt.datetime:
    """Messages that ended before this are past retention.

    Example: ``cutoff(now=datetime(2026, 12, 31, tzinfo=UTC), older_than_days=30)``
    is 2026-12-01 00:00 UTC.
    """
    return now - dt.timedelta(days=older_than_days)


def count(engine: Engine, *, before: dt.datetime, statuses: frozenset[MessageStatus]) -> Pruned:
    """How many messages, chunks and attempts :func:`prune` would delete now."""
    with session_scope(engine, readonly=True) as db:
        return count_prunable(db, before=before, statuses=statuses)


def prune(
    engine: Engine,
    *,
    before: dt.datetime,
    statuses: frozenset[MessageStatus],
    batch_messages: int = BATCH_MESSAGES,
    max_seconds: float | None = None,
    on_batch: Callable[[Pruned], None] | None = None,
) -> Pruned:
    """Delete the messages in ``statuses`` that ended before ``before``, batch by batch.

    Stops when none is left, or after the batch that passes ``max_seconds``.
    ``on_batch`` hears of each batch after its commit (a progress bar). Returns
    what went in all.

    Raises:
        ValueError: a status in ``statuses`` is not final.
        LedgerError: the database is unreachable (the batches before it stay done).
    """
    started = time.monotonic()
    total = Pruned()
    while True:
        with session_scope(engine) as db:
            batch = prune_batch(db, before=before, statuses=statuses, limit=batch_messages)
        total += batch
        if on_batch is not None:
            on_batch(batch)
        if not batch.messages:
            return total
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return total
