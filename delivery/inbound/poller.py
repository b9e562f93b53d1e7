"""One account's inbound poller: ``getupdates`` long polls, each recorded before the
cursor moves, and only by a poller that may still record it.

A poll, step by step:

1. Read the account from the ledger. **An account that does not own its inbound
   side is never polled** (``getupdates`` consumes: it would steal the agent's
   messages): the poller stops. So does it for an expired session (the relay
   starts it again once the session is valid), and when no hand-over is
   configured (what it consumed would reach nobody; the platform keeps it).
2. ``getupdates`` with the cursor the ledger holds, waiting as long as the
   platform said it holds a poll (``longpolling_timeout_ms``, 35 s until it says),
   plus ``DELIVERY_HTTP_TIMEOUT_SECONDS``. An empty cursor (the account's first
   recorded poll) is answered, as far as known, with everything no poll has
   acknowledged yet.
3. ``-14``: the account is marked expired exactly as a send marks it (its sends
   park), and the poller stops. Another refusal or no answer: wait (backoff),
   then poll again with the same cursor.
4. Before recording, the poller makes sure it still may (else it records nothing,
   and stops): it still holds its lease (``holds_lease``, which renews it); and,
   in the recording transaction, the account still owns its inbound side and the
   cursor is still the one the poll was sent with. What a poll that may not record
   was handed stays at the platform, since no poll carried its cursor: the next
   poll, the relay's that holds the lease or the agent's own, gets it again.
5. Record the whole answer and move the cursor in one transaction
   (:mod:`~delivery.inbound.poll_record`). If the ledger is unreachable the cursor
   stays, and the platform hands the same messages out again next time.
6. After the commit: hand the new messages over, wake the chats of the readers
   who wrote (the relay does both on threads of its own; the poller polls again).

Example::

    poller = AccountPoller("bot-1", context=context, after_poll=relay_after_poll,
                           holds_lease=lambda: lease.hold())
    poller.run(stop=threading.Event())      # until stopped, or it must stop
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine, select

from delivery.errors import LedgerError, TransportError
from delivery.ilink.classify import classify
from delivery.ilink.pool import ClientPool
from delivery.ilink.protocol import TIMEOUT_GETUPDATES_SECONDS
from delivery.inbound.heard import wake_reader
from delivery.inbound.items import read_item, read_updates
from delivery.inbound.poll_record import PollRecord, record_poll
from delivery.ledger import accounts, inbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account
from delivery.ledger.states import AttemptOutcome, ParkReason, SessionState
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import Publisher, wake_parked
from delivery.pipeline.results import Wait
from delivery.settings import Settings

__all__ = [
    "MAX_POLL_BACKOFF_SECONDS",
    "NO_HANDOVER",
    "VALIDATED_REFRESH_SECONDS",
    "AccountPoller",
    "Polled",
    "PollerContext",
    "Stop",
    "Wait",
    "wake_readers",
]

log = logging.getLogger(__name__)

# A poll that answered proves the session; the account row says so at most this often.
VALIDATED_REFRESH_SECONDS = 60.0
# A platform that fails polls is asked again at least this often (the official client
# waits 30 s after three failures): the readers' messages wait at the platform meanwhile.
MAX_POLL_BACKOFF_SECONDS = 30.0
# Why a relay with no channel to the agent polls nothing.
NO_HANDOVER = (
    "no hand-over is configured (DELIVERY_INBOUND_TASK, DELIVERY_INBOUND_WEBHOOK_URL, "
    "DELIVERY_INBOUND_CALLBACK): getupdates would consume messages nobody receives"
)


@dataclass(frozen=True)
class Polled:
    """A poll answered and was recorded."""

    record: PollRecord


@dataclass(frozen=True)
class Stop:
    """This account must not be polled now."""

    why: str


@dataclass(frozen=True)
class PollerContext:
    """What every poller of a relay shares."""

    engine: Engine
    clients: ClientPool
    publisher: Publisher
    settings: Settings
    backoff: Callable[[int], float]  # seconds to wait after the n-th failure in a row
    channels: Sequence[str] = field(default_factory=tuple)  # the hand-overs configured
    claim_seconds: float = 20.0  # a hand-over not recorded by then is taken for lost
    host: str = ""


@dataclass(frozen=True)
class _Account:
    owns_inbound: bool
    session_state: str
    token: str = field(repr=False)
    token_version: int
    base_url: str
    cursor: str


class AccountPoller:
    """Polls one account until stopped. ``after_poll(account_id, record)`` gets what
    each recorded poll wrote, after its commit: the relay hands the new messages
    over and wakes the readers' chats (:func:`wake_readers`) off the poller's thread,
    so the next poll goes at once. ``holds_lease()`` says whether this poller still
    holds the account's lease (renewing it); ``False`` when it cannot tell."""

    def __init__(
        self,
        account_id: str,
        *,
        context: PollerContext,
        after_poll: Callable[[str, PollRecord], None],
        holds_lease: Callable[[], bool],
    ) -> None:
        self.account_id = account_id
        self._context = context
        self._after_poll = after_poll
        self._holds_lease = holds_lease
        self._hold_seconds = TIMEOUT_GETUPDATES_SECONDS
        self._failures = 0
        self._validated_at: dt.datetime | None = None
        self._said_empty = False

    def run(self, stop: threading.Event) -> str:
        """Poll until ``stop`` is set or a poll says to stop; returns why it ended."""
        while not stop.is_set():
            step = self.poll_once()
            if isinstance(step, Stop):
                return step.why
            if isinstance(step, Wait):
                log.warning(
                    "account %s: inbound poll failed (%s); again in %.1f s",
                    self.account_id,
                    step.why,
                    step.seconds,
                )
                stop.wait(step.seconds)
        return "stopped"

    def poll_once(self) -> Polled | Wait | Stop:
        """One ``getupdates`` and its record (see the module docstring)."""
        settings = self._context.settings
        try:
            account = self._load()
        except LedgerError as exc:
            return Wait(settings.outage_retry_seconds, str(exc))
        if account is None or not account.owns_inbound:
            # The guard: getupdates consumes, and would steal the agent's messages.
            return Stop("the account does not own its inbound side")
        if account.session_state == SessionState.EXPIRED:
            return Stop("its session expired")
        if not self._context.channels:
            return Stop(NO_HANDOVER)
        if not account.cursor and not self._said_empty:
            log.info(
                "account %s: no poll recorded yet; polling with an empty cursor, which the "
                "platform answers with what no poll has acknowledged",
                self.account_id,
            )
            self._said_empty = True
        client = self._context.clients.get(
            account_id=self.account_id,
            token=account.token,
            token_version=account.token_version,
            base_url=account.base_url,
        )
        try:
            reply = client.get_updates(
                cursor=account.cursor,
                timeout_seconds=self._hold_seconds + settings.http_timeout_seconds,
            )
        except TransportError as exc:
            return self._failed(str(exc))
        verdict = classify(reply.answer, used_context_token=False)
        if verdict.outcome == AttemptOutcome.SESSION_EXPIRED:
            return self._expired(account, verdict.reason)
        if verdict.outcome != AttemptOutcome.ACCEPTED:
            return self._failed(verdict.reason)
        try:
            updates = read_updates(reply.payload)
        except ValueError as exc:
            return self._failed(f"an answer that cannot be read: {exc}")
        if updates.longpolling_timeout_ms is not None:
            self._hold_seconds = updates.longpolling_timeout_ms / 1000
        now = utcnow()
        items = [read_item(raw, received_at=now) for raw in updates.items]
        if not self._holds_lease():
            return Stop("it lost its lease while the poll was in flight; nothing recorded")
        try:
            with session_scope(self._context.engine) as db:
                owned = db.scalar(select(Account.owns_inbound).where(Account.id == self.account_id))
                if not owned:
                    return Stop(
                        "the account gave up its inbound side while the poll was in flight; "
                        "nothing recorded"
                    )
                record = record_poll(
                    db,
                    account_id=self.account_id,
                    items=items,
                    started_from=account.cursor,
                    cursor=updates.cursor,
                    channels=self._context.channels,
                    received_at=now,
                    dedupe_seconds=settings.inbound_dedupe_seconds,
                    deadline_seconds=settings.delivery_deadline_seconds,
                    claim_seconds=self._context.claim_seconds,
                    host=self._context.host,
                )
        except LedgerError as exc:
            # The cursor stayed: the platform hands the same messages out again.
            return Wait(settings.outage_retry_seconds, str(exc))
        if record is None:
            return Stop("another poller recorded a poll since this one started")
        self._failures = 0
        self._after_commit(record, self._session_valid(account, now))
        return Polled(record)

    def _session_valid(self, account: _Account, now: dt.datetime) -> bool:
        """A poll that answered proves the session: say so in the ledger, at most every
        :data:`VALIDATED_REFRESH_SECONDS` (its own small transaction). True when the
        account had been marked expired meanwhile (its parked sends can go)."""
        due = self._validated_at is None or (now - self._validated_at).total_seconds() >= (
            VALIDATED_REFRESH_SECONDS
        )
        if not due and account.session_state == SessionState.OK:
            return False
        try:
            with session_scope(self._context.engine) as db:
                healed = accounts.mark_session_ok(
                    db,
                    self.account_id,
                    now=now,
                    token_version=account.token_version,
                    refresh_seconds=VALIDATED_REFRESH_SECONDS,
                )
        except LedgerError:
            return False  # only a mark: the next poll tries again
        self._validated_at = now
        return healed

    def _load(self) -> _Account | None:
        with session_scope(self._context.engine, readonly=True) as db:
            row = db.execute(
                select(
                    Account.owns_inbound,
                    Account.session_state,
                    Account.token,
                    Account.token_version,
                    Account.base_url,
                ).where(Account.id == self.account_id)
            ).one_or_none()
            if row is None:
                return None
            return _Account(*row, cursor=inbox.cursor_of(db, self.account_id))

    def _failed(self, why: str) -> Wait:
        self._failures += 1
        return Wait(min(MAX_POLL_BACKOFF_SECONDS, self._context.backoff(self._failures)), why)

    def _expired(self, account: _Account, reason: str) -> Stop | Wait:
        try:
            with session_scope(self._context.engine) as db:
                expired, first = accounts.mark_session_expired(
                    db,
                    self.account_id,
                    token_version=account.token_version,
                    reason=reason,
                    now=utcnow(),
                )
        except LedgerError as exc:
            return Wait(self._context.settings.outage_retry_seconds, str(exc))
        if not expired:
            return self._failed("the token was rotated while the poll was in flight")
        if first:
            log.error(
                "account %s: %s (seen by the inbound poller); its sends park and polling stops "
                "until the session is valid again",
                self.account_id,
                reason,
            )
        return Stop("its session expired")

    def _after_commit(self, record: PollRecord, session_healed: bool) -> None:
        if record.received or record.duplicates or record.malformed:
            log.info(
                "account %s: %d inbound message(s) recorded, %d copies, %d malformed",
                self.account_id,
                record.received,
                record.duplicates,
                record.malformed,
            )
        self._after_poll(self.account_id, replace(record, session_healed=session_healed))


def wake_readers(
    *, engine: Engine, publisher: Publisher, account_id: str, record: PollRecord
) -> None:
    """After the commit of a poll: the chats of the readers who wrote go now (and
    those parked on the session, had it been marked expired). Never raises for the
    ledger: the reconciler wakes what this could not."""
    for peer in record.peers:
        wake_reader(engine, publisher, account_id=account_id, peer_id=peer)
    if record.session_healed:
        wake_parked(engine, publisher, account_id, reason=ParkReason.SESSION)
