"""The one module that writes ``accounts``: tokens, session state, alert marks, the
learned rate limit.

Callers say what happened (an operator stored a token, a call proved the session
good, the platform said it expired, an expiry was alerted); this module decides
which columns change. Every function takes the caller's ``Session`` and never
commits.

A rotation (a new token) bumps ``token_version`` and clears the expired mark: a
worker rebuilds its HTTP session when the version changes, and an expiry seen
with an older token no longer marks the account.

Example::

    with session_scope(engine) as db:
        if mark_session_ok(db, "bot-1", now=utcnow()):
            ...  # it had been expired: wake the sends parked on it
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.ledger.models import Account
from delivery.ledger.states import SessionState
from delivery.ledger.types import clean_text

_ERROR_CHARS = 2000  # of the platform's last word on an account

__all__ = [
    "Stored",
    "claim_alert",
    "clear_alert",
    "end_cooldown",
    "forget_rate",
    "learn_rate",
    "mark_session_expired",
    "mark_session_ok",
    "note_confirms_sends",
    "note_cooldown",
    "note_pace",
    "raise_rate",
    "store_account",
]


@dataclass(frozen=True)
class Stored:
    """What :func:`store_account` did."""

    account: Account
    created: bool
    rotated: bool
    base_url_changed_from: str | None


def store_account(
    db: Session,
    account_id: str,
    *,
    token: str,
    base_url: str,
    owns_inbound: bool | None,
    ilink_user_id: str | None,
    now: dt.datetime,
) -> Stored:
    """Create the account, or update it; a changed token is a rotation.

    ``None`` for ``owns_inbound`` or ``ilink_user_id`` keeps the current value.
    """
    account = db.get(Account, account_id, with_for_update=True)
    if account is None:
        account = Account(
            id=account_id,
            base_url=base_url,
            token=token,
            token_version=1,
            token_updated_at=now,
            session_state=SessionState.UNKNOWN,
            owns_inbound=bool(owns_inbound),
            ilink_user_id=ilink_user_id,
            created_at=now,
        )
        db.add(account)
        db.flush()
        return Stored(account, created=True, rotated=False, base_url_changed_from=None)
    rotated = account.token != token
    if rotated:
        account.token = token
        account.token_version += 1
        account.token_updated_at = now
        account.session_state = SessionState.UNKNOWN
        account.session_expired_at = None
        account.last_error = None
    moved_from = account.base_url if account.base_url != base_url else None
    account.base_url = base_url
    if owns_inbound is not None:
        account.owns_inbound = owns_inbound
    if ilink_user_id is not None:
        account.ilink_user_id = ilink_user_id
    db.flush()
    return Stored(account, created=False, rotated=rotated, base_url_changed_from=moved_from)


def mark_session_expired(
    db: Session, account_id: str, *, token_version: int, reason: str, now: dt.datetime
) -> tuple[bool, bool]:
    """The platform said the session of ``token_version`` expired.

    Returns ``(expired, first)``: whether the account is now marked expired (not
    when its token was rotated since the call began), and whether this call
    marked it (the first sign of the expiry). The row is locked.
    """
    account = db.get(Account, account_id, with_for_update=True)
    if account is None or account.token_version != token_version:
        return False, False
    first = account.session_state != SessionState.EXPIRED
    account.session_state = SessionState.EXPIRED
    if account.session_expired_at is None:
        account.session_expired_at = now
    account.last_error = clean_text(reason, limit=_ERROR_CHARS)
    return True, first


def mark_session_ok(
    db: Session,
    account_id: str,
    *,
    now: dt.datetime,
    token_version: int | None = None,
    refresh_seconds: float = 0.0,
) -> bool:
    """A call proved the session good. Returns True when it had been expired.

    An account known good and validated less than ``refresh_seconds`` ago is
    left untouched (every accepted send need not rewrite the row). With
    ``token_version``, an account whose token was rotated since is left alone.
    """
    row = db.execute(
        select(Account.session_state, Account.last_validated_at, Account.token_version).where(
            Account.id == account_id
        )
    ).one_or_none()
    if row is None:
        return False
    state, validated_at, version = row
    if token_version is not None and version != token_version:
        return False
    fresh = validated_at is not None and (now - validated_at).total_seconds() < refresh_seconds
    if state == SessionState.OK and fresh:
        return False
    db.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(
            session_state=SessionState.OK,
            session_expired_at=None,
            last_validated_at=now,
            last_error=None,
        )
    )
    return state == SessionState.EXPIRED


def claim_alert(db: Session, account_id: str, now: dt.datetime) -> bool:
    """Mark the expiry as alerted; True only for the first caller (exactly once)."""
    result = db.execute(
        update(Account)
        .where(Account.id == account_id, Account.session_alerted_at.is_(None))
        .values(session_alerted_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def clear_alert(db: Session, account_id: str) -> bool:
    """Clear an alerted expiry; True when there was one (so say it healed)."""
    result = db.execute(
        update(Account)
        .where(Account.id == account_id, Account.session_alerted_at.is_not(None))
        .values(session_alerted_at=None)
    )
    return bool(getattr(result, "rowcount", 0))


def learn_rate(
    db: Session,
    account_id: str,
    *,
    per_minute: float,
    evidence: str,
    now: dt.datetime,
    memory_seconds: float,
) -> float | None:
    """Keep a rate limit learned from a refusal. A lower one still in force (learned
    less than ``memory_seconds`` ago) stays, and so does when it was learned: a
    refusal that teaches nothing lower does not renew its memory. Returns the
    ceiling now kept, or None when the account is unknown."""
    account = db.get(Account, account_id, with_for_update=True)
    if account is None:
        return None
    kept, at = account.learned_rate_per_minute, account.learned_at
    in_force = kept is not None and at is not None and (now - at).total_seconds() < memory_seconds
    note = clean_text(evidence, limit=_ERROR_CHARS)
    if not in_force or kept is None or per_minute < kept:
        account.learned_rate_per_minute = per_minute
        account.learned_from = note
        account.learned_at = now
    account.pace_note = note
    db.flush()
    return account.learned_rate_per_minute


def note_pace(db: Session, account_id: str, *, note: str) -> None:
    """Keep the latest word on the account's pace (a refusal that taught nothing, and why)."""
    db.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(pace_note=clean_text(note, limit=_ERROR_CHARS))
    )


