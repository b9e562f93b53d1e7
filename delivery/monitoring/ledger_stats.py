"""What the SQL ledger says, read with a handful of small queries per scrape.

The ledger is the truth whatever the number of workers and hosts, so every
delivery number comes from here, and a scrape costs the same with a million
messages in the ledger as with none:

- **Outcomes** (messages by final status, attempts by outcome, the latency
  histogram) are the running totals of :mod:`delivery.ledger.counters`, kept as
  the outcomes are written: a few dozen rows, never a recount. They are totals
  of all time; retention deleting old rows does not lower them.
- **What is open** (messages queued or sending, chunks pending, attempts in
  flight, the oldest waiting) is counted live, each through an index on its
  status, so it costs what is open, not what the ledger holds.
- Accounts and readers are read whole (one row per bot account, per peer).

Example::

    source = SqlLedgerSource(engine_for(settings.database_url))
    stats = source.read()
    stats.messages["delivered"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, Engine, and_, case, func, or_, select
from sqlalchemy import exc as sa_exc

from delivery.errors import ConfigError, LedgerError
from delivery.ledger import counters
from delivery.ledger.counters import LATENCY_BUCKETS_SECONDS
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Attempt, Chunk, Message, Reader
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    ClosedReason,
    MessageStatus,
    ParkReason,
    ReaderState,
)
from delivery.ledger.types import utcnow
from delivery.ratelimit.learning import learned_rate

__all__ = [
    "LATENCY_BUCKETS_SECONDS",
    "AccountSession",
    "LatencyHistogram",
    "LedgerSource",
    "LedgerStats",
    "SqlLedgerSource",
]

_OPEN = sorted(str(s) for s in OPEN_MESSAGE_STATES)


@dataclass(frozen=True)
class LatencyHistogram:
    """Delivered messages by latency: ``buckets`` are (upper bound seconds, cumulative count)."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum_seconds: float


@dataclass(frozen=True)
class AccountSession:
    """An account's session as the ledger has it."""

    account_id: str
    state: str
    expired_at: dt.datetime | None
    learned_per_minute: float | None = None  # its learned rate limit still in force
    learned_from: str | None = None  # ... and the evidence it was learned from
    pace_note: str | None = None  # the latest word on its pace: learned, or why not


@dataclass(frozen=True)
class LedgerStats:
    """One reading of the ledger. Every known status and outcome has a count (0 if none)."""

    messages: Mapping[str, int]
    attempts: Mapping[str, int]
    chunks_waiting: int
    oldest_waiting_since: dt.datetime | None  # created_at of the oldest open message
    accounts: Sequence[AccountSession]
    latency: LatencyHistogram
    readers: Mapping[str, int]  # by ReaderState, under the window and budget in force
    awaiting_reader: int  # open messages whose chat waits for its reader
    oldest_awaiting_reader_since: dt.datetime | None  # created_at of the oldest such


class LedgerSource(Protocol):
    """Where the collector gets ledger numbers; tests may hand it any such object."""

    def read(self) -> LedgerStats:
        """One reading. Raises :class:`~delivery.errors.LedgerError` if the ledger fails."""
        ...


