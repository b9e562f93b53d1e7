"""How the platform judges one ``sendmessage`` of one account: the rules, in order.

The first rule that applies decides (injected faults fire before all of these, in
the model):

1. an unknown, replaced or expired token: ``session_expired`` (``-14``);
2. text longer than ``max_text_chars``: ``text_too_long`` (``ret -1``, permanent);
3. during a lockout: ``rate_limited`` (``-2``), and the lockout grows;
4. a ``client_id`` this account already got accepted: ``duplicate`` (``ret 0``, not
   delivered again). It comes before the window so that a client re-sending after
   a lost answer does not spend rate budget on it; a lockout still refuses it,
   because during a lockout the platform refuses *every* send;
5. a reader outside their reply window or past their budget (when those are on):
   ``reader_refused``, a bare ``{"ret": -2}`` (it spends no rate budget);
6. a send that would exceed the window: ``rate_limited``, and a lockout starts;
7. a reader in ``silent_drop_readers``: ``silently_dropped``, answered ``{"ret": 0}``
   without a ``message_id`` and never delivered (it counts against the window);
8. otherwise ``accepted``; the ``expire_after_sends``-th accepted send of a token
   expires the session right after it.

A rate-limit refusal is worded (``rate_limit_errmsg``) unless it is one of the first
``rate_limit_bare_refusals`` of its lockout: then it is a bare ``{"ret": -2}``.
An accepted send is given a ``message_id``, a random uint64 past 2**53 (so that a
client that parses it as a float loses digits and a test sees it), and answered
with it unless ``message_ids`` is off; a duplicate is answered with the id of the
send it repeats.

Example::

    account = AccountState(account_id="bot-1", token="t-1")
    judge_send(account, token="t-1", send=send, now=0.0, config=SimulatorConfig())
    # "accepted"
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from delivery.ilink.protocol import MESSAGE_ID_FIELD, RET_FREQUENCY_LIMIT
from delivery.simulator.config import SimulatorConfig
from delivery.simulator.envelope import SendMessage
from delivery.simulator.limiter import AccountLimiter
from delivery.simulator.reader_book import ReaderBook
from delivery.simulator.records import AccountReport
from delivery.simulator.replies import (
    RET_REFUSED,
    Reply,
    error_reply,
    json_reply,
    rate_limited,
    session_expired,
)

__all__ = ["AccountState", "Verdict", "judge_send", "new_message_id", "reply_for"]

Verdict = Literal[
    "accepted",
    "duplicate",
    "session_expired",
    "text_too_long",
    "rate_limited",
    "reader_refused",
    "silently_dropped",
]


@dataclass
class AccountState:
    """One account on the platform. Not thread-safe: the model's lock guards it."""

    account_id: str
    token: str
    token_sends: int = 0
    expired: bool = False
    limiter: AccountLimiter = field(default_factory=AccountLimiter)
    in_flight: int = 0
    max_in_flight: int = 0
    polls: int = 0
    polls_in_flight: int = 0
    max_polls_in_flight: int = 0
    accepted_at: list[float] = field(default_factory=list)
    message_ids: dict[str, str] = field(default_factory=dict)  # by accepted client_id
    readers: ReaderBook = field(default_factory=ReaderBook)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is this account's current token and its session is alive."""
        return token == self.token and not self.expired

    def report(self, now: float) -> AccountReport:
        """The account as the snapshot shows it at ``now``."""
        lockout_until = self.limiter.lockout_until
        return AccountReport(
            account_id=self.account_id,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            accepted_at=tuple(self.accepted_at),
            token_sends=self.token_sends,
            session_expired=self.expired,
            lockout_until=lockout_until if lockout_until and lockout_until > now else None,
            polls=self.polls,
            polls_in_flight=self.polls_in_flight,
            max_polls_in_flight=self.max_polls_in_flight,
            lockouts=self.limiter.lockouts,
        )


def new_message_id() -> str:
    """A fresh platform message id: a uint64 with its top bit set, in decimal."""
    return str(1 << 63 | secrets.randbits(63))


def judge_send(
    account: AccountState | None,
    *,
    token: str,
    send: SendMessage,
    now: float,
    config: SimulatorConfig,
) -> Verdict:
    """Apply the rules to one send at ``now`` (seconds) and update the account's state.

    ``account`` is the owner of ``token`` (``None`` if nobody ever had it). An
    accepted send's id is ``account.message_ids[send.client_id]`` afterwards.
    """
    if account is None or not account.accepts(token):
        return "session_expired"
    if len(send.text) > config.max_text_chars:
        return "text_too_long"
    if account.limiter.locked_out(now, config=config):
        return "rate_limited"
    if send.client_id in account.message_ids:
        return "duplicate"
    if account.readers.refuses(
        send.to_user_id,
        now=now,
        window_seconds=config.reader_window_seconds,
        budget=config.reader_budget,
    ):
        return "reader_refused"
    if account.limiter.over_limit(now, config=config):
        return "rate_limited"
    account.limiter.record(now)
    if send.to_user_id in config.silent_drop_readers:
        account.readers.sent(send.to_user_id)
        return "silently_dropped"
    account.readers.sent(send.to_user_id)
    account.message_ids[send.client_id] = new_message_id()
    account.accepted_at.append(now)
    account.token_sends += 1
    if config.expire_after_sends is not None and account.token_sends >= config.expire_after_sends:
        account.expired = True
    return "accepted"


def reply_for(
    verdict: Verdict, *, config: SimulatorConfig, message_id: str | None, bare: bool = False
) -> Reply:
    """The platform's answer to a verdict; an accepted one names ``message_id`` (a number)
    when ``message_ids`` is on. ``bare``: a rate limit answered as a bare ``-2``."""
    if verdict == "silently_dropped":
        return json_reply({"ret": 0})
    if verdict in ("accepted", "duplicate"):
        answer: dict[str, Any] = {"ret": 0}
        if message_id is not None and config.message_ids:
            answer[MESSAGE_ID_FIELD] = int(message_id)  # a JSON number, as the platform sends
        return json_reply(answer)
    if verdict == "session_expired":
        return session_expired()
    if verdict == "reader_refused":
        return error_reply(ret=RET_FREQUENCY_LIMIT, errcode=None, errmsg=None)  # a bare -2
    if verdict == "text_too_long":
        return error_reply(ret=RET_REFUSED, errcode=RET_REFUSED, errmsg="text too long")
    if bare:
        return error_reply(ret=RET_FREQUENCY_LIMIT, errcode=None, errmsg=None)
    return rate_limited(config.rate_limit_errmsg)
