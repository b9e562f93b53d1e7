"""The one module that writes ``inbound_handovers`` and ``inbound_attempts``: handing
each inbound message to the agent by each configured channel, at least once.

A hand-over is ``pending`` until a channel took the message (``done``). Whoever
hands it over first *claims* it (``claimed_until``): a conditional update that
only one caller wins, on SQLite and PostgreSQL alike, so two relays never hand
one message over at once. The claim writes the attempt row before the call; the
outcome is recorded after it. A claim that runs out belongs to a relay that died
mid-call: the next claim marks that attempt ``lost`` and hands the message over
again, with the same idempotency key. Every function takes the caller's
``Session`` and never commits. Only :mod:`delivery.ledger.retention` deletes
these rows, with their message, once none of its hand-overs is pending.

**The claim's token is the attempt number.** Each claim counts the hand-over's
``attempt_count`` up; the attempt whose number it is holds the claim, and no other.
So :func:`hold` (just before the call: the claim is renewed, or it was lost) and
:func:`finish` (after it) change the hand-over only for the attempt that holds it:
an attempt that outlived its claim (a slow relay, a thread that waited behind a
slow webhook) can neither finish the attempt that took over, which would let a
third start beside it, nor be started beside it.

Example::

    with session_scope(engine) as db:     # a retry; the first attempt is claimed by
        attempt_no = claim(db, inbound_id=7, channel="webhook", now=now,    # open_handovers
                           claim_seconds=30, host="relay-1")
    ...  # the POST
    with session_scope(engine) as db:
        finish(db, inbound_id=7, channel="webhook", attempt_no=attempt_no, now=now,
               delivered=True, detail="HTTP 204", http_status=204, duration_ms=12)  # True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from delivery.ledger.models import Handover, HandoverAttempt
from delivery.ledger.states import HandoverChannel, HandoverOutcome, HandoverStatus
from delivery.ledger.types import clean_text

__all__ = ["claim", "due", "finish", "hold", "open_handovers", "reopen_tasks"]

_DETAIL_CHARS = 2000


def open_handovers(
    db: Session,
    *,
    inbound_id: int,
    channels: Iterable[str],
    now: dt.datetime,
    claim_seconds: float,
    host: str,
) -> int:
    """The message is to be handed over by each of ``channels``, and the caller, who
    recorded it, claims the first attempt of each (in the same transaction: one
    write less per channel). Returns that attempt's number (1)."""
    for channel in channels:
        db.add(
            Handover(
                inbound_id=inbound_id,
                channel=channel,
                status=HandoverStatus.PENDING,
                attempt_count=1,
                next_attempt_at=now,
                claimed_until=now + dt.timedelta(seconds=claim_seconds),
            )
        )
        db.add(_attempt(inbound_id, channel, 1, now=now, host=host))
    db.flush()
    return 1


def _attempt(
    inbound_id: int, channel: str, attempt_no: int, *, now: dt.datetime, host: str
) -> HandoverAttempt:
    return HandoverAttempt(
        inbound_id=inbound_id,
        channel=channel,
        attempt_no=attempt_no,
        started_at=now,
        outcome=HandoverOutcome.IN_FLIGHT,
        worker_host=host,
    )


def due(
    db: Session, *, now: dt.datetime, channels: Iterable[str], limit: int
) -> list[tuple[int, str]]:
    """Pending hand-overs by ``channels`` whose time has come and that nobody holds,
    oldest first."""
    rows = db.execute(
        select(Handover.inbound_id, Handover.channel)
        .where(
            Handover.status == HandoverStatus.PENDING,
            Handover.channel.in_(list(channels)),
            Handover.next_attempt_at <= now,
            or_(Handover.claimed_until.is_(None), Handover.claimed_until < now),
        )
        .order_by(Handover.next_attempt_at, Handover.inbound_id)
        .limit(limit)
    )
    return [(inbound_id, channel) for inbound_id, channel in rows]


