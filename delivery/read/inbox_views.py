"""The read side of the inbound relay: what arrived, and whether the agent has it.

Example::

    for entry in list_inbox(account_id="bot-1", peer_id="o9cq80...@im.wechat"):
        print(entry.received_at, entry.status, entry.handovers, entry.text)
    # ... received {'webhook': 'done'} what's on today?
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from delivery import runtime
from delivery.ledger.db import session_scope
from delivery.ledger.models import Handover, InboundMessage
from delivery.ledger.states import HandoverStatus

__all__ = ["InboxEntry", "list_inbox"]

DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class InboxEntry:
    """One item a poll handed out, newest first in :func:`list_inbox`.

    ``status`` is ``received``, ``duplicate`` or ``malformed`` (``reason`` says why
    for the last two); ``handovers`` maps each channel to ``done``, or to
    ``pending`` with the attempts made and the last error.
    """

    id: int
    account_id: str
    peer_id: str | None
    status: str
    reason: str | None
    text: str | None
    platform_message_id: str | None
    written_at: dt.datetime
    received_at: dt.datetime
    handovers: dict[str, str]


def _handover_state(row: Handover) -> str:
    if row.status == HandoverStatus.DONE:
        return "done"
    tried = f", {row.attempt_count} attempt(s): {row.last_error}" if row.attempt_count else ""
    return f"pending{tried}"


def list_inbox(
    account_id: str | None = None, peer_id: str | None = None, *, limit: int = DEFAULT_LIMIT
) -> list[InboxEntry]:
    """The newest ``limit`` inbound messages (of one account, one peer), newest first."""
    query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(InboundMessage.account_id == account_id)
    if peer_id is not None:
        query = query.where(InboundMessage.peer_id == peer_id)
    with session_scope(runtime.current().engine, readonly=True) as db:
        rows = list(db.scalars(query))
        states: dict[int, dict[str, str]] = {}
        if rows:
            found = db.scalars(
                select(Handover).where(Handover.inbound_id.in_([r.id for r in rows]))
            )
            for handover in found:
                states.setdefault(handover.inbound_id, {})[handover.channel] = _handover_state(
                    handover
                )
        return [
            InboxEntry(
                id=row.id,
                account_id=row.account_id,
                peer_id=row.peer_id,
                status=row.status,
                reason=row.reason,
                text=row.text,
                platform_message_id=row.platform_message_id,
                written_at=row.written_at,
                received_at=row.received_at,
                handovers=dict(sorted(states.get(row.id, {}).items())),
            )
            for row in rows
        ]
