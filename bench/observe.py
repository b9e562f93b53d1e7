"""Watching a run from outside: the simulator's lockouts, what arrived, the ledger's states.

:class:`LockoutSampler` polls the simulator's snapshot (every 20 ms) and keeps the
lockout intervals it saw, so a lockout's start is known to within one poll.
:func:`tally` reads a snapshot once the run is over. :class:`LedgerProbe` reads the
ledger with a plain read-only connection of its own, so that watching does not take
SQLite's write lock (the pipeline's sessions begin with ``BEGIN IMMEDIATE``).

Example::

    with LockoutSampler(simulator, ACCOUNT_ID, t0=start) as sampler:
        ...
    sampler.intervals         # [(12.01, 27.3), ...] seconds after t0
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import create_engine, func, select

from bench.workload import Briefing, chunk_index
from delivery.ledger.models import Attempt, Message
from delivery.ledger.states import OPEN_MESSAGE_STATES
from delivery.simulator import PlatformSimulator, Snapshot

__all__ = ["Arrivals", "LedgerProbe", "LockoutSampler", "tally"]

_SAMPLE_SECONDS = 0.02


class LockoutSampler:
    """A thread recording the account's lockout intervals (seconds after ``t0``)."""

    def __init__(self, simulator: PlatformSimulator, account_id: str, *, t0: float) -> None:
        self._simulator = simulator
        self._account_id = account_id
        self._t0 = t0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lockout sampler", daemon=True)
        self.intervals: list[tuple[float, float]] = []

    def __enter__(self) -> LockoutSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            now = time.monotonic()
            report = self._simulator.model.snapshot().accounts.get(self._account_id)
            until = report.lockout_until if report else None
            if until is None:
                continue
            start, end = now - self._t0, until - self._t0
            if self.intervals and self.intervals[-1][1] >= start - 2 * _SAMPLE_SECONDS:
                self.intervals[-1] = (self.intervals[-1][0], end)
            else:
                self.intervals.append((start, end))


@dataclass(frozen=True)
class Arrivals:
    """What the platform got, per the simulator's own counters and records."""

    accepted_at: list[float]  # seconds after t0, sorted
    chunks_accepted: int
    messages_delivered: int
    messages_partial: int  # some but not all of their chunks arrived
    duplicates: int
    rate_limited: int
    rejected: dict[str, int]
    chats_out_of_order: int
    requests: int


def tally(snapshot: Snapshot, batch: list[Briefing], *, t0: float) -> Arrivals:
    """Count what arrived; a message is delivered when every one of its chunks arrived."""
    where = chunk_index(batch)
    got: Counter[int] = Counter()
    times: list[float] = []
    out_of_order = 0
    for items in snapshot.messages.values():
        order = [where[item.text] for item in items if item.text in where]
        out_of_order += order != sorted(order)
        for item in items:
            times.append(item.arrived_at - t0)
        got.update(index for index, _ in set(order))
    delivered = sum(1 for b in batch if got[b.index] == len(b.chunks))
    partial = sum(1 for b in batch if 0 < got[b.index] < len(b.chunks))
    counters = snapshot.counters
    return Arrivals(
        accepted_at=sorted(times),
        chunks_accepted=counters.accepted,
        messages_delivered=delivered,
        messages_partial=partial,
        duplicates=counters.duplicates,
        rate_limited=counters.rejected.get("rate_limited", 0),
        rejected=dict(counters.rejected),
        chats_out_of_order=out_of_order,
        requests=counters.requests.get("sendmessage", 0),
    )


class LedgerProbe:
    """Read-only looks at the ledger from outside the pipeline."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))

    def close(self) -> None:
        self._engine.dispose()

    def statuses(self) -> Counter[str]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(Message.status, func.count()).group_by(Message.status))
            return Counter({status: count for status, count in rows})

    def open_messages(self) -> int:
        """Messages queued or sending (through the status index: cheap in a big ledger)."""
        with self._engine.connect() as connection:
            count = connection.scalar(
                select(func.count()).where(
                    Message.status.in_([str(s) for s in OPEN_MESSAGE_STATES])
                )
            )
            return int(count or 0)

    def last_final_at(self) -> dt.datetime | None:
        """When the last message became delivered or dead."""
        with self._engine.connect() as connection:
            delivered = connection.scalar(select(func.max(Message.delivered_at)))
            dead = connection.scalar(select(func.max(Message.dead_at)))
        found = [t for t in (delivered, dead) if t is not None]
        return max(found) if found else None

    def attempt_outcomes(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(Attempt.outcome, func.count()).group_by(Attempt.outcome)
            )
            return {outcome: count for outcome, count in rows}
