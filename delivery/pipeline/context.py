"""What the send pipeline is handed, and the waits and wakes its steps share.

Everything arrives here once, from :mod:`delivery.runtime`: the engine, the
account gate, the HTTP clients, the publisher (armed chunks to their lines) and
the task publisher (a slot's task), the answer stash, the settings. Nothing under
it reaches for the global settings or the Celery app.

Example::

    ctx = PipelineContext(engine=engine, gate=gate, clients=clients, publisher=lines,
                          tasks=publish, stash=stash, ..., settings=settings,
                          backoff=backoff, host="w-1")
    ctx.spread(30.0)          # a shared wait, spread out: 30.05 .. 33.0
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from delivery.errors import LedgerError
from delivery.ilink.pool import ClientPool
from delivery.ledger import outbox
from delivery.ledger.db import session_scope
from delivery.ledger.states import ParkReason
from delivery.ledger.types import utcnow
from delivery.pipeline.dispatch import Publisher, TaskPublisher, wake_conversations, wake_parked
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.pipeline.stash import AnswerStash
from delivery.policy.timing import spread_seconds
from delivery.ratelimit.gate import AccountGate
from delivery.ratelimit.suspects import RefusalProbe
from delivery.sessions.trials import TrialPasses
from delivery.settings import Settings

__all__ = ["ON_TIME_SECONDS", "RETRY_SOON_SECONDS", "PipelineContext", "ReaderAlert"]

log = logging.getLogger(__name__)

RETRY_SOON_SECONDS = 0.05  # a stale context token is dropped and the chunk retried at once
ON_TIME_SECONDS = 0.003  # a task this close to its time goes: never a retry for a few ms

# Tells the operator that a reader now drops the account's sends silently.
ReaderAlert = Callable[[str, str], None]


def _no_alert(account_id: str, peer_id: str) -> None:
    return None


@dataclass(frozen=True)
class PipelineContext:
    """The send pipeline's dependencies; ``backoff`` maps a chunk's transient failure
    count to a countdown in seconds (the send task builds it from its
    ``retry_backoff`` options)."""

    engine: Engine
    gate: AccountGate
    clients: ClientPool
    publisher: Publisher
    tasks: TaskPublisher
    stash: AnswerStash
    probe: RefusalProbe
    trials: TrialPasses
    settings: Settings
    backoff: Callable[[int], float]
    host: str
    rng: random.Random = field(default_factory=random.Random)
    reader_alert: ReaderAlert = _no_alert

    def spread(self, seconds: float) -> float:
        """A shared wait (an outage ends for every waiter at once), spread out."""
        return min(self.settings.max_countdown_seconds, spread_seconds(seconds, rng=self.rng))

    def on_time(self, seconds: float) -> float:
        """A wait of this task's own (its slot): exact, never zero.

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

    def wake(self, account_id: str, to_user_id: str) -> None:
        """Offer the chat's next head (after a message became final)."""
        try:
            wake_conversations(self.engine, self.publisher, [(account_id, to_user_id)])
        except LedgerError as exc:
            log.warning(
                "could not wake the next message to %s (%s); the reconciler will", to_user_id, exc
            )

    def wake_parked(self, account_id: str) -> None:
        """Offer the account's heads parked on its session (it is good again)."""
        wake_parked(self.engine, self.publisher, account_id, reason=ParkReason.SESSION)

    def reader_dropping(self, account_id: str, peer_id: str) -> None:
        """A reader now drops the account's sends silently: say so, once."""
        log.error(
            "account %s: %s took %d sends in a row without a message_id (the platform drops "
            "them silently); their messages wait until they write, or until "
            "`delivery readers clear %s %s`",
            account_id,
            peer_id,
            self.settings.reader_drops_before_hold,
            account_id,
            peer_id,
        )
        try:
            self.reader_alert(account_id, peer_id)
        except Exception:  # the operator's hook must not fail a send that was recorded
            log.exception("account %s: the alert for reader %s failed", account_id, peer_id)
