"""The one module that writes ``readers``: inbound messages, sends counted, refusals,
and the latest context token per (account, peer).

A reader's state is not stored but derived from these rows (see
:mod:`delivery.policy.reader_rules`): ``last_inbound_at`` and the window give whether
the platform will deliver to them; ``sends_since_inbound`` and the budget give
how many more; ``closed_reason`` says the platform refused a send as theirs
(``suspected`` while the pipeline's probe decides, ``refused`` once it did);
``unconfirmed_in_row`` counts the accepted sends in a row answered without a
``message_id`` (silent drops), and ``dropping_since`` says since when that made the
reader one whose messages wait for them to write.

Every function takes the caller's ``Session`` and never commits.

Example::

    heard(db, account_id="bot-1", peer_id="u@im.wechat", at=utcnow(), context_token="ctx")
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, case, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from delivery.ledger.models import Reader
from delivery.ledger.states import ClosedReason

__all__ = [
    "REFUSED",
    "SUSPECTED",
    "clear_dropping",
    "close",
    "confirm_suspected",
    "count_send",
    "fingerprint",
    "heard",
    "last_heard",
    "mark_context_stale",
    "note_accepted",
    "remember_context_token",
    "reopen_suspected",
    "usable_context_token",
]

SUSPECTED = ClosedReason.SUSPECTED
REFUSED = ClosedReason.REFUSED


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, safe for the ledger and logs."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _upsert(db: Session, values: dict[str, Any], on_conflict: dict[str, Any]) -> None:
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Reader).values(**values)
    db.execute(
        statement.on_conflict_do_update(index_elements=["account_id", "peer_id"], set_=on_conflict)
    )


def heard(
    db: Session,
    *,
    account_id: str,
    peer_id: str,
    at: dt.datetime,
    context_token: str | None,
) -> None:
    """The reader wrote at ``at``: the window reopens and the budget starts again.

    An inbound message older than one already recorded changes nothing but a
    missing context token.
    """
    newer = case(
        (Reader.last_inbound_at.is_(None), True), (Reader.last_inbound_at < at, True), else_=False
    )
    on_conflict: dict[str, Any] = {
        "last_inbound_at": case((newer, at), else_=Reader.last_inbound_at),
        "sends_since_inbound": case((newer, 0), else_=Reader.sends_since_inbound),
        "closed_reason": case((newer, None), else_=Reader.closed_reason),
        "closed_at": case((newer, None), else_=Reader.closed_at),
        "unconfirmed_in_row": case((newer, 0), else_=Reader.unconfirmed_in_row),
        "dropping_since": case((newer, None), else_=Reader.dropping_since),
        "updated_at": at,
    }
    values: dict[str, Any] = {
        "account_id": account_id,
        "peer_id": peer_id,
        "last_inbound_at": at,
        "sends_since_inbound": 0,
        "updated_at": at,
    }
    if context_token is not None:
        token_values = {
            "context_token": context_token,
            "context_token_at": at,
            "context_token_stale_at": None,
        }
        values.update(token_values)
        on_conflict.update(
            {
                name: case((newer, value), else_=getattr(Reader, name))
                for name, value in token_values.items()
            }
        )
    _upsert(db, values, on_conflict)


def count_send(db: Session, *, account_id: str, peer_id: str, now: dt.datetime) -> None:
    """One more send to the reader was accepted since their last message."""
    _upsert(
        db,
        {"account_id": account_id, "peer_id": peer_id, "sends_since_inbound": 1, "updated_at": now},
        {"sends_since_inbound": Reader.sends_since_inbound + 1, "updated_at": now},
    )


def note_accepted(
    db: Session,
    *,
    account_id: str,
    peer_id: str,
    now: dt.datetime,
    count: bool,
    confirmed: bool | None,
    drops_before_hold: int,
) -> bool:
    """A send to the reader was accepted: ``count`` it against their budget, and note
    whether the platform confirmed it (``confirmed`` False: no message_id where the
    account's answers carry one; None: nothing to tell). The ``drops_before_hold``-th
    unconfirmed one in a row makes the reader *dropping*. Returns True when this
    send did (the operator is told once)."""
    step = int(count)
    if confirmed is False:
        unconfirmed: Any = Reader.unconfirmed_in_row + 1
        dropping: Any = case(
            (
                and_(
                    Reader.dropping_since.is_(None),
                    Reader.unconfirmed_in_row + 1 >= drops_before_hold,
                ),
                now,
            ),
            else_=Reader.dropping_since,
        )
    else:
        unconfirmed, dropping = 0, Reader.dropping_since
    first_unconfirmed = int(confirmed is False)
    # An accepted send ends any doubt about the reader (a released suspect: they can receive).
    closed = case((Reader.closed_reason == ClosedReason.RELEASED, None), else_=Reader.closed_reason)
    values = {
        "account_id": account_id,
        "peer_id": peer_id,
        "sends_since_inbound": step,
        "unconfirmed_in_row": first_unconfirmed,
        "dropping_since": now if first_unconfirmed >= drops_before_hold else None,
        "updated_at": now,
    }
    on_conflict = {
        "sends_since_inbound": Reader.sends_since_inbound + step,
        "unconfirmed_in_row": unconfirmed,
        "dropping_since": dropping,
        "closed_reason": closed,
        "updated_at": now,
    }
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Reader).values(**values)
    since = db.scalar(
        statement.on_conflict_do_update(
            index_elements=["account_id", "peer_id"], set_=on_conflict
        ).returning(Reader.dropping_since)
    )
    return confirmed is False and since == now


def clear_dropping(db: Session, *, account_id: str, peer_id: str) -> bool:
    """An operator says the reader is no longer dropping (``delivery readers clear``).
    True when they were."""
    result = db.execute(
        update(Reader)
        .where(
            Reader.account_id == account_id,
            Reader.peer_id == peer_id,
            Reader.dropping_since.is_not(None),
        )
        .values(dropping_since=None, unconfirmed_in_row=0)
    )
    return bool(getattr(result, "rowcount", 0))


def close(db: Session, *, account_id: str, peer_id: str, reason: str, now: dt.datetime) -> None:
    """The platform refused a send as this reader's (``reason``: suspected or refused)."""
    _upsert(
        db,
        {
            "account_id": account_id,
            "peer_id": peer_id,
            "sends_since_inbound": 0,
            "closed_reason": reason,
            "closed_at": now,
            "updated_at": now,
        },
        {"closed_reason": reason, "closed_at": now, "updated_at": now},
    )


def confirm_suspected(db: Session, *, account_id: str, peer_ids: Collection[str]) -> None:
    """The probe decided: those readers' refusals were theirs (unless they wrote since)."""
    _set_suspected(db, account_id, peer_ids, REFUSED)


def reopen_suspected(db: Session, *, account_id: str, peer_ids: Collection[str]) -> None:
    """The account was rate limited, and has accepted a send since: those readers are
    not closed, but a bare refusal of theirs now is theirs (see ``released``)."""
    _set_suspected(db, account_id, peer_ids, ClosedReason.RELEASED)


def _set_suspected(
    db: Session, account_id: str, peer_ids: Collection[str], reason: str | None
) -> None:
    if peer_ids:
        db.execute(
            update(Reader)
            .where(
                Reader.account_id == account_id,
                Reader.peer_id.in_(sorted(peer_ids)),
                Reader.closed_reason == SUSPECTED,
            )
            .values(closed_reason=reason)
        )


def remember_context_token(
    db: Session, *, account_id: str, peer_id: str, token: str, now: dt.datetime
) -> None:
    """Keep ``token`` as the peer's latest (given with a message to send; it says
    nothing of when the reader last wrote)."""
    values = {"context_token": token, "context_token_at": now, "context_token_stale_at": None}
    _upsert(
        db,
        {
            "account_id": account_id,
            "peer_id": peer_id,
            "sends_since_inbound": 0,
            "updated_at": now,
            **values,
        },
        {**values, "updated_at": now},
    )


def last_heard(
    db: Session, chats: Collection[tuple[str, str]], *, since: dt.datetime
) -> dict[tuple[str, str], dt.datetime]:
    """Of ``chats`` (account, peer), those whose reader wrote after ``since``, and when."""
    heard: dict[tuple[str, str], dt.datetime] = {}
    ordered = sorted(chats)
    for start in range(0, len(ordered), 500):
        rows = db.execute(
            select(Reader.account_id, Reader.peer_id, Reader.last_inbound_at).where(
                tuple_(Reader.account_id, Reader.peer_id).in_(ordered[start : start + 500]),
                Reader.last_inbound_at > since,
            )
        )
        for account_id, peer_id, at in rows:
            if at is not None:
                heard[(account_id, peer_id)] = at
    return heard


def usable_context_token(db: Session, *, account_id: str, peer_id: str) -> str | None:
    """The peer's latest context token unless it was marked stale."""
    row = db.execute(
        select(Reader.context_token, Reader.context_token_stale_at).where(
            Reader.account_id == account_id, Reader.peer_id == peer_id
        )
    ).one_or_none()
    if row is None or row[1] is not None:
        return None
    token: str | None = row[0]
    return token


def mark_context_stale(
    db: Session, *, account_id: str, peer_id: str, token: str, now: dt.datetime
) -> None:
    """Mark the peer's token stale, unless a newer one has replaced it meanwhile."""
    db.execute(
        update(Reader)
        .where(
            Reader.account_id == account_id,
            Reader.peer_id == peer_id,
            Reader.context_token == token,
        )
        .values(context_token_stale_at=now)
    )