def raise_rate(
    db: Session, account_id: str, *, per_minute: float | None, proven: float, now: dt.datetime
) -> None:
    """A long run at the learned ceiling without a refusal: it rises to ``per_minute``
    (None: it is forgotten, back at the configured rate); ``proven`` is the rate
    the run was sent at. Its memory counts from now."""
    note = (
        f"{proven:.1f}/min held without a refusal for a long run; ceiling raised to "
        f"{per_minute:.1f}/min"
        if per_minute is not None
        else f"{proven:.1f}/min held without a refusal for a long run; back at the configured rate"
    )
    db.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(
            learned_rate_per_minute=per_minute,
            learned_at=now if per_minute is not None else None,
            learned_from=note if per_minute is not None else None,
            pace_proven_per_minute=proven,
            pace_note=note,
        )
    )


def note_cooldown(db: Session, account_id: str, *, until: dt.datetime, strikes: int) -> None:
    """A rate limit started (or lengthened) the account's cooldown: kept here too, so
    that a Redis that lost it never lets a send into the lockout."""
    db.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(cooldown_until=until, cooldown_strikes=strikes)
    )


def end_cooldown(db: Session, account_id: str) -> None:
    """A send was accepted: the rate-limit streak is over."""
    db.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(cooldown_until=None, cooldown_strikes=0)
    )


def note_confirms_sends(db: Session, account_id: str) -> None:
    """The platform answered an accepted send of this account with a message_id: from
    now on an accepted answer without one is a silent drop."""
    db.execute(
        update(Account)
        .where(Account.id == account_id, Account.confirms_sends.is_(False))
        .values(confirms_sends=True)
    )


def forget_rate(db: Session, account_id: str) -> bool:
    """Forget a learned rate limit (``delivery account reset-pace``). True when the
    account had one."""
    result = db.execute(
        update(Account)
        .where(Account.id == account_id, Account.learned_rate_per_minute.is_not(None))
        .values(
            learned_rate_per_minute=None,
            learned_at=None,
            learned_from=None,
            pace_proven_per_minute=None,
            pace_note="forgotten by the operator (delivery account reset-pace)",
        )
    )
    return bool(getattr(result, "rowcount", 0))
