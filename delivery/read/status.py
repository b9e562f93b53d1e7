"""What an operator asks first: how are the accounts, the queues, the backlog?

Built on the same readings as the metrics exporter (``delivery.monitoring``), so
``delivery status`` and ``/metrics`` cannot disagree, plus what only an operator
needs: open messages per account, the oldest waiting chunk by id, the configured
and learned rate. Redis being down does not stop the report: its parts are left empty and
``redis_error`` says why.

Example::

    report = collect_status()
    report.messages_by_status      # {"queued": 3, "sending": 1, "delivered": 120, "dead": 0}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select

from delivery import runtime
from delivery.errors import LimiterUnavailable
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk, Message
from delivery.ledger.states import OPEN_MESSAGE_STATES, ChunkStatus, MessageStatus
from delivery.ledger.types import utcnow
from delivery.monitoring.exporter import gate_for, redis_client
from delivery.monitoring.ledger_stats import SqlLedgerSource
from delivery.monitoring.redis_stats import RedisSource
from delivery.ratelimit.gate import AccountState
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = ["AccountStatus", "StatusReport", "collect_status"]


@dataclass(frozen=True)
class AccountStatus:
    account_id: str
    session_state: str
    expired_since: dt.datetime | None
    open_messages: int
    gate: AccountState | None  # cooldown, strikes, line; None when Redis could not be asked
    learned_per_minute: float | None = None  # a learned rate limit in force
    learned_from: str | None = None  # the evidence it was learned from
    pace_note: str | None = None  # the latest word on its pace: learned, or why not


@dataclass(frozen=True)
class StatusReport:
    accounts: list[AccountStatus]
    configured_per_minute: float
    # Open statuses: messages now; final ones: totals of all time (retention keeps them).
    messages_by_status: dict[str, int]
    chunks_waiting: int
    oldest_waiting: tuple[int, int, float] | None  # message id, chunk seq, seconds waiting
    dead_last_day: int
    readers: dict[str, int] = field(default_factory=dict)  # by state
    awaiting_reader: int = 0  # open messages whose chat waits for its reader
    oldest_awaiting_reader_seconds: float | None = None
    queue_depths: dict[str, int] = field(default_factory=dict)
    redis_error: str | None = None


def collect_status() -> StatusReport:
    """The state of accounts, queues and backlog, now."""
    process = runtime.current()
    settings, engine = process.settings, process.engine
    now = utcnow()
    stats = SqlLedgerSource(
        engine,
        reader_window_seconds=settings.reader_window_seconds,
        reader_budget=settings.reader_budget,
        pace_memory_seconds=settings.pace_memory_seconds,
    ).read()
    with session_scope(engine, readonly=True) as session:
        open_by_account = {
            account_id: count
            for account_id, count in session.execute(
                select(Message.account_id, func.count())
                .where(Message.status.in_([str(s) for s in OPEN_MESSAGE_STATES]))
                .group_by(Message.account_id)
            )
        }
        oldest = session.execute(
            select(Message.id, Chunk.seq, Message.created_at)
            .join(Chunk, Chunk.message_id == Message.id)
            .where(Chunk.status == ChunkStatus.PENDING)
            .order_by(Message.created_at, Message.id, Chunk.seq)
            .limit(1)
        ).first()
        dead_recently = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.status == MessageStatus.DEAD,
                Message.dead_at >= now - dt.timedelta(days=1),
            )
        )
    account_ids = [a.account_id for a in stats.accounts]
    gate = gate_for(settings)
    redis_stats = RedisSource(
        broker=redis_client(settings.broker_url), gate=gate, queues=(SEND_QUEUE, DEFAULT_QUEUE)
    ).read(account_ids)
    gate_states: dict[str, AccountState] = {}
    error = redis_stats.error
    if redis_stats.cooldown_seconds is not None:
        try:
            gate_states = {a: gate.state(a) for a in account_ids}
        except LimiterUnavailable as exc:
            error = str(exc)
    return StatusReport(
        configured_per_minute=settings.send_rate_per_minute,
        accounts=[
            AccountStatus(
                account_id=a.account_id,
                session_state=a.state,
                expired_since=a.expired_at,
                open_messages=open_by_account.get(a.account_id, 0),
                gate=gate_states.get(a.account_id),
                learned_per_minute=a.learned_per_minute,
                learned_from=a.learned_from,
                pace_note=a.pace_note,
            )
            for a in stats.accounts
        ],
        messages_by_status={k: v for k, v in stats.messages.items() if v},
        chunks_waiting=stats.chunks_waiting,
        oldest_waiting=(
            (oldest[0], oldest[1], (now - oldest[2]).total_seconds()) if oldest else None
        ),
        dead_last_day=int(dead_recently or 0),
        readers={k: v for k, v in stats.readers.items() if v},
        awaiting_reader=stats.awaiting_reader,
        oldest_awaiting_reader_seconds=(
            (now - stats.oldest_awaiting_reader_since).total_seconds()
            if stats.oldest_awaiting_reader_since
            else None
        ),
        queue_depths=dict(redis_stats.queue_depths or {}),
        redis_error=error,
    )
