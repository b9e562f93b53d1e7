"""What an operator asks first: how are the accounts, the queues, the backlog?

Read from the ledger (the truth) and Redis (queues, cooldowns). Redis being down
does not stop the report: its parts are left empty and ``redis_error`` says why.

Example::

    report = collect_status()
    report.messages_by_status      # {"queued": 3, "sending": 1, "delivered": 120, "dead": 0}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import redis
from sqlalchemy import func, select

from delivery.errors import LimiterUnavailable
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account, Chunk, Message
from delivery.ledger.states import OPEN_MESSAGE_STATES, ChunkStatus, MessageStatus
from delivery.ledger.types import utcnow
from delivery.ratelimit.gate import AccountGate, Rate
from delivery.settings import get_settings
from delivery.worker.queues import DEFAULT_QUEUE, SEND_QUEUE

__all__ = ["AccountStatus", "StatusReport", "collect_status"]


@dataclass(frozen=True)
class AccountStatus:
    account_id: str
    session_state: str
    expired_since: dt.datetime | None
    open_messages: int
    cooldown_seconds: float | None  # None when Redis could not be asked
    rate_limit_strikes: int | None


@dataclass(frozen=True)
class StatusReport:
    accounts: list[AccountStatus]
    messages_by_status: dict[str, int]
    chunks_waiting: int
    oldest_waiting: tuple[int, int, float] | None  # message id, chunk seq, seconds waiting
    dead_last_day: int
    queue_depths: dict[str, int] = field(default_factory=dict)
    redis_error: str | None = None


def collect_status() -> StatusReport:
    """The state of accounts, queues and backlog, now."""
    settings = get_settings()
    now = utcnow()
    with session_scope(engine_for(settings.database_url), readonly=True) as session:
        by_status = {
            state: count
            for state, count in session.execute(
                select(Message.status, func.count()).group_by(Message.status)
            )
        }
        open_by_account = {
            account_id: count
            for account_id, count in session.execute(
                select(Message.account_id, func.count())
                .where(Message.status.in_([str(s) for s in OPEN_MESSAGE_STATES]))
                .group_by(Message.account_id)
            )
        }
        accounts = list(session.scalars(select(Account).order_by(Account.id)))
        waiting = session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.status == ChunkStatus.PENDING)
        )
        oldest = session.execute(
            select(Message.id, Chunk.seq, Message.created_at)
            .join(Chunk, Chunk.message_id == Message.id)
            .where(Chunk.status == ChunkStatus.PENDING)
            .order_by(Message.created_at)
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
        rows = [
            (a.id, a.session_state, a.session_expired_at, open_by_account.get(a.id, 0))
            for a in accounts
        ]
    gate_states, depths, error = _from_redis([r[0] for r in rows])
    return StatusReport(
        accounts=[
            AccountStatus(
                account_id=account_id,
                session_state=state,
                expired_since=since,
                open_messages=count,
                cooldown_seconds=gate_states.get(account_id, (None, None))[0],
                rate_limit_strikes=gate_states.get(account_id, (None, None))[1],
            )
            for account_id, state, since, count in rows
        ],
        messages_by_status={str(k): int(v) for k, v in by_status.items()},
        chunks_waiting=int(waiting or 0),
        oldest_waiting=(
            (oldest[0], oldest[1], (now - oldest[2]).total_seconds()) if oldest else None
        ),
        dead_last_day=int(dead_recently or 0),
        queue_depths=depths,
        redis_error=error,
    )


def _from_redis(
    account_ids: list[str],
) -> tuple[dict[str, tuple[float, int]], dict[str, int], str | None]:
    settings = get_settings()
    try:
        broker = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2)
        depths = {queue: int(broker.llen(queue)) for queue in (SEND_QUEUE, DEFAULT_QUEUE)}
        gate = AccountGate(
            redis.Redis.from_url(settings.limiter_redis_url, socket_connect_timeout=2),
            rate=Rate(per_minute=settings.send_rate_per_minute),
            lock_ttl_seconds=settings.send_lock_ttl_seconds,
            prefix=settings.redis_key_prefix,
        )
        states = {}
        for account_id in account_ids:
            state = gate.state(account_id)
            states[account_id] = (state.cooldown_seconds, state.strikes)
    except (redis.RedisError, LimiterUnavailable) as exc:
        return {}, {}, f"Redis unreachable: {exc}"
    return states, depths, None
