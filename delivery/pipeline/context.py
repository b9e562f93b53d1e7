"""What the send pipeline is handed, and the waits and wakes its steps share.

Everything arrives here once, from :mod:`delivery.runtime`: the engine, the
account gate, the HTTP clients, the publisher, the answer stash, the settings.
Nothing under it reaches for the global settings or the Celery app.

Example::

    ctx = PipelineContext(engine=engine, gate=gate, clients=clients, publisher=publish,
                          stash=stash, settings=settings, backoff=backoff, host="w-1")
    ctx.spread(30.0)          # a cooldown's end, spread out: 30.05 .. 33.0
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from delivery.errors import LedgerError
from delivery.ilink.pool import ClientPool
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Reader
from delivery.ledger.states import ParkReason, SessionState
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import Publisher, wake_conversations, wake_parked
from delivery.pipeline.readers import ReaderFacts, ReaderView
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.pipeline.stash import AnswerStash
from delivery.policy.timing import spread_seconds
from delivery.ratelimit.gate import AccountGate
from delivery.ratelimit.suspects import RefusalProbe
from delivery.sessions.trials import TrialPasses
from delivery.settings import Settings

__all__ = ["ON_TIME_SECONDS", "RETRY_SOON_SECONDS", "PipelineContext"]

log = logging.getLogger(__name__)

RETRY_SOON_SECONDS = 0.05  # a stale context token is dropped and the chunk retried at once
ON_TIME_SECONDS = 0.002  # a countdown to a reserved slot: never zero, never late


@dataclass(frozen=True)
class _Facts:
    reader_last_inbound_at: dt.datetime | None
    reader_sends_since_inbound: int
    reader_closed_reason: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class PipelineContext:
    """The send pipeline's dependencies; ``backoff`` maps a chunk's transient failure
    count to a countdown in seconds (the send task builds it from its
    ``retry_backoff`` options)."""

    engine: Engine
    gate: AccountGate
    clients: ClientPool
    publisher: Publisher
    stash: AnswerStash
    probe: RefusalProbe
    trials: TrialPasses
    settings: Settings
    backoff: Callable[[int], float]
    host: str
    rng: random.Random = field(default_factory=random.Random)

    def spread(self, seconds: float) -> float:
        """A shared wait (a cooldown ends for all its waiters at once), spread out."""
        return min(self.settings.max_countdown_seconds, spread_seconds(seconds, rng=self.rng))

    def on_time(self, seconds: float) -> float:
        """A wait of this task's own (a reserved slot, the chunk gap): exact, never zero.

        Capped like every countdown: a task woken early just waits again.
        """
        return min(self.settings.max_countdown_seconds, max(ON_TIME_SECONDS, seconds))

    def postpone(self, chunk_id: int, generation: int | None, wait: float, why: str) -> StepResult:
        """The live task comes back in ``wait`` seconds (its lease renewed)."""
        now = utcnow()
        with session_scope(self.engine) as db:
            live = outbox.postpone(
                db,
                chunk_id,
                generation=generation,
                until=now + dt.timedelta(seconds=wait),
            )
        if not live:
            return Done(f"chunk {chunk_id}: a newer task holds it")
        return Wait(wait, why)

    def park_on_session(
        self, chunk_id: int, account_id: str, generation: int | None, *, until: dt.datetime
    ) -> StepResult:
        """Park the head while the account stays expired (until its message's
        deadline at the latest): checked under the account's row lock, so a heal
        committed meanwhile is seen (and one committed after sees the parked chunk
        and wakes it)."""
        with session_scope(self.engine) as db:
            state = db.scalar(
                select(Account.session_state).where(Account.id == account_id).with_for_update()
            )
            parked = state == SessionState.EXPIRED and outbox.park(
                db, chunk_id, generation=generation, reason=ParkReason.SESSION, until=until
            )
        if parked:
            log.debug("chunk %s parked until the session of %s heals", chunk_id, account_id)
            return Done(f"chunk {chunk_id} parked until the session of {account_id} heals")
        if state != SessionState.EXPIRED:
            return Wait(self.spread(RETRY_SOON_SECONDS), "the session healed meanwhile")
        return Done(f"chunk {chunk_id}: a newer task holds it")

    def park_on_reader(
        self,
        facts: ReaderFacts,
        chunk_id: int,
        generation: int | None,
        *,
        account_id: str,
        peer_id: str,
        until: dt.datetime,
    ) -> StepResult:
        """Park the head while its reader stays closed (until the hold limit): checked
        under the reader's row lock, so a message they sent meanwhile is seen (and
        one recorded after sees the parked chunk and wakes it)."""
        with session_scope(self.engine) as db:
            row = db.execute(
                select(Reader.last_inbound_at, Reader.sends_since_inbound, Reader.closed_reason)
                .where(Reader.account_id == account_id, Reader.peer_id == peer_id)
                .with_for_update()
            ).one_or_none()
            last_inbound_at, sends, closed_reason = row if row is not None else (None, 0, None)
            now_facts = _Facts(last_inbound_at, sends, closed_reason, facts.created_at)
            still = ReaderView.of(now_facts, settings=self.settings, now=utcnow()).waiting
            parked = still and outbox.park(
                db, chunk_id, generation=generation, reason=ParkReason.READER, until=until
            )
        if parked:
            log.info("chunk %s waits for %s to write (reply window or budget)", chunk_id, peer_id)
            return Done(f"chunk {chunk_id} waits for its reader {peer_id} to write")
        if not still:
            return Wait(self.spread(RETRY_SOON_SECONDS), "the reader wrote meanwhile")
        return Done(f"chunk {chunk_id}: a newer task holds it")

    def wake(self, account_id: str, to_user_id: str) -> None:
        """Publish the chat's next head (after a message became final)."""
        try:
            wake_conversations(
                self.engine,
                self.publisher,
                [(account_id, to_user_id)],
            )
        except LedgerError as exc:
            log.warning(
                "could not wake the next message to %s (%s); the reconciler will", to_user_id, exc
            )

    def wake_parked(self, account_id: str) -> None:
        """Publish the account's heads parked on its session (it is good again)."""
        wake_parked(
            self.engine,
            self.publisher,
            account_id,
            reason=ParkReason.SESSION,
        )
