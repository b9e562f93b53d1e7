"""Recording one poll: the cursor moved, every item a ledger row, readers heard, all
in the caller's one transaction.

First the cursor moves from the one the poll was sent with (``started_from``) to
the one it answered, as a compare-and-set (:func:`~delivery.ledger.inbox.advance_cursor`):
if another poll was recorded since this one started, nothing is written and
:func:`record_poll` returns ``None``; the cursor never moves back. Then, for each
item ``getupdates`` handed out:

==========================  ================================================================
the item                    what is written
==========================  ================================================================
a reader's message, new     a ``received`` row; the reader heard (:func:`note_heard`: window,
                            budget, context token, deadlines); a hand-over per channel,
                            its first attempt claimed for the caller
already recorded (its id)   nothing (the platform handed it out again)
the same text, new id       a ``duplicate`` row with the reason; nobody is told
malformed                   a ``malformed`` row with the reason and an excerpt
the bot's own message       nothing
==========================  ================================================================

The caller commits; only after that are chats woken and messages handed over (so
nothing is handed over that the ledger does not hold). The account's row is not
touched here: a send locks it before the chat's messages and readers, this after
them (and the cursor's row, which no send touches, before both).

Example::

    with session_scope(engine) as db:
        done = record_poll(db, account_id="bot-1", items=items, started_from=sent_cursor,
                           cursor=updates.cursor, channels=("webhook",), received_at=now,
                           dedupe_seconds=10, deadline_seconds=86400, claim_seconds=20,
                           host="relay-1")
    if done is not None:     # None: another poll was recorded since this one started
        for peer in done.peers: wake_reader(engine, publisher, account_id="bot-1", peer_id=peer)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.inbound.event import InboundEvent, idempotency_key
from delivery.inbound.handover import Claimed
from delivery.inbound.heard import note_heard
from delivery.inbound.items import InboundItem, Malformed, NotInbound
from delivery.ledger import handovers, inbox
from delivery.ledger.types import clean_text

__all__ = ["PollRecord", "record_poll"]

log = logging.getLogger(__name__)


@dataclass
class PollRecord:
    """What one poll's transaction wrote; ``claimed`` are the first hand-overs of the
    new messages, held by the caller."""

    claimed: list[Claimed] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)  # readers heard, once each, in order
    received: int = 0
    duplicates: int = 0
    malformed: int = 0
    repeated: int = 0  # handed out again, already recorded
    session_healed: bool = False  # the poll cleared an expired mark (set by the poller)


def record_poll(
    db: Session,
    *,
    account_id: str,
    items: Sequence[InboundItem | Malformed | NotInbound],
    started_from: str,
    cursor: str | None,
    channels: Sequence[str],
    received_at: dt.datetime,
    dedupe_seconds: float,
    deadline_seconds: float,
    claim_seconds: float,
    host: str,
) -> PollRecord | None:
    """Record what one poll sent with ``started_from`` handed out (see the module
    docstring); never commits. ``None``, with nothing written, when another poll
    was recorded since this one started. ``cursor`` is the one it answered
    (``None``: the cursor stays).

    The first hand-over of each new message is claimed for the caller for
    ``claim_seconds``, by ``host``."""
    moved = inbox.advance_cursor(
        db,
        account_id=account_id,
        cursor=started_from if cursor is None else cursor,
        expected=started_from,
        now=received_at,
    )
    if not moved:
        return None
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
            claim = _Claim(channels=channels, seconds=claim_seconds, host=host)
            _received(db, account_id, item, recorded.inbound_id, claim, received_at, done)
            note_heard(
                db,
                account_id=account_id,
                peer_id=item.peer_id,
                at=item.written_at,
                context_token=item.context_token,
                now=received_at,
                deadline_seconds=deadline_seconds,
            )
    return done


@dataclass(frozen=True)
class _Claim:
    channels: Sequence[str]
    seconds: float
    host: str


def _received(
    db: Session,
    account_id: str,
    item: InboundItem,
    inbound_id: int,
    claim: _Claim,
    now: dt.datetime,
    done: PollRecord,
) -> None:
    done.received += 1
    attempt_no = handovers.open_handovers(
        db,
        inbound_id=inbound_id,
        channels=claim.channels,
        now=now,
        claim_seconds=claim.seconds,
        host=claim.host,
    )
    event = InboundEvent(
        idempotency_key=idempotency_key(
            account_id=account_id, platform_message_id=item.platform_message_id
        ),
        account_id=account_id,
        peer_id=item.peer_id,
        text=clean_text(item.text, limit=inbox.MAX_INBOUND_TEXT_CHARS) or "",
        item_types=item.item_types,
        platform_message_id=item.platform_message_id,
        inbound_id=inbound_id,
        written_at=item.written_at,
        received_at=now,
    )
    done.claimed += [Claimed(event, str(channel), attempt_no) for channel in claim.channels]
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
