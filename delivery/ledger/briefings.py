"""The one module that writes ``briefings`` and ``briefing_runs``.

A briefing is stored (created or changed) and deleted here; a slot is claimed
here, once, by the row unique per (briefing, slot); a run is started and
finished here. Every function takes the caller's ``Session`` and never commits.

Example::

    with session_scope(engine) as db:
        run_id = claim_slot(db, briefing_id=3, slot_at=slot, now=utcnow())
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.ledger.models import Briefing, BriefingRun

__all__ = [
    "RunStatus",
    "claim_slot",
    "delete_briefing",
    "finish_run",
    "start_run",
    "store_briefing",
]


class RunStatus(enum.StrEnum):
    PENDING = "pending"  # claimed, task published
    RUNNING = "running"  # the producer is being called
    ENQUEUED = "enqueued"  # its messages are in the ledger
    FAILED = "failed"  # the producer raised or returned nothing usable


def store_briefing(
    db: Session,
    name: str,
    *,
    account_id: str,
    recipients: Sequence[str],
    producer: str,
    schedule: str,
    timezone: str,
    enabled: bool,
    now: dt.datetime,
) -> Briefing:
    """Create the briefing, or change the one of this name."""
    briefing = db.scalars(select(Briefing).where(Briefing.name == name)).one_or_none()
    if briefing is None:
        briefing = Briefing(name=name, created_at=now)
        db.add(briefing)
    briefing.account_id = account_id
    briefing.recipients = json.dumps(list(recipients))
    briefing.producer = producer
    briefing.schedule = schedule
    briefing.timezone = timezone
    briefing.enabled = enabled
    db.flush()
    return briefing


def delete_briefing(db: Session, name: str) -> bool:
    """Delete the briefing and its run history; False if there was none."""
    briefing = db.scalars(select(Briefing).where(Briefing.name == name)).one_or_none()
    if briefing is None:
        return False
    db.delete(briefing)
    return True


def claim_slot(
    db: Session, *, briefing_id: int, slot_at: dt.datetime, now: dt.datetime
) -> int | None:
    """Claim one slot of a briefing; its run's id, or None when it was claimed before.

    A concurrent claim of the same slot makes the caller's commit fail with an
    ``IntegrityError`` (the unique row): the slot is the other claimant's.
    """
    exists = db.scalar(
        select(BriefingRun.id).where(
            BriefingRun.briefing_id == briefing_id, BriefingRun.slot_at == slot_at
        )
    )
    if exists is not None:
        return None
    run = BriefingRun(
        briefing_id=briefing_id, slot_at=slot_at, status=RunStatus.PENDING, claimed_at=now
    )
    db.add(run)
    db.flush()
    return run.id


def start_run(
    db: Session, run_id: int, *, now: dt.datetime, lease_seconds: float
) -> BriefingRun | str:
    """Mark the run running (its lease starts now); the run, or why it is not started."""
    run = db.get(BriefingRun, run_id, with_for_update=True)
    if run is None:
        return f"run {run_id} not found"
    if run.status in (RunStatus.ENQUEUED, RunStatus.FAILED):
        return f"run {run_id} already {run.status}"
    leased_until = run.claimed_at + dt.timedelta(seconds=lease_seconds)
    if run.status == RunStatus.RUNNING and leased_until > now:
        return f"run {run_id} is running elsewhere"
    run.status = RunStatus.RUNNING
    run.claimed_at = now
    return run


def finish_run(
    db: Session, run_id: int, *, status: RunStatus, count: int, error: str | None, now: dt.datetime
) -> None:
    """Record how the run ended: its messages enqueued, or the producer's error."""
    db.execute(
        update(BriefingRun)
        .where(BriefingRun.id == run_id)
        .values(status=status, message_count=count, error=error, finished_at=now)
    )
