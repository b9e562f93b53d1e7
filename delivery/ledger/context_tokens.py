"""The latest context token per (account, peer): stored, read, marked stale.

Replies echo the peer's latest context token. Reports say a stale one makes
sends fail and that only a new inbound message restores it; none of that is
confirmed, so the token is kept, sent when known, and marked stale (and then
left out) when a send with it fails as stale.

Example::

    upsert_context_token(session, account_id="bot-1", peer_id="u@im.wechat", token="ctx")
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from delivery.ledger.models import ContextToken
from delivery.ledger.types import utcnow

__all__ = ["fingerprint", "mark_stale", "upsert_context_token", "usable_context_token"]


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, safe for the ledger and logs."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def upsert_context_token(
    session: Session, *, account_id: str, peer_id: str, token: str, at: dt.datetime | None = None
) -> None:
    """Make ``token`` the latest for the peer (clearing any stale mark). Does not commit."""
    values = {
        "account_id": account_id,
        "peer_id": peer_id,
        "token": token,
        "updated_at": at or utcnow(),
        "stale_at": None,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ContextToken).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["account_id", "peer_id"],
        set_={"token": token, "updated_at": values["updated_at"], "stale_at": None},
    )
    session.execute(statement)


def usable_context_token(session: Session, *, account_id: str, peer_id: str) -> str | None:
    """The peer's latest token unless it was marked stale."""
    row = session.get(ContextToken, (account_id, peer_id))
    if row is None or row.stale_at is not None:
        return None
    return row.token


def mark_stale(session: Session, *, account_id: str, peer_id: str, token: str) -> None:
    """Mark the peer's token stale, unless a newer one has replaced it meanwhile."""
    session.execute(
        update(ContextToken)
        .where(
            ContextToken.account_id == account_id,
            ContextToken.peer_id == peer_id,
            ContextToken.token == token,
        )
        .values(stale_at=utcnow())
    )
