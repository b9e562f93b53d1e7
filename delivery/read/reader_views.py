"""The read side of readers: what the pipeline knows of each, for operators.

Example::

    [(r.peer_id, r.state) for r in list_readers(account_id="bot-1")]
    # [("o9cq80...@im.wechat", "open"), ("p7x...@im.wechat", "window_closed")]
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from delivery import runtime
from delivery.ledger.db import session_scope
from delivery.ledger.models import Reader
from delivery.ledger.states import ReaderState
from delivery.ledger.types import utcnow
from delivery.policy.reader_rules import reader_state, sends_left
from delivery.settings import Settings

__all__ = ["ReaderInfo", "list_readers", "state_of"]


@dataclass(frozen=True)
class ReaderInfo:
    """One reader of one account: when they last wrote, and what they may get now."""

    account_id: str
    peer_id: str
    state: str  # a ReaderState
    last_inbound_at: dt.datetime | None
    sends_since_inbound: int
    sends_left: int | None  # of the budget; None when they never wrote
    has_context_token: bool
    unconfirmed_in_row: int = 0  # accepted sends in a row without a message_id
    dropping_since: dt.datetime | None = None  # their sends are dropped silently since


def state_of(row: Reader, *, settings: Settings, now: dt.datetime) -> ReaderState:
    """The reader's state under the settings' window and budget."""
    return reader_state(
        last_inbound_at=row.last_inbound_at,
        sends_since_inbound=row.sends_since_inbound,
        closed_reason=row.closed_reason,
        now=now,
        window_seconds=settings.reader_window_seconds,
        budget=settings.reader_budget,
        dropping_since=row.dropping_since,
    )


def list_readers(account_id: str | None = None) -> list[ReaderInfo]:
    """Every reader (of one account, if given), by account and peer."""
    settings = runtime.current().settings
    now = utcnow()
    query = select(Reader).order_by(Reader.account_id, Reader.peer_id)
    if account_id is not None:
        query = query.where(Reader.account_id == account_id)
    with session_scope(runtime.current().engine, readonly=True) as db:
        return [
            ReaderInfo(
                account_id=row.account_id,
                peer_id=row.peer_id,
                state=state_of(row, settings=settings, now=now),
                last_inbound_at=row.last_inbound_at,
                sends_since_inbound=row.sends_since_inbound,
                sends_left=sends_left(
                    last_inbound_at=row.last_inbound_at,
                    sends_since_inbound=row.sends_since_inbound,
                    budget=settings.reader_budget,
                ),
                has_context_token=row.context_token is not None
                and row.context_token_stale_at is None,
                unconfirmed_in_row=row.unconfirmed_in_row,
                dropping_since=row.dropping_since,
            )
            for row in db.scalars(query)
        ]
