"""Running totals of outcomes: the one module that writes ``ledger_counters``.

The exporter must not recount a million rows on every scrape, so the outcomes
it reports are counted as they are written: the ledger verb that ends a message
(:mod:`delivery.ledger.outbox`) or answers an attempt
(:mod:`delivery.ledger.attempts`) adds to a total here, in its own transaction.

===================  ===============  ===================================================
metric               label            what ``n`` (and ``total``) add up
===================  ===============  ===================================================
``messages``         final status     messages that became delivered, dead, superseded
``attempts``         outcome          attempts given that outcome (not ``in_flight``)
``delivery_latency`` bucket bound     delivered messages with created -> delivered
                                      at most that many seconds (cumulative)
``delivery_latency`` ``+Inf``         every delivered message; ``total``: their seconds
===================  ===============  ===================================================

**Totals of all time.** Nothing is ever subtracted, so each is a Prometheus
counter: retention deleting old rows leaves them as they are, a replayed dead
letter still counts as one death (and as a delivery once it is delivered), and
a bare refusal counts as ``refused`` when answered and again as ``rate_limited``
or ``reader_refused`` once a probe decides which it was (:func:`add_attempts`).

**Same transaction, written at commit.** :func:`add` only notes a delta on the
session; just before the session commits, the deltas go in one
``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`` statement, executed for
each of its rows (in a fixed order, so two writers cannot deadlock on them). A rolled
back transaction adds
nothing. No total is read and written back, so concurrent workers cannot lose
each other's counts. Each commit writes to one of :data:`SHARDS` rows per total,
picked at random, so busy workers rarely wait on one another's row lock; a
reader sums the shards.

Example::

    with session_scope(engine) as db:
        add_attempts(db, AttemptOutcome.ACCEPTED)
    # committed: attempts/accepted is one more
"""

from __future__ import annotations

import bisect
import functools
import random
from typing import Any, Final

from sqlalchemy import Table, bindparam, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from delivery.ledger.models import Counter

__all__ = [
    "ATTEMPTS",
    "LATENCY",
    "LATENCY_BUCKETS_SECONDS",
    "MESSAGES",
    "SHARDS",
    "TOTAL_LABEL",
    "add",
    "add_attempts",
    "add_delivered",
    "add_ended",
    "bucket_label",
    "read_totals",
]

MESSAGES: Final = "messages"
ATTEMPTS: Final = "attempts"
LATENCY: Final = "delivery_latency"
TOTAL_LABEL: Final = "+Inf"
# created_at -> delivered_at: from a one-chunk reply to a day-long session expiry.
# Fixed here, where deliveries are counted: changing it needs a migration to recount.
LATENCY_BUCKETS_SECONDS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)
# Rows per total: concurrent commits pick one at random instead of queueing on one lock.
SHARDS: Final = 8

_PENDING = "delivery.counters.pending"
_Key = tuple[str, str]


def bucket_label(bound_seconds: float) -> str:
    """A bucket's label as Prometheus writes its ``le`` (``1.0``, ``86400.0``)."""
    return repr(float(bound_seconds))


_BOUNDS = tuple(float(b) for b in LATENCY_BUCKETS_SECONDS)
_BUCKET_LABELS = tuple(bucket_label(b) for b in _BOUNDS)


def add(db: Session, metric: str, label: str, *, n: int = 1, total: float = 0.0) -> None:
    """Add ``n`` (and ``total``) to a total when ``db``'s transaction commits."""
    if n == 0 and total == 0.0:
        return
    pending: dict[_Key, list[float]] = db.info.setdefault(_PENDING, {})
    delta = pending.setdefault((metric, label), [0, 0.0])
    delta[0] += n
    delta[1] += total


def add_ended(db: Session, status: str, *, n: int = 1) -> None:
    """``n`` messages became ``status`` (dead or superseded; see :func:`add_delivered`)."""
    add(db, MESSAGES, status, n=n)


def add_delivered(db: Session, *, latency_seconds: float) -> None:
    """One message was delivered, ``latency_seconds`` after it was enqueued."""
    seconds = max(0.0, latency_seconds)
    add(db, MESSAGES, "delivered")
    add(db, LATENCY, TOTAL_LABEL, total=seconds)
    for label in _BUCKET_LABELS[bisect.bisect_left(_BOUNDS, seconds) :]:
        add(db, LATENCY, label)


def add_attempts(db: Session, outcome: str, *, n: int = 1) -> None:
    """``n`` attempts were given ``outcome`` (an answer, lost, or a probe's decision)."""
    add(db, ATTEMPTS, outcome, n=n)


def read_totals(db: Session) -> dict[_Key, tuple[int, float]]:
    """Every total, its shards summed: (metric, label) to (n, total)."""
    rows = db.execute(
        select(
            Counter.metric, Counter.label, func.sum(Counter.n), func.sum(Counter.total)
        ).group_by(Counter.metric, Counter.label)
    )
    return {(metric, label): (int(n or 0), float(t or 0.0)) for metric, label, n, t in rows}


def _table() -> Table:
    table = Counter.__table__
    assert isinstance(table, Table)
    return table


@event.listens_for(Session, "before_commit")
def _write_pending(db: Session) -> None:
    pending: dict[_Key, list[float]] | None = db.info.pop(_PENDING, None)
    if not pending:
        return
    shard = random.randrange(SHARDS)
    rows = [
        {"metric": metric, "label": label, "shard": shard, "n": int(n), "total": float(total)}
        for (metric, label), (n, total) in sorted(pending.items())
    ]
    connection = db.connection()
    # One statement, built once per dialect; several rows go as one executemany.
    connection.execute(_upsert_statement(connection.dialect.name), rows)


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    insert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(_table())
    statement = insert.values(
        {name: bindparam(name) for name in ("metric", "label", "shard", "n", "total")}
    )
    return statement.on_conflict_do_update(
        index_elements=["metric", "label", "shard"],
        set_={
            "n": _table().c.n + statement.excluded.n,
            "total": _table().c.total + statement.excluded.total,
        },
    )


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(db: Session, _previous_transaction: Any) -> None:
    db.info.pop(_PENDING, None)