class SqlLedgerSource:
    """Reads :class:`LedgerStats` from a SQLite or PostgreSQL ledger.

    The latency buckets are :data:`~delivery.ledger.counters.LATENCY_BUCKETS_SECONDS`,
    the bounds deliveries are counted in as they happen.

    Raises:
        ConfigError: the engine is of another database.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        reader_window_seconds: float = 86_400.0,
        reader_budget: int = 10,
        pace_memory_seconds: float = 30 * 86_400.0,
    ) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"metrics read SQLite or PostgreSQL ledgers, not {engine.dialect.name}"
            )
        self._engine = engine
        self._reader_window = dt.timedelta(seconds=reader_window_seconds)
        self._reader_budget = reader_budget
        self._pace_memory_seconds = pace_memory_seconds

    def _account(
        self,
        account_id: str,
        state: str,
        expired_at: dt.datetime | None,
        learned: float | None,
        learned_at: dt.datetime | None,
        learned_from: str | None,
        pace_note: str | None,
    ) -> AccountSession:
        in_force = learned_rate(
            learned, learned_at, now=utcnow(), memory_seconds=self._pace_memory_seconds
        )
        return AccountSession(
            account_id,
            state,
            expired_at,
            learned_per_minute=in_force,
            learned_from=learned_from if in_force is not None else None,
            pace_note=pace_note,
        )

    def read(self) -> LedgerStats:
        """Read every number in one transaction.

        Raises:
            LedgerError: the ledger is unreachable, not migrated, or refused a query.
        """
        try:
            with session_scope(self._engine, readonly=True) as session:
                totals = counters.read_totals(session)
                # .all(), not the Result: dict() would take its keys() for a mapping's.
                open_messages = dict(
                    session.execute(
                        select(Message.status, func.count())
                        .where(Message.status.in_(_OPEN))
                        .group_by(Message.status)
                    ).all()
                )
                in_flight = session.scalar(
                    select(func.count()).where(Attempt.outcome == AttemptOutcome.IN_FLIGHT)
                )
                waiting = session.scalar(
                    select(func.count()).where(Chunk.status == ChunkStatus.PENDING)
                )
                # Every open message has a pending chunk, waiting since the message was made.
                oldest = session.scalar(
                    select(func.min(Message.created_at)).where(Message.status.in_(_OPEN))
                )
                accounts = [
                    self._account(*row)
                    for row in session.execute(
                        select(
                            Account.id,
                            Account.session_state,
                            Account.session_expired_at,
                            Account.learned_rate_per_minute,
                            Account.learned_at,
                            Account.learned_from,
                            Account.pace_note,
                        ).order_by(Account.id)
                    )
                ]
                readers = dict(
                    session.execute(
                        select(state := self._reader_state(utcnow()), func.count()).group_by(state)
                    ).all()
                )
                awaiting, awaiting_since = session.execute(
                    select(func.count(Message.id), func.min(Message.created_at)).where(
                        Message.status.in_(_OPEN),
                        select(Chunk.id)
                        .where(
                            Chunk.message_id == Message.id,
                            Chunk.status == ChunkStatus.PENDING,
                            Chunk.parked_on == ParkReason.READER,
                        )
                        .exists(),
                    )
                ).one()
        except sa_exc.SQLAlchemyError as exc:  # what session_scope leaves untranslated
            where = self._engine.url.render_as_string(hide_password=True)
            raise LedgerError(f"the ledger at {where} failed: {type(exc).__name__}") from exc
        ended = _labelled(totals, counters.MESSAGES)
        answered = _labelled(totals, counters.ATTEMPTS)
        answered[AttemptOutcome.IN_FLIGHT] = int(in_flight or 0)
        count, total = totals.get((counters.LATENCY, counters.TOTAL_LABEL), (0, 0.0))
        return LedgerStats(
            # awaiting_reader is shown, never stored: delivery_messages_awaiting_reader counts it
            messages=_every(
                (s for s in MessageStatus if s != MessageStatus.AWAITING_READER),
                {**ended, **open_messages},
            ),
            attempts=_every(AttemptOutcome, answered),
            chunks_waiting=int(waiting or 0),
            oldest_waiting_since=oldest,
            accounts=accounts,
            latency=LatencyHistogram(
                buckets=tuple(
                    (
                        float(bound),
                        totals.get((counters.LATENCY, counters.bucket_label(bound)), (0, 0.0))[0],
                    )
                    for bound in LATENCY_BUCKETS_SECONDS
                ),
                count=count,
                sum_seconds=total,
            ),
            readers=_every(ReaderState, readers),
            awaiting_reader=int(awaiting or 0),
            oldest_awaiting_reader_since=awaiting_since,
        )

    def _reader_state(self, now: dt.datetime) -> ColumnElement[str]:
        """Each reader's state, as :func:`delivery.policy.reader_rules.reader_state` reads it."""
        heard = Reader.last_inbound_at
        return case(
            (
                and_(
                    Reader.dropping_since.is_not(None),
                    or_(heard.is_(None), heard < Reader.dropping_since),
                ),
                ReaderState.DROPPING,
            ),
            (
                and_(heard.is_not(None), heard <= now - self._reader_window),
                ReaderState.WINDOW_CLOSED,
            ),
            (
                and_(heard.is_not(None), Reader.sends_since_inbound >= self._reader_budget),
                ReaderState.BUDGET_SPENT,
            ),
            (Reader.closed_reason == ClosedReason.REFUSED, ReaderState.WINDOW_CLOSED),
            (heard.is_not(None), ReaderState.OPEN),
            else_=ReaderState.UNKNOWN,
        )


def _every(known: Iterable[str], counted: Mapping[str, int]) -> dict[str, int]:
    """A count for every known value (0 if none, so each series exists from the start),
    and for any other value the ledger holds."""
    every = {str(value): 0 for value in known}
    every.update({str(value): int(n) for value, n in counted.items()})
    return every


def _labelled(totals: Mapping[tuple[str, str], tuple[int, float]], metric: str) -> dict[str, int]:
    return {label: n for (name, label), (n, _) in totals.items() if name == metric}
