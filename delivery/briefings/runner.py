"""Running briefings: claim each due slot once in SQL, then produce and enqueue.

Beat calls :func:`claim_due_slots` every ``DELIVERY_BRIEFING_TICK_SECONDS``. For
each enabled briefing it computes the latest slot; a slot not older than the
misfire grace and not before the briefing existed is *claimed* by inserting a
``briefing_runs`` row — unique per (briefing, slot), so a restarted or second
beat cannot claim it again. Each claimed run is published as its own task,
:func:`run_slot`, which calls the producer and enqueues the texts with an
idempotency key derived from the slot and the recipient: a run that happens
twice (a redelivered task) queues nothing twice.

Example::

    for run_id in claim_due_slots(engine, now=utcnow(), misfire_grace_seconds=3600):
        publish(run_id)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.exc import IntegrityError

from delivery.api.sending import OutboundMessage, enqueue_many
from delivery.briefings.producers import BriefingSlot, load_producer, texts_for
from delivery.briefings.schedule import latest_slot, parse_schedule, zone
from delivery.errors import BriefingError, InvalidInput, LedgerError
from delivery.ledger.briefings import RunStatus, claim_slot, finish_run, start_run
from delivery.ledger.db import session_scope
from delivery.ledger.models import Briefing, BriefingRun
from delivery.ledger.types import utcnow
from delivery.validation import MAX_IDEMPOTENCY_KEY_CHARS

__all__ = ["RunStatus", "claim_due_slots", "idempotency_key", "run_slot", "stale_runs"]

log = logging.getLogger(__name__)

_ERROR_CHARS = 2000  # of a producer's exception text kept on the run


@dataclass(frozen=True)
class _Due:
    briefing_id: int
    name: str
    slot_at: dt.datetime


def idempotency_key(name: str, slot_at: dt.datetime, recipient: str) -> str:
    """The key that makes a slot's message to a recipient unique."""
    key = f"briefing:{name}:{slot_at:%Y%m%dT%H%M%S.%fZ}:{recipient}"
    if len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        return key
    return "briefing:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def claim_due_slots(engine: Engine, *, now: dt.datetime, misfire_grace_seconds: float) -> list[int]:
    """Claim every due, unclaimed slot; return the ids of the new runs."""
    due = []
    with session_scope(engine) as session:
        for briefing in session.scalars(select(Briefing).where(Briefing.enabled.is_(True))):
            try:
                slot = latest_slot(
                    parse_schedule(briefing.schedule), now=now, timezone=briefing.timezone
                )
            except BriefingError as exc:
                log.error("briefing %s cannot be scheduled: %s", briefing.name, exc)
                continue
            if slot < briefing.created_at:
                continue  # the briefing did not exist at this slot
            if (now - slot).total_seconds() > misfire_grace_seconds:
                continue  # missed long ago (beat was down); the next slot will run
            due.append(_Due(briefing.id, briefing.name, slot))
    claimed = []
    for item in due:
        run_id = _claim(engine, item)
        if run_id is not None:
            claimed.append(run_id)
            log.info("briefing %s: slot %s claimed (run %d)", item.name, item.slot_at, run_id)
    return claimed


def _claim(engine: Engine, item: _Due) -> int | None:
    try:
        with session_scope(engine) as session:
            return claim_slot(
                session, briefing_id=item.briefing_id, slot_at=item.slot_at, now=utcnow()
            )
    except IntegrityError:
        return None  # another beat (or tick) claimed it first


def stale_runs(
    engine: Engine, *, pending_before: dt.datetime, running_before: dt.datetime
) -> list[int]:
    """Runs whose task was lost: claimed and never started before ``pending_before``,
    or started and never finished before ``running_before`` (the producer's lease)."""
    with session_scope(engine, readonly=True) as session:
        return list(
            session.scalars(
                select(BriefingRun.id).where(
                    or_(
                        and_(
                            BriefingRun.status == RunStatus.PENDING,
                            BriefingRun.claimed_at < pending_before,
                        ),
                        and_(
                            BriefingRun.status == RunStatus.RUNNING,
                            BriefingRun.claimed_at < running_before,
                        ),
                    )
                )
            )
        )


def run_slot(engine: Engine, run_id: int, *, lease_seconds: float) -> str:
    """Produce and enqueue one claimed slot; return a one-line summary.

    A producer that raises, or returns nothing usable, fails this run only: the
    error is kept on the run and logged. A run another worker started less than
    ``lease_seconds`` ago is left to it.
    """
    with session_scope(engine) as session:
        run = start_run(session, run_id, now=utcnow(), lease_seconds=lease_seconds)
        if isinstance(run, str):
            return run
        briefing = run.briefing
        local = run.slot_at.astimezone(zone(briefing.timezone))
        slot = BriefingSlot(
            name=briefing.name,
            slot_at=run.slot_at,
            local_time=local,
            account_id=briefing.account_id,
            recipients=tuple(json.loads(briefing.recipients)),
        )
        producer_path = briefing.producer
    try:
        texts = texts_for(load_producer(producer_path)(slot), slot.recipients)
        messages = [
            OutboundMessage(
                account_id=slot.account_id,
                to_user_id=recipient,
                text=text,
                idempotency_key=idempotency_key(slot.name, slot.slot_at, recipient),
                source=f"briefing:{slot.name}",
                push=True,  # a briefing is a push, even just after the reader wrote
            )
            for recipient, text in texts.items()
        ]
        ids = enqueue_many(messages)
    except LedgerError:
        raise  # not the producer's fault: the run stays claimed and is tried again
    except Exception as exc:  # a producer is user code: anything may come out of it
        return _fail(engine, run_id, slot, exc)
    _finish(engine, run_id, status=RunStatus.ENQUEUED, count=len(ids), error=None)
    log.info("briefing %s slot %s: %d message(s) enqueued", slot.name, slot.slot_at, len(ids))
    return f"briefing {slot.name} slot {slot.slot_at:%Y-%m-%d %H:%M:%S}: {len(ids)} message(s)"


def _fail(engine: Engine, run_id: int, slot: BriefingSlot, exc: Exception) -> str:
    kind = "invalid output" if isinstance(exc, (InvalidInput, BriefingError)) else "raised"
    error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
    _finish(engine, run_id, status=RunStatus.FAILED, count=0, error=error)
    log.error("briefing %s slot %s failed (producer %s): %s", slot.name, slot.slot_at, kind, error)
    return f"briefing {slot.name} failed: {error}"


def _finish(
    engine: Engine, run_id: int, *, status: RunStatus, count: int, error: str | None
) -> None:
    with session_scope(engine) as session:
        finish_run(session, run_id, status=status, count=count, error=error, now=utcnow())
