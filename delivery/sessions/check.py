"""The session check beat runs: validate every account, heal an expired one.

For each account, every ``DELIVERY_SESSION_CHECK_INTERVAL_SECONDS``:

1. Skip it while it cools down after a rate limit (no call then).
2. Validate the token with ``getconfig`` — a call that does not consume inbound
   messages (``getupdates`` would steal the agent's).
3. Valid: clear an expired mark; sends resume by themselves (they look again
   every ``DELIVERY_SESSION_RECHECK_SECONDS``). If an expiry had been alerted,
   say it healed.
4. Expired: mark it, then try to heal it — import a token the account store
   holds that the ledger does not (another process may have logged in), rebuild
   the HTTP session, validate again.
5. Still expired: one ERROR line per check (not per message), the alert hook
   once per expiry, and a *trial send*: one parked chat may try the platform
   anyway (``getconfig`` may be wrong); accepted, it clears the mark and every
   parked chat resumes.

Example::

    checker = SessionChecker(engine=engine, clients=clients, gate=gate,
                             store=None, alerter=alerter)
    for result in checker.check_all():
        print(result.account_id, result.action)
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from delivery.errors import InvalidInput, LedgerError, LimiterUnavailable, TransportError
from delivery.ilink.classify import classify
from delivery.ilink.pool import ClientPool
from delivery.ledger import accounts, outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Message
from delivery.ledger.queries import oldest_parked_head
from delivery.ledger.states import OPEN_MESSAGE_STATES, AttemptOutcome, ParkReason, SessionState
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import Publisher, publish_all, wake_parked
from delivery.ratelimit.gate import AccountGate
from delivery.sessions.alerts import Alerter, SessionEvent
from delivery.sessions.store import FileAccountStore
from delivery.sessions.trials import TrialPasses
from delivery.validation import (
    mask_token,
    validate_base_url,
    validate_recipient,
    validate_token,
)

__all__ = ["CHECKS_AT_ONCE", "CheckResult", "SessionChecker", "hint_for"]

CHECKS_AT_ONCE = 8  # accounts validated at the same time (threads of one task)

log = logging.getLogger(__name__)

# Only -14 says a session expired; "-2 unknown error" is one chat's trouble, not the
# account's (the send path reads it so too).
_EXPIRED = frozenset({AttemptOutcome.SESSION_EXPIRED})


@dataclass(frozen=True)
class CheckResult:
    """What the check did for one account."""

    account_id: str
    state: str  # the session state after the check
    action: str  # valid / healed / expired / skipped / unknown


@dataclass(frozen=True)
class _Account:
    id: str
    token: str = field(repr=False)
    token_version: int
    base_url: str
    session_state: str
    session_expired_at: dt.datetime | None
    ilink_user_id: str | None
    peer: str | None


def hint_for(account_id: str) -> str:
    """What an operator can do about an expired session."""
    return (
        f"store a new token: delivery login {account_id}, "
        f"or delivery account add {account_id} --token -"
    )


def _duration(since: dt.datetime | None, now: dt.datetime) -> str:
    if since is None:
        return "just now"
    seconds = int((now - since).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class SessionChecker:
    """Validates and heals sessions; see the module docstring."""

    def __init__(
        self,
        *,
        engine: Engine,
        clients: ClientPool,
        gate: AccountGate | None,
        store: FileAccountStore | None,
        alerter: Alerter,
        publisher: Publisher,
        trials: TrialPasses | None = None,
    ) -> None:
        self._engine = engine
        self._clients = clients
        self._gate = gate
        self._store = store
        self._alerter = alerter
        self._publisher = publisher
        self._trials = trials

    def check_all(self, *, parallel: int = CHECKS_AT_ONCE) -> list[CheckResult]:
        """Check every account, ``parallel`` at a time: a run takes about as long as
        its slowest ``getconfig`` (a timeout at worst), not the sum of them, so
        accounts that hang do not hold the worker for a multiple of the timeout.
        One account's trouble does not stop the others."""
        with session_scope(self._engine, readonly=True) as session:
            account_ids = list(session.scalars(select(Account.id).order_by(Account.id)))
        if len(account_ids) <= 1:
            return [self._check_quietly(a) for a in account_ids]
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="check") as pool:
            return list(pool.map(self._check_quietly, account_ids))

    def _check_quietly(self, account_id: str) -> CheckResult:
        try:
            return self.check(account_id)
        except (LedgerError, LimiterUnavailable) as exc:
            log.error("account %s: session not checked: %s", account_id, exc)
            return CheckResult(account_id, "?", f"skipped: {exc}")

    def check(self, account_id: str) -> CheckResult:
        """Validate one account and heal or report it."""
        account = self._load(account_id)
        if account is None:
            return CheckResult(account_id, "missing", "skipped")
        if self._cooling(account_id):
            return CheckResult(account_id, account.session_state, "skipped: cooling down")
        outcome, reason = self._validate(account)
        if outcome == AttemptOutcome.ACCEPTED:
            return self._valid(account, healed=False)
        if outcome not in _EXPIRED:
            log.warning("account %s: session not checked (%s)", account_id, reason)
            return CheckResult(account_id, account.session_state, f"unknown: {reason}")
        self._mark_expired(account, reason)
        healed = self._heal(account)
        if healed is not None:
            return healed
        return self._still_expired(account_id, reason)

    # -- steps -------------------------------------------------------------------

    def _load(self, account_id: str) -> _Account | None:
        with session_scope(self._engine) as session:
            row = session.get(Account, account_id)
            if row is None:
                return None
            peer = session.scalar(
                select(Message.to_user_id)
                .where(Message.account_id == account_id)
                .order_by(Message.id.desc())
                .limit(1)
            )
            return _Account(
                id=row.id,
                token=row.token,
                token_version=row.token_version,
                base_url=row.base_url,
                session_state=row.session_state,
                session_expired_at=row.session_expired_at,
                ilink_user_id=row.ilink_user_id,
                peer=peer,
            )

    def _cooling(self, account_id: str) -> bool:
        if self._gate is None:
            return False
        try:
            return self._gate.state(account_id).cooldown_seconds > 0
        except LimiterUnavailable:
            return False

    def _validate(self, account: _Account) -> tuple[AttemptOutcome, str]:
        client = self._clients.get(
            account_id=account.id,
            token=account.token,
            token_version=account.token_version,
            base_url=account.base_url,
        )
        # The user the bot logged in with; else the last peer it wrote to.
        user = account.ilink_user_id or account.peer or ""
        try:
            reply = client.get_config(ilink_user_id=user)
        except TransportError as exc:
            return AttemptOutcome.TRANSIENT, str(exc)
        verdict = classify(reply.answer, used_context_token=False)
        return verdict.outcome, verdict.reason

    def _valid(self, account: _Account, *, healed: bool) -> CheckResult:
        now = utcnow()
        with session_scope(self._engine) as session:
            row = session.get(Account, account.id, with_for_update=True)
            assert row is not None
            if row.token_version != account.token_version:
                return CheckResult(account.id, row.session_state, "token changed meanwhile")
            since = row.session_expired_at
            was_expired = accounts.mark_session_ok(session, account.id, now=now)
            recovered = accounts.clear_alert(session, account.id)
        if was_expired or healed:
            log.info("account %s: session valid again after %s", account.id, _duration(since, now))
            self._wake_parked(account.id)
        if recovered:
            self._alert(account.id, "session_recovered", since, "session valid again")
        return CheckResult(account.id, SessionState.OK, "healed" if healed else "valid")

    def _wake_parked(self, account_id: str) -> None:
        wake_parked(
            self._engine,
            self._publisher,
            account_id,
            reason=ParkReason.SESSION,
        )

    def _mark_expired(self, account: _Account, reason: str) -> None:
        with session_scope(self._engine) as session:
            accounts.mark_session_expired(
                session,
                account.id,
                token_version=account.token_version,
                reason=reason,
                now=utcnow(),
            )

    def _heal(self, account: _Account) -> CheckResult | None:
        """Import a new token from the store, rebuild the HTTP session, validate again."""
        fresh = self._fresh_from_store(account)
        candidate = fresh or account
        self._clients.discard(account.id)
        outcome, _ = self._validate(candidate)
        if outcome == AttemptOutcome.ACCEPTED:
            return self._valid(candidate, healed=True)
        return None

    def _fresh_from_store(self, account: _Account) -> _Account | None:
        if self._store is None:
            return None
        stored = self._store.load(account.id)
        if stored is None or stored.token == account.token:
            return None
        try:
            validate_token(stored.token)
            base_url = validate_base_url(stored.base_url or account.base_url)
            if stored.ilink_user_id is not None:
                validate_recipient(stored.ilink_user_id)
        except InvalidInput as exc:
            log.error("account %s: the stored token cannot be used (%s)", account.id, exc)
            return None
        with session_scope(self._engine) as session:
            result = accounts.store_account(
                session,
                account.id,
                token=stored.token,
                base_url=base_url,
                owns_inbound=None,
                ilink_user_id=stored.ilink_user_id,
                now=utcnow(),
            )
            version = result.account.token_version
        if result.base_url_changed_from is not None:
            log.warning(
                "account %s: base URL changed from %s to %s by the account store",
                account.id,
                result.base_url_changed_from,
                base_url,
            )
        log.info(
            "account %s: imported token %s (version %d) from the account store",
            account.id,
            mask_token(stored.token),
            version,
        )
        return self._load(account.id)

    def _still_expired(self, account_id: str, reason: str) -> CheckResult:
        now = utcnow()
        with session_scope(self._engine) as session:
            row = session.get(Account, account_id)
            assert row is not None
            since = row.session_expired_at
            waiting = _waiting_messages(session, account_id)
            first_alert = accounts.claim_alert(session, account_id, now)
        log.error(
            "account %s: session expired for %s (%s); %d message(s) wait, spending no budget; %s",
            account_id,
            _duration(since, now),
            reason,
            waiting,
            hint_for(account_id),
        )
        if first_alert:
            self._alert(account_id, "session_expired", since, reason, waiting=waiting)
        self._trial(account_id)
        return CheckResult(account_id, SessionState.EXPIRED, "expired")

    def _trial(self, account_id: str) -> None:
        """Let one parked chat try the platform anyway: ``getconfig`` may be wrong."""
        if self._trials is None:
            return
        with session_scope(self._engine, readonly=True) as session:
            head = oldest_parked_head(session, account_id=account_id, reason=ParkReason.SESSION)
        if head is None or not self._trials.grant(account_id, chunk_id=head):
            return
        with session_scope(self._engine) as session:
            armed = outbox.arm(session, [head], now=utcnow())
        if publish_all(self._publisher, armed):
            log.info(
                "account %s: one parked chat tries a send despite the expired mark", account_id
            )

    def _alert(
        self,
        account_id: str,
        event: str,
        since: dt.datetime | None,
        detail: str,
        *,
        waiting: int | None = None,
    ) -> None:
        if waiting is None:
            with session_scope(self._engine) as session:
                waiting = _waiting_messages(session, account_id)
        self._alerter.send(
            SessionEvent(
                event=event,
                account_id=account_id,
                expired_since=since,
                waiting_messages=waiting,
                detail=detail,
                hint=hint_for(account_id),
            )
        )


def _waiting_messages(session: Session, account_id: str) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.account_id == account_id,
            Message.status.in_([str(s) for s in OPEN_MESSAGE_STATES]),
        )
    )
    return int(count or 0)
