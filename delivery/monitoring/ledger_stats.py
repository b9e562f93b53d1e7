"""What the SQL ledger says, read with a handful of aggregate queries per scrape.

The ledger is the truth whatever the number of workers and hosts, so every
delivery number comes from here. Each query is one aggregate (``GROUP BY``,
``COUNT``, ``MIN``, ``SUM(CASE ...)``); no message or chunk row is loaded. Only
the accounts table is read row by row (one row per bot account, a short list).

Example::

    source = SqlLedgerSource(engine_for(settings.database_url))
    stats = source.read()
    stats.messages["delivered"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Engine, Float, and_, case, cast, extract, func, select
from sqlalchemy import exc as sa_exc

from delivery.errors import ConfigError, LedgerError
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

# created_at -> delivered_at: from a one-chunk reply to a day-long session expiry.
LATENCY_BUCKETS_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)
_SECONDS_PER_DAY = 86400.0


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

    Raises:
        ConfigError: the engine is of another database (latency needs its date arithmetic).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        latency_buckets_seconds: Sequence[float] = LATENCY_BUCKETS_SECONDS,
        reader_window_seconds: float = 86_400.0,
        reader_budget: int = 10,
        pace_memory_seconds: float = 30 * 86_400.0,
    ) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"metrics read SQLite or PostgreSQL ledgers, not {engine.dialect.name}"
            )
        self._engine = engine
        self._bounds = tuple(sorted(float(b) for b in latency_buckets_seconds))
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
        )

    def read(self) -> LedgerStats:
        """Read every number in one transaction.

        Raises:
            LedgerError: the ledger is unreachable, not migrated, or refused a query.
        """
        try:
            with session_scope(self._engine, readonly=True) as session:
                # .all(), not the Result: dict() would take its keys() for a mapping's.
                messages = dict(
                    session.execute(
                        select(Message.status, func.count()).group_by(Message.status)
                    ).all()
                )
                attempts = dict(
                    session.execute(
                        select(Attempt.outcome, func.count()).group_by(Attempt.outcome)
                    ).all()
                )
                waiting = session.scalar(
                    select(func.count()).where(Chunk.status == ChunkStatus.PENDING)
                )
                # Every open message has a pending chunk, waiting since the message was made.
                oldest = session.scalar(
                    select(func.min(Message.created_at)).where(
                        Message.status.in_([str(s) for s in OPEN_MESSAGE_STATES])
                    )
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
                        ).order_by(Account.id)
                    )
                ]
                latency = session.execute(
                    select(*self._latency_columns()).where(
                        Message.status == MessageStatus.DELIVERED,
                        Message.delivered_at.is_not(None),
                    )
                ).one()
                readers = dict(
                    session.execute(
                        select(state := self._reader_state(utcnow()), func.count()).group_by(state)
                    ).all()
                )
                awaiting, awaiting_since = session.execute(
                    select(func.count(Message.id), func.min(Message.created_at)).where(
                        Message.status.in_([str(s) for s in OPEN_MESSAGE_STATES]),
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
        count, total, *cumulative = latency
        return LedgerStats(
            # awaiting_reader is shown, never stored: delivery_messages_awaiting_reader counts it
            messages=_every(
                (s for s in MessageStatus if s != MessageStatus.AWAITING_READER), messages
            ),
            attempts=_every(AttemptOutcome, attempts),
            chunks_waiting=int(waiting or 0),
            oldest_waiting_since=oldest,
            accounts=accounts,
            latency=LatencyHistogram(
                buckets=tuple(zip(self._bounds, (int(c or 0) for c in cumulative), strict=True)),
                count=int(count or 0),
                sum_seconds=float(total or 0.0),
            ),
            readers=_every(ReaderState, readers),
            awaiting_reader=int(awaiting or 0),
            oldest_awaiting_reader_since=awaiting_since,
        )

    def _reader_state(self, now: dt.datetime) -> ColumnElement[str]:
        """Each reader's state, as :func:`delivery.policy.readers.reader_state` reads it."""
        heard = Reader.last_inbound_at
        return case(
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

    def _latency_columns(self) -> list[ColumnElement[Any]]:
        """count, sum of seconds, then the cumulative count of each bucket."""
        seconds = self._latency_seconds()
        per_bucket = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in self._bounds]
        return [func.count(), func.sum(seconds), *per_bucket]

    def _latency_seconds(self) -> ColumnElement[float]:
        if self._engine.dialect.name == "sqlite":
            # UTCDateTime is stored as naive UTC text there; julianday() reads it in days.
            days = func.julianday(Message.delivered_at) - func.julianday(Message.created_at)
            return cast(days * _SECONDS_PER_DAY, Float)
        return cast(extract("epoch", Message.delivered_at - Message.created_at), Float)


def _every(known: Iterable[str], counted: Mapping[str, int]) -> dict[str, int]:
    """A count for every known value (0 if none, so each series exists from the start),
    and for any other value the ledger holds."""
    every = {str(value): 0 for value in known}
    every.update({str(value): int(n) for value, n in counted.items()})
    return every
