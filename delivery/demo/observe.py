"""What the demo watches: the ledger and the platform, read as one snapshot.

Example::

    watch = Watcher(engine=engine, simulator=simulator, account_id="demo-bot")
    now = watch.snapshot()
    now.delivered, now.chunks_accepted, now.session_state
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Attempt, BriefingRun, Chunk, Message
from delivery.ledger.states import AttemptOutcome, ChunkStatus, MessageStatus
from delivery.simulator import PlatformSimulator, Snapshot

__all__ = ["Progress", "Watcher"]


@dataclass(frozen=True)
class Progress:
    """Counts at one instant."""

    messages: int
    delivered: int
    dead: int
    chunks: int
    chunks_sent: int
    chunks_accepted: int  # as the platform saw them
    rate_limited: int  # attempts answered "rate limited"
    session_state: str
    briefing_runs: int
    briefing_messages: int

    @property
    def final(self) -> int:
        return self.delivered + self.dead


class Watcher:
    """Reads the ledger and the simulator; never writes."""

    def __init__(self, *, engine: Engine, simulator: PlatformSimulator, account_id: str) -> None:
        self._engine = engine
        self._simulator = simulator
        self._account_id = account_id

    def platform(self) -> Snapshot:
        return self._simulator.model.snapshot()

    def snapshot(self) -> Progress:
        with session_scope(self._engine, readonly=True) as session:
            by_status = Counter(
                {
                    status: count
                    for status, count in session.execute(
                        select(Message.status, func.count()).group_by(Message.status)
                    )
                }
            )
            chunk_counts = Counter(
                {
                    status: count
                    for status, count in session.execute(
                        select(Chunk.status, func.count()).group_by(Chunk.status)
                    )
                }
            )
            limited = session.scalar(
                select(func.count())
                .select_from(Attempt)
                .where(Attempt.outcome == AttemptOutcome.RATE_LIMITED)
            )
            account = session.get(Account, self._account_id)
            runs = session.scalar(
                select(func.count())
                .select_from(BriefingRun)
                .where(BriefingRun.status == "enqueued")
            )
            from_briefings = session.scalar(
                select(func.count()).select_from(Message).where(Message.source.like("briefing:%"))
            )
        return Progress(
            messages=sum(by_status.values()),
            delivered=by_status[MessageStatus.DELIVERED],
            dead=by_status[MessageStatus.DEAD],
            chunks=sum(chunk_counts.values()),
            chunks_sent=chunk_counts[ChunkStatus.SENT],
            chunks_accepted=self.platform().counters.accepted,
            rate_limited=int(limited or 0),
            session_state=account.session_state if account else "missing",
            briefing_runs=int(runs or 0),
            briefing_messages=int(from_briefings or 0),
        )