def claim(
    db: Session,
    *,
    inbound_id: int,
    channel: str,
    now: dt.datetime,
    claim_seconds: float,
    host: str,
) -> int | None:
    """Take the hand-over for ``claim_seconds`` and write its attempt row; returns the
    attempt number, or ``None`` when it is done, not due, or held by another."""
    where = (Handover.inbound_id == inbound_id, Handover.channel == channel)
    result = db.execute(
        update(Handover)
        .where(
            *where,
            Handover.status == HandoverStatus.PENDING,
            Handover.next_attempt_at <= now,
            or_(Handover.claimed_until.is_(None), Handover.claimed_until < now),
        )
        .values(
            claimed_until=now + dt.timedelta(seconds=claim_seconds),
            attempt_count=Handover.attempt_count + 1,
        )
    )
    if not getattr(result, "rowcount", 0):
        return None
    # An attempt still in flight belongs to a relay that died before recording it.
    db.execute(
        update(HandoverAttempt)
        .where(
            HandoverAttempt.inbound_id == inbound_id,
            HandoverAttempt.channel == channel,
            HandoverAttempt.outcome == HandoverOutcome.IN_FLIGHT,
        )
        .values(outcome=HandoverOutcome.LOST, detail="the relay stopped before it was recorded")
    )
    attempt_no = int(db.scalar(select(Handover.attempt_count).where(*where)) or 0)
    db.add(_attempt(inbound_id, channel, attempt_no, now=now, host=host))
    db.flush()
    return attempt_no


def _holding(inbound_id: int, channel: str, attempt_no: int) -> tuple[ColumnElement[bool], ...]:
    """The hand-over, pending, while attempt ``attempt_no`` holds its claim."""
    return (
        Handover.inbound_id == inbound_id,
        Handover.channel == channel,
        Handover.status == HandoverStatus.PENDING,
        Handover.attempt_count == attempt_no,
    )


def hold(
    db: Session,
    *,
    inbound_id: int,
    channel: str,
    attempt_no: int,
    now: dt.datetime,
    claim_seconds: float,
) -> bool:
    """Just before the call: renew the claim of attempt ``attempt_no`` for
    ``claim_seconds`` from ``now``. ``False`` when it no longer holds it (another
    attempt took over after it ran out, or the hand-over is done): make no call."""
    result = db.execute(
        update(Handover)
        .where(*_holding(inbound_id, channel, attempt_no))
        .values(claimed_until=now + dt.timedelta(seconds=claim_seconds))
    )
    return bool(getattr(result, "rowcount", 0))


def finish(
    db: Session,
    *,
    inbound_id: int,
    channel: str,
    attempt_no: int,
    now: dt.datetime,
    delivered: bool,
    detail: str,
    http_status: int | None = None,
    duration_ms: int | None = None,
    retry_at: dt.datetime | None = None,
    broker_run_id: str | None = None,
) -> bool:
    """Record what the attempt did; if it still holds the claim, the hand-over is
    ``done``, or pending again from ``retry_at``, and ``True`` is returned. An attempt
    that no longer holds it changes only its own row (``False``)."""
    detail_text = clean_text(detail, limit=_DETAIL_CHARS)
    values: dict[str, object] = {"claimed_until": None}
    if delivered:
        values.update(
            status=HandoverStatus.DONE,
            handed_over_at=now,
            broker_run_id=broker_run_id,
            last_error=None,
        )
    else:
        values.update(next_attempt_at=retry_at or now, last_error=detail_text)
    result = db.execute(
        update(Handover).where(*_holding(inbound_id, channel, attempt_no)).values(**values)
    )
    held = bool(getattr(result, "rowcount", 0))
    if not held:
        current = db.scalar(
            select(Handover.attempt_count).where(
                Handover.inbound_id == inbound_id, Handover.channel == channel
            )
        )
        late = f"attempt {current} took over" if current != attempt_no else "the hand-over was done"
        detail_text = clean_text(f"{detail} (recorded after {late})", limit=_DETAIL_CHARS)
    db.execute(
        update(HandoverAttempt)
        .where(
            HandoverAttempt.inbound_id == inbound_id,
            HandoverAttempt.channel == channel,
            HandoverAttempt.attempt_no == attempt_no,
        )
        .values(
            outcome=HandoverOutcome.DELIVERED if delivered else HandoverOutcome.FAILED,
            detail=detail_text,
            http_status=http_status,
            duration_ms=duration_ms,
        )
    )
    return held


def reopen_tasks(
    db: Session, *, broker_run_id: str, handed_over_since: dt.datetime, now: dt.datetime
) -> int:
    """The broker restarted (its run id is new): tasks published to the old one since
    ``handed_over_since`` may be lost with it. They are handed over again (their
    keys are the same). Returns how many."""
    result = db.execute(
        update(Handover)
        .where(
            Handover.channel == HandoverChannel.TASK,
            Handover.status == HandoverStatus.DONE,
            Handover.handed_over_at >= handed_over_since,
            or_(Handover.broker_run_id.is_(None), Handover.broker_run_id != broker_run_id),
        )
        .values(status=HandoverStatus.PENDING, next_attempt_at=now, claimed_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
