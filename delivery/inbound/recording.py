"""Recording one poll: every item a ledger row, readers heard, the cursor moved,
all in the caller's one transaction.

For each item ``getupdates`` handed out:

==========================  ================================================================
the item                    what is written
==========================  ================================================================
a reader's message, new     a ``received`` row; the reader heard (:func:`note_heard`: window,
                            budget, context token, deadlines); a hand-over per channel
already recorded (its id)   nothing (the platform handed it out again)
the same text, new id       a ``duplicate`` row with the reason; nobody is told
malformed                   a ``malformed`` row with the reason and an excerpt
the bot's own message       nothing
==========================  ================================================================

Then the cursor moves to the one the poll answered, and the account's session is
known good. The caller commits; only after that are chats woken and messages
handed over (so nothing is handed over that the ledger does not hold).

Example::

    with session_scope(engine) as db:
        done = record_poll(db, account_id="bot-1", token_version=3, items=items,
                           cursor=updates.cursor, channels=("webhook",), received_at=now,
                           dedupe_seconds=10, deadline_seconds=86400)
    for peer in done.peers: wake_reader(engine, publisher, account_id="bot-1", peer_id=peer)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.inbound.items import InboundItem, Malformed, NotInbound
from delivery.inbound.record import note_heard
from delivery.ledger import accounts, handovers, inbox
from delivery.ledger.states import HandoverChannel

__all__ = ["PollRecord", "record_poll"]

log = logging.getLogger(__name__)

# A poll that answered proves the session; the account row is rewritten at most this often.
_VALIDATED_REFRESH_SECONDS = 60.0


@dataclass
class PollRecord:
    """What one poll's transaction wrote."""

    handovers: list[tuple[int, str]] = field(default_factory=list)  # (inbound id, channel)
    peers: list[str] = field(default_factory=list)  # readers heard, once each, in order
    received: int = 0
    duplicates: int = 0
    malformed: int = 0
    repeated: int = 0  # handed out again, already recorded
    session_healed: bool = False  # the account had been marked expired


def record_poll(
    db: Session,
    *,
    account_id: str,
    token_version: int,
    items: Sequence[InboundItem | Malformed | NotInbound],
    cursor: str | None,
    channels: Sequence[HandoverChannel],
    received_at: dt.datetime,
    dedupe_seconds: float,
    deadline_seconds: float,
) -> PollRecord:
    """Record what one poll handed out (see the module docstring); never commits."""
    done = PollRecord()
    for item in items:
        if isinstance(item, NotInbound):
            continue
        if isinstance(item, Malformed):
            _record_malformed(db, account_id, item, received_at, done)
            continue
        recorded = inbox.record(
            db,
            account_id=account_id,
            platform_message_id=item.platform_message_id,
            peer_id=item.peer_id,
            text=item.text,
            item_types=",".join(str(t) for t in item.item_types),
            fingerprint=item.fingerprint,
            written_at=item.written_at,
            received_at=received_at,
            dedupe_seconds=dedupe_seconds,
        )
        if recorded.inbound_id is None:
            done.repeated += 1
        elif not recorded.new:
            done.duplicates += 1
            log.info(
                "account %s: inbound %d from %s is a copy of inbound %s (the same text under a "
                "new id); not handed over",
                account_id,
                recorded.inbound_id,
                item.peer_id,
                recorded.duplicate_of,
            )
        else:
            _received(db, account_id, item, recorded.inbound_id, channels, received_at, done)
            note_heard(
                db,
                account_id=account_id,
                peer_id=item.peer_id,
                at=item.written_at,
                context_token=item.context_token,
                now=received_at,
                deadline_seconds=deadline_seconds,
            )
    if cursor is not None:
        inbox.advance_cursor(db, account_id=account_id, cursor=cursor, now=received_at)
    done.session_healed = accounts.mark_session_ok(
        db,
        account_id,
        now=received_at,
        token_version=token_version,
        refresh_seconds=_VALIDATED_REFRESH_SECONDS,
    )
    return done


def _received(
    db: Session,
    account_id: str,
    item: InboundItem,
    inbound_id: int,
    channels: Sequence[HandoverChannel],
    now: dt.datetime,
    done: PollRecord,
) -> None:
    done.received += 1
    handovers.open_handovers(db, inbound_id=inbound_id, channels=channels, now=now)
    done.handovers += [(inbound_id, str(channel)) for channel in channels]
    if item.peer_id not in done.peers:
        done.peers.append(item.peer_id)
    if item.dropped_token:
        log.warning(
            "account %s: inbound %d came with a malformed context token; it was dropped",
            account_id,
            inbound_id,
        )


def _record_malformed(
    db: Session, account_id: str, item: Malformed, now: dt.datetime, done: PollRecord
) -> None:
    row = inbox.record_malformed(
        db,
        account_id=account_id,
        reason=item.reason,
        raw_excerpt=item.raw_excerpt,
        platform_message_id=item.platform_message_id,
        peer_id=item.peer_id,
        received_at=now,
    )
    if row is None:
        done.repeated += 1
        return
    done.malformed += 1
    log.warning(
        "account %s: inbound %d is malformed (%s); recorded and skipped",
        account_id,
        row,
        item.reason,
    )
