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
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    MessageStatus,
    ParkReason,
)
from delivery.simulator import PlatformSimulator, Snapshot

__all__ = ["Progress", "Watcher"]


@dataclass(frozen=True)
class Progress:
    """Counts at one instant."""

    messages: int
    delivered: int
    dead: int
    unconfirmed: int  # ended with parts accepted without a message_id (silent drops)
    chunks: int
    chunks_sent: int
    chunks_accepted: int  # as the platform saw them
    rate_limited: int  # attempts answered "rate limited"
    session_state: str
    briefing_runs: int
    briefing_messages: int
    awaiting_reader: int  # open messages whose chat waits for its reader
    quiet_open: int  # open messages to the reader who had not written for a day

    @property
    def final(self) -> int:
        return self.delivered + self.dead + self.unconfirmed


class Watcher:
    """Reads the ledger and the simulator; never writes."""

    def __init__(
        self,
        *,
        engine: Engine,
        simulator: PlatformSimulator,
        account_id: str,
        quiet_reader: str,
    ) -> None:
        self._engine = engine
        self._simulator = simulator
        self._account_id = account_id
        self._quiet_reader = quiet_reader

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
            open_states = [str(s) for s in OPEN_MESSAGE_STATES]
            awaiting = session.scalar(
                select(func.count(func.distinct(Chunk.message_id))).where(
                    Chunk.status == ChunkStatus.PENDING, Chunk.parked_on == ParkReason.READER
                )
            )
            quiet_open = session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.to_user_id == self._quiet_reader, Message.status.in_(open_states))
            )
        return Progress(
            messages=sum(by_status.values()),
            delivered=by_status[MessageStatus.DELIVERED],
            dead=by_status[MessageStatus.DEAD],
            unconfirmed=by_status[MessageStatus.UNCONFIRMED],
            chunks=sum(chunk_counts.values()),
            chunks_sent=chunk_counts[ChunkStatus.SENT],
            chunks_accepted=self.platform().counters.accepted,
            rate_limited=int(limited or 0),
            session_state=account.session_state if account else "missing",
            briefing_runs=int(runs or 0),
            briefing_messages=int(from_briefings or 0),
            awaiting_reader=int(awaiting or 0),
            quiet_open=int(quiet_open or 0),
        )
