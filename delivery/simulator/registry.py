"""The platform's accounts, found by id or by any token they were ever given.

A replaced token still names its account (it answers ``-14``, not "unknown"), so
the registry keeps every token it issued. Not thread-safe: the model's lock guards it.

Example::

    accounts = AccountRegistry()
    accounts.add("bot-1", token="t-1")
    accounts.rotate("bot-1", token="t-2")
    accounts.owner("t-1").account_id        # 'bot-1' (its session is over)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator

from delivery.simulator.rules import AccountState

__all__ = ["AccountRegistry"]


class AccountRegistry:
    """Accounts by id, and the owner of every token ever issued."""

    def __init__(self) -> None:
        self._by_id: dict[str, AccountState] = {}
        self._by_token: dict[str, AccountState] = {}

    def __getitem__(self, account_id: str) -> AccountState:
        """The account; ``KeyError`` for an unknown id."""
        return self._by_id[account_id]

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._by_id

    def __iter__(self) -> Iterator[AccountState]:
        return iter(list(self._by_id.values()))

    def add(self, account_id: str, *, token: str) -> AccountState:
        """Create an account; ``ValueError`` for an empty or taken id or a used token."""
        if not account_id:
            raise ValueError("account_id must not be empty")
        if account_id in self._by_id:
            raise ValueError(f"account {account_id!r} exists; use set_token")
        self._check_new_token(token)
        account = AccountState(account_id=account_id, token=token)
        self._by_id[account_id] = account
        self._by_token[token] = account
        return account

    def add_fresh(self) -> AccountState:
        """A new account with a random id and token, as a confirmed QR login creates."""
        account_id = f"{secrets.token_hex(8)}@im.bot"
        return self.add(account_id, token=f"simtok-{secrets.token_urlsafe(24)}")

    def rotate(self, account_id: str, *, token: str) -> None:
        """Give the account a new token: the old one answers ``-14`` from now on."""
        account = self._by_id[account_id]
        self._check_new_token(token)
        account.token = token
        account.token_sends = 0
        account.expired = False
        self._by_token[token] = account

    def owner(self, token: str | None) -> AccountState | None:
        """The account ``token`` (current or old) belongs to, if any."""
        return self._by_token.get(token) if token else None

    def owners(self, tokens: Iterable[str]) -> tuple[str, ...]:
        """The ids of the accounts the known ones of ``tokens`` belong to, in order."""
        found = (self._by_token.get(token) for token in tokens)
        return tuple(account.account_id for account in found if account is not None)

    def _check_new_token(self, token: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        if token in self._by_token:
            raise ValueError("token was issued before; a session is cured only by a new one")
