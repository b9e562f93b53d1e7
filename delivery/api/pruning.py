"""Retention: final messages and handed-over inbound messages are deleted some time
after they ended or arrived, a small batch at a time.

Beat runs ``delivery.prune`` every ``DELIVERY_RETENTION_INTERVAL_SECONDS`` for at
most :data:`RUN_SECONDS` a run (the rest waits for the next run), with the cutoff
``DELIVERY_RETENTION_DAYS`` ago:

- delivered and superseded messages that ended before it go, with their chunks
  and attempts. Dead letters stay until an operator replays them, or prunes them
  with ``delivery prune --include-dead``. Open messages are never deleted,
  however old.
- inbound messages received before it go, with their hand-overs and hand-over
  attempts, once none of their hand-overs is pending (duplicates and malformed
  items have none, and go by age alone). A message the agent has not had yet is
  never deleted, however old.

:mod:`delivery.ledger.retention` holds the rules and the only deletes of those
tables. Each batch of at most :data:`BATCH_MESSAGES` messages is its own short
transaction, outbound and inbound batches in turn, so sends and polls go on
between batches and a stopped prune loses nothing.

Example::

    before = cutoff(now=utcnow(), older_than_days=30)
    prune(engine, before=before, statuses=statuses(include_dead=False))
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from delivery.ledger.db import session_scope
from delivery.ledger.retention import (
    Pruned,
    count_prunable,
    count_prunable_inbound,
    prune_batch,
    prune_inbound_batch,
)
from delivery.ledger.states import MessageStatus

__all__ = [
    "BATCH_MESSAGES",
    "RUN_SECONDS",
    "Pruned",
    "count",
    "count_inbound",
    "cutoff",
    "describe",
    "prune",
    "statuses",
]

BATCH_MESSAGES = 500  # messages per transaction: a few thousand rows with their parts
RUN_SECONDS = 20.0  # the most one beat run spends pruning; the rest waits for the next

log = logging.getLogger(__name__)


def statuses(*, include_dead: bool) -> frozenset[MessageStatus]:
    """The final statuses pruned: delivered and superseded, and dead when asked."""
    kept = {MessageStatus.DELIVERED, MessageStatus.SUPERSEDED}
    return frozenset(kept | {MessageStatus.DEAD} if include_dead else kept)


def cutoff(*, now: dt.datetime, older_than_days: float) -> dt.datetime:
    """Messages that ended (inbound ones: were received) before this are past retention.

    Example: ``cutoff(now=datetime(2026, 12, 31, tzinfo=UTC), older_than_days=30)``
    is 2026-12-01 00:00 UTC.
    """
    return now - dt.timedelta(days=older_than_days)


def describe(pruned: Pruned, *, before: dt.datetime) -> str:
    """What went (or would go) from every table, for a log line or beat's result.

    Example: ``2 message(s), 3 chunk(s), 2 attempt(s) that ended before 2026-12-01 00:00
    UTC; 1 inbound message(s), 1 hand-over(s), 2 hand-over attempt(s) received before
    2026-12-01 00:00 UTC``.
    """
    when = f"{before:%Y-%m-%d %H:%M} UTC"
    return (
        f"{pruned.messages} message(s), {pruned.chunks} chunk(s), {pruned.attempts} attempt(s) "
        f"that ended before {when}; {pruned.inbound_messages} inbound message(s), "
        f"{pruned.inbound_handovers} hand-over(s), {pruned.inbound_attempts} hand-over "
        f"attempt(s) received before {when}"
    )


def count(engine: Engine, *, before: dt.datetime, statuses: frozenset[MessageStatus]) -> Pruned:
    """How many messages, chunks and attempts :func:`prune` would delete now."""
    with session_scope(engine, readonly=True) as db:
        return count_prunable(db, before=before, statuses=statuses)


def count_inbound(engine: Engine, *, before: dt.datetime) -> Pruned:
    """How many inbound messages, hand-overs and hand-over attempts :func:`prune`
    would delete now."""
    with session_scope(engine, readonly=True) as db:
        return count_prunable_inbound(db, before=before)


def prune(
    engine: Engine,
    *,
    before: dt.datetime,
    statuses: frozenset[MessageStatus],
    batch_messages: int = BATCH_MESSAGES,
    max_seconds: float | None = None,
    on_batch: Callable[[Pruned], None] | None = None,
) -> Pruned:
    """Delete the messages in ``statuses`` that ended before ``before``, and the inbound
    messages received before it that the agent has had, batch by batch.

    An outbound and an inbound batch take turns, so neither waits for the other's
    backlog. Stops when none is left, or after the batch that passes
    ``max_seconds``. ``on_batch`` hears of each batch after its commit (a progress
    bar). Returns what went in all, and logs it.

    Raises:
        ValueError: a status in ``statuses`` is not final.
        LedgerError: the database is unreachable (the batches before it stay done).
    """
    started = time.monotonic()
    total = Pruned()
    left: list[Callable[[Session], Pruned]] = [
        functools.partial(prune_batch, before=before, statuses=statuses, limit=batch_messages),
        functools.partial(prune_inbound_batch, before=before, limit=batch_messages),
    ]
    try:
        while left:
            for step in list(left):
                with session_scope(engine) as db:
                    batch = step(db)
                total += batch
                if on_batch is not None:
                    on_batch(batch)
                if not batch.messages and not batch.inbound_messages:
                    left.remove(step)
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    return total
        return total
    finally:
        if total != Pruned():
            log.info("pruned %s", describe(total, before=before))
