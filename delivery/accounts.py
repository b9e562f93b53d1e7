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

from delivery.ilink.protocol import DEFAULT_BASE_URL
from delivery.ledger.db import engine_for, session_scope
from delivery.ledger.models import Account
from delivery.ledger.states import SessionState
from delivery.ledger.types import utcnow
from delivery.settings import get_settings
from delivery.validation import (
    validate_account_id,
    validate_base_url,
    validate_recipient,
    validate_token,
)

__all__ = ["AccountInfo", "add_account", "list_accounts", "mask_token"]

log = logging.getLogger(__name__)

_SHOWN_TAIL = 4  # characters of a token an operator sees, to tell tokens apart


def mask_token(token: str) -> str:
    """``••••`` and the last four characters (none at all for a short token)."""
    if len(token) < 3 * _SHOWN_TAIL:
        return "••••"
    return "••••" + token[-_SHOWN_TAIL:]


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
    engine = engine_for(get_settings().database_url)
    with session_scope(engine) as session:
        account = session.get(Account, account_id, with_for_update=True)
        now = utcnow()
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
            session.add(account)
            log.info("account %s added (base URL %s)", account_id, base_url)
        else:
            if account.token != token:
                account.token = token
                account.token_version += 1
                account.token_updated_at = now
                account.session_state = SessionState.UNKNOWN
                account.session_expired_at = None
                account.last_error = None
                log.info(
                    "account %s: token rotated (version %d, %s)",
                    account_id,
                    account.token_version,
                    mask_token(token),
                )
            if account.base_url != base_url:
                # Where every message and the token go: never changed silently
                # (the account store, a login or an operator may change it).
                log.warning(
                    "account %s: base URL changed from %s to %s",
                    account_id,
                    account.base_url,
                    base_url,
                )
                account.base_url = base_url
            if owns_inbound is not None:
                account.owns_inbound = owns_inbound
            if ilink_user_id is not None:
                account.ilink_user_id = ilink_user_id
        session.flush()
        return AccountInfo.of(account)


def list_accounts() -> list[AccountInfo]:
    """Every account, by id, with its token masked."""
    engine = engine_for(get_settings().database_url)
    with session_scope(engine, readonly=True) as session:
        return [AccountInfo.of(a) for a in session.scalars(select(Account).order_by(Account.id))]
