"""Inbound messages as events: a reader wrote, so their chat can go.

The platform delivers a bot's messages to a reader only within a reply window
after the reader's last message, and only so many per inbound message. The agent
that receives the reader's messages tells the pipeline with
:func:`delivery.record_inbound` (or ``delivery inbound ACCOUNT PEER``), which
calls :func:`record_heard` here with the process's engine and publisher: the
reader's window reopens, their budget starts again, the latest context token is
kept, and a message of theirs that waited for them is published at once.

The relay of an account that owns its inbound side goes the same way, in two
steps: :func:`note_heard` inside the transaction that records what a poll
handed out, :func:`wake_reader` after it committed.

Example::

    record_heard(engine, publisher, "bot-1", "o9cq80...@im.wechat", context_token=ctx,
                 deadline_seconds=settings.delivery_deadline_seconds)
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from delivery.errors import InvalidInboundTime, UnknownAccount
from delivery.ledger import outbox, readers
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account
from delivery.ledger.states import ParkReason
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import Publisher, wake_parked
from delivery.validation import validate_account_id, validate_context_token, validate_recipient

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "note_heard",
    "record_heard",
    "release_dropping",
    "wake_reader",
]

log = logging.getLogger(__name__)

CLOCK_SKEW_SECONDS = 5.0  # how far in the future an inbound time may lie (other clocks)


def record_heard(
    engine: Engine,
    publisher: Publisher,
    account_id: str,
    peer_id: str,
    *,
    context_token: str | None,
    at: dt.datetime | None,
    deadline_seconds: float,
) -> None:
    """``peer_id`` wrote to ``account_id`` at ``at`` (now, by default).

    The reader's reply window reopens and their send budget starts again; the
    context token (from that message), when given, becomes the one replies carry;
    the chat's message that waited for the reader is published at once. An
    inbound message older than one already recorded changes nothing but a
    missing token. What waited for the reader is not dead before
    ``deadline_seconds`` from now.

    Raises:
        InvalidInput: unknown account, malformed peer or token (never echoed), or
            an ``at`` that is naive or in the future. Nothing is written.
        LedgerError: the database is unreachable. Nothing is written.
    """
    validate_account_id(account_id)
    validate_recipient(peer_id)
    validate_context_token(context_token)
    now = utcnow()
    heard_at = _inbound_time(at, now=now)
    with session_scope(engine) as db:
        if db.get(Account, account_id) is None:
            raise UnknownAccount(
                f"unknown account {account_id!r}; add it with `delivery account add {account_id}`"
            )
        note_heard(
            db,
            account_id=account_id,
            peer_id=peer_id,
            at=heard_at,
            context_token=context_token,
            now=now,
            deadline_seconds=deadline_seconds,
        )
    log.info("account %s: %s wrote (at %s)", account_id, peer_id, f"{heard_at:%H:%M:%S}")
    wake_reader(engine, publisher, account_id=account_id, peer_id=peer_id)


def release_dropping(engine: Engine, publisher: Publisher, account_id: str, peer_id: str) -> bool:
    """An operator says ``peer_id`` no longer drops the account's sends silently (they
    were told, or the platform's protective measure ended): their messages that waited
    go now. Returns False when the reader was not held as dropping.

    Raises:
        InvalidInput: unknown account or a malformed peer. Nothing is written.
        LedgerError: the database is unreachable.
    """
    validate_account_id(account_id)
    validate_recipient(peer_id)
    with session_scope(engine) as db:
        if db.get(Account, account_id) is None:
            raise UnknownAccount(f"unknown account {account_id!r}")
        cleared = readers.clear_dropping(db, account_id=account_id, peer_id=peer_id)
    if cleared:
        log.warning("account %s: %s is no longer held as dropping (operator)", account_id, peer_id)
        wake_reader(engine, publisher, account_id=account_id, peer_id=peer_id)
    return cleared


def note_heard(
    db: Session,
    *,
    account_id: str,
    peer_id: str,
    at: dt.datetime,
    context_token: str | None,
    now: dt.datetime,
    deadline_seconds: float,
) -> None:
    """In the caller's transaction: ``peer_id`` wrote at ``at``. Their window reopens,
    their budget starts again, the context token is kept, and what waited for them
    is not dead before ``deadline_seconds`` from ``now``. Call :func:`wake_reader`
    after the commit."""
    # What waited for this reader is not dead before the ordinary deadline from now.
    # The chat's messages before the reader's row: the order a send's outcome locks
    # them in, so the two never deadlock.
    outbox.extend_deadlines(
        db,
        account_id=account_id,
        to_user_id=peer_id,
        until=now + dt.timedelta(seconds=deadline_seconds),
    )
    readers.heard(db, account_id=account_id, peer_id=peer_id, at=at, context_token=context_token)


def wake_reader(engine: Engine, publisher: Publisher, *, account_id: str, peer_id: str) -> bool:
    """After the commit of :func:`note_heard`: the reader's chat that waited for them
    goes now. Returns whether one did. Never raises for the ledger (the reconciler
    wakes it then)."""
    woken = wake_parked(engine, publisher, account_id, reason=ParkReason.READER, peer_id=peer_id)
    if woken:
        log.info("account %s: the message waiting for %s goes now", account_id, peer_id)
    return bool(woken)


def _inbound_time(at: dt.datetime | None, *, now: dt.datetime) -> dt.datetime:
    if at is None:
        return now
    if not isinstance(at, dt.datetime) or at.tzinfo is None:
        raise InvalidInboundTime("the inbound time must be a timezone-aware datetime")
    if (at - now).total_seconds() > CLOCK_SKEW_SECONDS:
        raise InvalidInboundTime(
            f"the inbound time {at.isoformat()} is in the future (now {now.isoformat()})"
        )
    return min(at.astimezone(dt.UTC), now)
