"""Accounts: add or rotate a bot token, list accounts with the token masked.

Adding an account that exists updates it; a new token is how an operator rotates
it. A rotation bumps ``token_version`` and clears the expired mark, so sends that
were waiting on an expired session try again on their next look (within
``DELIVERY_SESSION_RECHECK_SECONDS``), with no worker restart. A changed base URL
is a WARNING line (from -> to), whoever changes it (operator, login, account store).

Example::

    add_account("bot-1", token="...", base_url="https://ilinkai.weixin.qq.com")
    [a.token_masked for a in list_accounts()]      # ['••••3f9a']
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select

from delivery import runtime
from delivery.errors import InvalidInput
from delivery.ilink.protocol import DEFAULT_BASE_URL
from delivery.ledger.accounts import forget_rate, store_account
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account
from delivery.ledger.states import ParkReason
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import wake_parked
from delivery.validation import (
    mask_token,
    validate_account_id,
    validate_base_url,
    validate_recipient,
    validate_token,
)

__all__ = [
    "AccountInfo",
    "add_account",
    "list_accounts",
    "mask_token",
    "reset_pace",
    "stored_token",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountInfo:
    """An account as the CLI shows it: never the token itself."""

    id: str
    base_url: str
    token_masked: str
    token_version: int
    token_updated_at: dt.datetime
    session_state: str
    session_expired_at: dt.datetime | None
    last_validated_at: dt.datetime | None
    last_error: str | None
    owns_inbound: bool
    ilink_user_id: str | None

    @classmethod
    def of(cls, account: Account) -> AccountInfo:
        return cls(
            id=account.id,
            base_url=account.base_url,
            token_masked=mask_token(account.token),
            token_version=account.token_version,
            token_updated_at=account.token_updated_at,
            session_state=account.session_state,
            session_expired_at=account.session_expired_at,
            last_validated_at=account.last_validated_at,
            last_error=account.last_error,
            owns_inbound=account.owns_inbound,
            ilink_user_id=account.ilink_user_id,
        )


def add_account(
    account_id: str,
    *,
    token: str,
    base_url: str = DEFAULT_BASE_URL,
    owns_inbound: bool | None = None,
    ilink_user_id: str | None = None,
) -> AccountInfo:
    """Create the account, or update it; a changed token is a rotation.

    ``owns_inbound`` marks the account as the owner of its inbound side (only then
    may ``getupdates`` be called); ``None`` keeps the current value.
    ``ilink_user_id`` is the user the bot was logged in with (the QR login says);
    the session check validates with it. ``None`` keeps the current value.

    Raises:
        InvalidInput: a malformed id, token or base URL. Nothing is written.
        LedgerError: the database is unreachable.
    """
    validate_account_id(account_id)
    validate_token(token)
    base_url = validate_base_url(base_url)
    if ilink_user_id is not None:
        validate_recipient(ilink_user_id)
    process = runtime.current()
    engine = process.engine
    with session_scope(engine) as db:
        stored = store_account(
            db,
            account_id,
            token=token,
            base_url=base_url,
            owns_inbound=owns_inbound,
            ilink_user_id=ilink_user_id,
            now=utcnow(),
        )
        info = AccountInfo.of(stored.account)
    if stored.created:
        log.info("account %s added (base URL %s)", account_id, base_url)
    if stored.base_url_changed_from is not None:
        log.warning(
            "account %s: base URL changed from %s to %s",
            account_id,
            stored.base_url_changed_from,
            base_url,
        )
    if stored.rotated:
        log.info(
            "account %s: token rotated (version %d, %s)",
            account_id,
            info.token_version,
            info.token_masked,
        )
        # A new token: the sends parked on the expired session try it.
        wake_parked(
            engine,
            process.publisher,
            account_id,
            reason=ParkReason.SESSION,
        )
    return info


def list_accounts() -> list[AccountInfo]:
    """Every account, by id, with its token masked."""
    with session_scope(runtime.current().engine, readonly=True) as session:
        return [AccountInfo.of(a) for a in session.scalars(select(Account).order_by(Account.id))]


def stored_token(account_id: str) -> str | None:
    """The bot token the ledger holds for ``account_id``, or ``None`` for an unknown account.

    A secret: for a request to the platform (the QR login names the tokens it
    holds), never for a log line or an exception.
    """
    with session_scope(runtime.current().engine, readonly=True) as session:
        return session.scalar(select(Account.token).where(Account.id == account_id))


def reset_pace(account_id: str) -> bool:
    """Forget the rate limit ``account_id`` learned from a refusal: it sends at the
    configured rate again. True when it had one.

    Raises:
        InvalidInput: no such account.
    """
    validate_account_id(account_id)
    with session_scope(runtime.current().engine) as session:
        if session.get(Account, account_id) is None:
            raise InvalidInput(f"no account {account_id!r} (delivery account list shows them)")
        forgot = forget_rate(session, account_id)
    if forgot:
        log.warning("account %s: learned rate limit forgotten by the operator", account_id)
    return forgot
