"""The outbox reconciler: the ledger is the queue, the broker only a hint.

Each run, in small batches:

1. **Lost heads.** A head that is not parked, whose lease ran out longer ago
   than the grace, has no task that showed life: Redis
   was flushed or restarted, a worker died holding it, a publish failed. Unless
   its task is seen waiting in the broker's queue (merely late: a backed-up
   worker) or it waits in its account's line (its turn has not come: the line is
   long, or the account cools down), it is armed (a new generation) and offered to
   its line again. Any older task of it then exits when it runs, so there is never
   more than one live task per chunk. An account whose line holds parts but whose
   next slot nobody holds (its task was lost) gets its slot reserved again.
2. **Parked heads whose time came** (their message's deadline, a suspect chat's
   recheck) **or whose reason cleared** (an account's session healed, a reader
   wrote, but the wake that should have published them was lost): armed and
   published; the task decides (sends, parks again, or kills at the deadline).
3. **Open messages with nothing pending** (a late answer sent the last chunk of a
   message a duplicate had killed): closed, and their chat's next message woken.

Example::

    reconcile(engine, publisher, grace_seconds=120)   # -> Reconciled(published=3, ...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from delivery.errors import LimiterUnavailable
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.queries import Head, due_parked_heads, lost_heads
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import Publisher, publish_all, send_task_id

__all__ = ["BATCH", "Lines", "Reconciled", "TaskPresence", "nothing_seen", "reconcile"]

log = logging.getLogger(__name__)

BATCH = 500  # heads handled per run and kind; the next run takes the rest

# Which of these task ids the broker holds in a queue, ready to run.
TaskPresence = Callable[[Collection[str]], set[str]]


class Lines(Protocol):
    """The accounts' lines, as the reconciler needs them."""

    def in_line(self, account_id: str, chunk_ids: Collection[int]) -> set[int]: ...

    def kick(self, account_id: str) -> bool: ...


def _waiting_in_line(lines: Lines, heads: Sequence[Head]) -> set[int]:
    by_account: dict[str, list[int]] = {}
    for head in heads:
        by_account.setdefault(head.account_id, []).append(head.chunk_id)
    waiting: set[int] = set()
    for account_id, chunk_ids in by_account.items():
        try:
            waiting |= lines.in_line(account_id, chunk_ids)
        except LimiterUnavailable as exc:
            log.warning("reconciler: the line of %s is unreachable (%s)", account_id, exc)
    return waiting


def nothing_seen(task_ids: Collection[str]) -> set[str]:
    """A presence check that sees no task (every lost-looking head is lost)."""
    return set()


@dataclass(frozen=True)
class Reconciled:
    """What one run did."""

    published: int  # heads offered to their lines again (lost, woken, or their chat moved on)
    late: int  # lost-looking heads whose task was in the queue, or that wait in their line
    unparked: int
    closed: int


def reconcile(
    engine: Engine,
    publisher: Publisher,
    *,
    grace_seconds: float,
    reader_window_seconds: float = 86_400.0,
    reader_budget: int = 10,
    presence: TaskPresence = nothing_seen,
    lines: Lines | None = None,
    limit: int = BATCH,
) -> Reconciled:
    """One reconciler run; see the module docstring. ``lines``: the accounts' lines
    (without them, every lost-looking head not in the broker's queue is lost)."""
    now = utcnow()
    with session_scope(engine) as db:
        closed = outbox.close_finished(db, now=now, limit=limit)
        candidates = lost_heads(db, now=now, grace_seconds=grace_seconds, limit=limit)
        parked = due_parked_heads(
            db,
            now=now,
            reader_window_seconds=reader_window_seconds,
            reader_budget=reader_budget,
            limit=limit,
        )
    present = presence({send_task_id(h.chunk_id, h.generation) for h in candidates})
    late = [h for h in candidates if send_task_id(h.chunk_id, h.generation) in present]
    lost = [h for h in candidates if send_task_id(h.chunk_id, h.generation) not in present]
    if lines is not None and lost:
        waiting = _waiting_in_line(lines, lost)
        late += [h for h in lost if h.chunk_id in waiting]
        lost = [h for h in lost if h.chunk_id not in waiting]
    with session_scope(engine) as db:
        outbox.extend_leases(db, [h.chunk_id for h in late], until=now)
        armed = outbox.arm(
            db,
            [h.chunk_id for h in lost],
            now=now,
            seen={h.chunk_id: h.generation for h in lost},
        ) + outbox.arm(
            db,
            [h.chunk_id for h in parked],
            now=now,
            seen={h.chunk_id: h.generation for h in parked},
            due_at=now,
        )
        woken = outbox.arm_conversations(db, {chat for _, chat in closed}, now=now)
    publish_all(publisher, armed + woken)
    published = len(armed) + len(woken)
    if lines is not None:
        for account_id in {h.account_id for h in late}:
            lines.kick(account_id)
    _report(lost, late, parked, closed)
    return Reconciled(published=published, late=len(late), unparked=len(parked), closed=len(closed))


def _ids(heads: list[Head]) -> str:
    shown = ", ".join(str(h.chunk_id) for h in heads[:20])
    return shown + (" ..." if len(heads) > 20 else "")


def _report(
    lost: list[Head], late: list[Head], parked: list[Head], closed: Sequence[tuple[int, object]]
) -> None:
    if lost:
        log.warning(
            "reconciler: %d chunk(s) had no live task and were published again: chunks %s",
            len(lost),
            _ids(lost),
        )
    if late:
        log.info(
            "reconciler: %d chunk(s) are late, not lost (their task waits in the queue)",
            len(late),
        )
    if parked:
        log.warning(
            "reconciler: %d parked chunk(s) were woken (their time came, or what they "
            "waited for cleared): chunks %s",
            len(parked),
            _ids(parked),
        )
    for message_id, _ in closed:
        log.warning("reconciler: message %s was open with nothing left to send; closed", message_id)
