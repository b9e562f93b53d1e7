"""The one module that writes ``inbound_messages`` and ``inbound_cursors``: what
``getupdates`` handed out, and where the account's cursor stands.

Callers say what a poll handed out; this module decides whether it is new, a
message already recorded (the same platform id: nothing is written), or a copy
the platform re-sent under a new id (the same fingerprint of sender and text
within ``dedupe_seconds`` of a received one: recorded as ``duplicate``, with the
reason). Every function takes the caller's ``Session`` and never commits: the
poller records a whole poll and moves the cursor in one transaction. Only
:mod:`delivery.ledger.retention` deletes inbound messages, past retention.

**The cursor only moves forward.** :func:`advance_cursor` is a compare-and-set on
the cursor the poll was sent with: a poll that started before another one was
recorded (two pollers overlapping after a lease loss, a stalled tick) finds the
cursor moved, changes nothing, and its caller records nothing of it (the platform
hands its messages out again to a poll sent with the newer cursor, or already
did). Called first in the poll's transaction, it also takes the cursor's row lock
before the messages are written, so two such polls never race on them.

Example::

    with session_scope(engine) as db:
        recorded = record(db, account_id="bot-1", platform_message_id="7318...",
                          peer_id="u@im.wechat", text="hi", item_types="1",
                          fingerprint="ab12...", written_at=now, received_at=now,
                          dedupe_seconds=10)
        advance_cursor(db, account_id="bot-1", cursor="c2ltOjE=", expected="", now=now)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from delivery.ledger.models import InboundCursor, InboundMessage
from delivery.ledger.states import InboundStatus
from delivery.ledger.types import clean_text

__all__ = [
    "MAX_INBOUND_TEXT_CHARS",
    "Recorded",
    "advance_cursor",
    "cursor_of",
    "record",
    "record_malformed",
]

MAX_INBOUND_TEXT_CHARS = 100_000  # longer than any chat message; a safeguard for the ledger
_REASON_CHARS = 2000
_EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` made of one message: its row (``None`` when it was recorded
    before, by platform id) and its status."""

    inbound_id: int | None
    status: InboundStatus | None
    duplicate_of: int | None = None

    @property
    def new(self) -> bool:
        """A reader's message seen for the first time: hand it over."""
        return self.status == InboundStatus.RECEIVED


def cursor_of(db: Session, account_id: str) -> str:
    """The account's cursor, or ``""`` before its first recorded poll."""
    value = db.scalar(select(InboundCursor.cursor).where(InboundCursor.account_id == account_id))
    return value or ""


def advance_cursor(
    db: Session, *, account_id: str, cursor: str, expected: str, now: dt.datetime
) -> bool:
    """The poll sent with ``expected`` (the cursor it read, ``""`` for none) answered
    ``cursor``: the next poll sends that. ``False``, and nothing changed, when the
    cursor is no longer ``expected`` (another poll was recorded meanwhile)."""
    moved = db.execute(
        update(InboundCursor)
        .where(InboundCursor.account_id == account_id, InboundCursor.cursor == expected)
        .values(cursor=cursor, advanced_at=now)
    )
    if getattr(moved, "rowcount", 0):
        return True
    if expected:
        return False
    # The account's first recorded poll: only one can insert the row.
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {"account_id": account_id, "cursor": cursor, "advanced_at": now}
    # RETURNING, not rowcount: an ORM session's INSERT reports -1 on PostgreSQL.
    created = db.scalar(
        insert(InboundCursor)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["account_id"])
        .returning(InboundCursor.account_id)
    )
    return created is not None


def record(
    db: Session,
    *,
    account_id: str,
    platform_message_id: str,
    peer_id: str,
    text: str,
    item_types: str,
    fingerprint: str | None,
    written_at: dt.datetime,
    received_at: dt.datetime,
    dedupe_seconds: float,
) -> Recorded:
    """Record one message a poll handed out, once per platform id.

    ``fingerprint`` (of sender and text; ``None`` for a message without text) makes
    a message a ``duplicate`` when a received one with the same fingerprint was
    written within ``dedupe_seconds`` of it.
    """
    known = db.scalar(
        select(InboundMessage.id).where(
            InboundMessage.account_id == account_id,
            InboundMessage.platform_message_id == platform_message_id,
        )
    )
    if known is not None:
        return Recorded(inbound_id=None, status=None)
    original = _same_text_nearby(db, account_id, fingerprint, written_at, dedupe_seconds)
    status = InboundStatus.RECEIVED if original is None else InboundStatus.DUPLICATE
    reason = None
    if original is not None:
        apart = abs((written_at - original[1]).total_seconds())
        reason = f"the same text from the same sender as inbound {original[0]}, {apart:.1f} s apart"
    row = InboundMessage(
        account_id=account_id,
        platform_message_id=platform_message_id,
        peer_id=peer_id,
        status=status,
        reason=reason,
        text=clean_text(text, limit=MAX_INBOUND_TEXT_CHARS),
        item_types=item_types,
        fingerprint=fingerprint,
        written_at=written_at,
        received_at=received_at,
    )
    db.add(row)
    db.flush()
    return Recorded(
        inbound_id=row.id, status=status, duplicate_of=None if original is None else original[0]
    )


def _same_text_nearby(
    db: Session,
    account_id: str,
    fingerprint: str | None,
    written_at: dt.datetime,
    dedupe_seconds: float,
) -> tuple[int, dt.datetime] | None:
    if fingerprint is None:
        return None
    window = dt.timedelta(seconds=dedupe_seconds)
    row = db.execute(
        select(InboundMessage.id, InboundMessage.written_at)
        .where(
            InboundMessage.account_id == account_id,
            InboundMessage.fingerprint == fingerprint,
            InboundMessage.status == InboundStatus.RECEIVED,
            InboundMessage.written_at >= written_at - window,
            InboundMessage.written_at <= written_at + window,
        )
        .order_by(InboundMessage.id)
        .limit(1)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def record_malformed(
    db: Session,
    *,
    account_id: str,
    reason: str,
    raw_excerpt: str,
    platform_message_id: str | None,
    peer_id: str | None,
    received_at: dt.datetime,
) -> int | None:
    """Keep an item that is not a readable message, with why; returns its row id.

    An item that names a platform id already recorded is not recorded again
    (``None``).
    """
    if platform_message_id is not None:
        known = db.scalar(
            select(InboundMessage.id).where(
                InboundMessage.account_id == account_id,
                InboundMessage.platform_message_id == platform_message_id,
            )
        )
        if known is not None:
            return None
    row = InboundMessage(
        account_id=account_id,
        platform_message_id=platform_message_id,
        peer_id=clean_text(peer_id, limit=256),
        status=InboundStatus.MALFORMED,
        reason=clean_text(reason, limit=_REASON_CHARS),
        written_at=received_at,
        received_at=received_at,
        raw_excerpt=clean_text(raw_excerpt, limit=_EXCERPT_CHARS),
    )
    db.add(row)
    db.flush()
    return row.id
