"""Sending one chunk: the heart of the pipeline.

A send task calls :meth:`SendPipeline.process` with a chunk id, the generation it
was published with and its account, and gets back
:class:`~delivery.pipeline.results.Done` or :class:`~delivery.pipeline.results.Wait`.

A task is published only when its chunk got the account's next slot (see
:mod:`delivery.pipeline.dispatch`), to run at the slot's time. So a run is:

1. **The gate** (:meth:`~delivery.ratelimit.gate.AccountGate.acquire`): the slot is
   this task's, and it takes the send lock. Early, or the account cools down: run
   again at the slot (it keeps it). Not its slot (a task published around the line,
   a stale one): its chunk waits in the line, or joins it, and the task ends.
2. **One turn** (:mod:`delivery.pipeline.attempt`): admit, call, record.
3. **The hand-off** (:meth:`~delivery.ratelimit.gate.AccountGate.handoff`), whatever
   happened: the lock is released, the rate moves on from the answer, the parts the
   turn armed join the line, and the next slot is reserved for the next part, whose
   task is published. A paced part is one task run; nothing polls.

Example::

    match pipeline.process(chunk_id, generation, account_id):
        case Wait(seconds=seconds):
            raise task.retry(countdown=seconds)
"""

from __future__ import annotations

import logging

from delivery.errors import LedgerError, LimiterUnavailable
from delivery.ledger import accounts, outbox
from delivery.ledger.db import session_scope
from delivery.ledger.states import OPEN_MESSAGE_STATES, ChunkStatus
from delivery.ledger.types import utcnow
from delivery.pipeline.attempt import AttemptRunner, Turn
from delivery.pipeline.context import PipelineContext
from delivery.pipeline.dispatch import offers_of
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.ratelimit.gate import Decision, Offer, Pick
from delivery.ratelimit.learning import raised
from delivery.settings import PACE_RECOVER_FACTOR

__all__ = ["SendPipeline"]

log = logging.getLogger(__name__)


class SendPipeline:
    """Sends chunks for one worker process. See the module docstring for the steps."""

    def __init__(self, ctx: PipelineContext) -> None:
        self._ctx = ctx
        self._attempts = AttemptRunner(ctx)

    def process(
        self, chunk_id: int, generation: int | None = None, account_id: str | None = None
    ) -> StepResult:
        """Try to send one chunk; see the module docstring.

        ``generation`` and ``account_id`` None: a task published before the line
        existed; the ledger says which account it is of.
        """
        ctx = self._ctx
        try:
            return self._process(chunk_id, generation, account_id)
        except LimiterUnavailable as exc:
            wait = ctx.spread(ctx.settings.outage_retry_seconds)
            log.warning("chunk %s waits %.1fs: %s (nothing sent)", chunk_id, wait, exc)
            try:
                return ctx.postpone(chunk_id, generation, wait, "limiter unavailable")
            except LedgerError:
                return Wait(wait, "limiter and ledger unavailable")
        except LedgerError as exc:
            wait = ctx.spread(ctx.settings.outage_retry_seconds)
            log.error("chunk %s waits %.1fs: %s", chunk_id, wait, exc)
            return Wait(wait, "ledger unavailable")

    def _process(self, chunk_id: int, generation: int | None, account_id: str | None) -> StepResult:
        if account_id is None or generation is None:
            return self._join(chunk_id, generation)
        decision = self._ctx.gate.acquire(account_id, ticket=str(chunk_id), generation=generation)
        self._publish(decision.pick, account_id)
        if decision.granted:
            return self._turn(chunk_id, generation, account_id, decision)
        if decision.waits:
            return Wait(self._ctx.on_time(decision.wait_seconds), decision.reason)
        if decision.unknown:
            return self._join(chunk_id, generation)
        return Done(f"chunk {chunk_id} {decision.reason}")

    def _join(self, chunk_id: int, generation: int | None) -> StepResult:
        """A task its account's line does not know (published around it, or Redis lost
        it): look at the ledger, offer the chunk to its line, and go if its slot is now."""
        ctx = self._ctx
        with session_scope(ctx.engine, readonly=True) as db:
            look = outbox.look(db, chunk_id, lock=False)
        if look is None:
            return Done(f"chunk {chunk_id} is not in the ledger")
        if generation is not None and look.generation != generation:
            return Done(f"chunk {chunk_id}: a newer task holds it")
        if look.chunk_status != ChunkStatus.PENDING or look.message_status not in (
            OPEN_MESSAGE_STATES
        ):
            return Done(f"chunk {chunk_id} already {look.chunk_status}")
        if look.parked_on is not None:
            return Done(f"chunk {chunk_id} is parked, waiting for its {look.parked_on}")
        due_in = max(0.0, (look.next_attempt_at - utcnow()).total_seconds())
        offer = Offer(str(chunk_id), look.generation, look.order, due_in)
        pick = ctx.gate.offer(look.account_id, [offer])
        if pick is not None and pick.ticket != str(chunk_id):
            self._publish(pick, look.account_id)
            return Done(f"chunk {chunk_id} waits in the account's line")
        # Its slot is now, later, or reserved already (for this task, or another of it)
        decision = ctx.gate.acquire(
            look.account_id, ticket=str(chunk_id), generation=look.generation
        )
        self._publish(decision.pick, look.account_id)
        if decision.granted:
            return self._turn(chunk_id, look.generation, look.account_id, decision)
        if decision.waits:
            return Wait(ctx.on_time(decision.wait_seconds), decision.reason)
        return Done(f"chunk {chunk_id} {decision.reason}")

    def _turn(
        self, chunk_id: int, generation: int, account_id: str, decision: Decision
    ) -> StepResult:
        """The slot is this task's: take the turn, then hand the slot on, whatever happened."""
        turn = Turn(Done(f"chunk {chunk_id}: the turn failed"))
        try:
            turn = self._attempts.run(
                chunk_id,
                generation,
                suspects_held=decision.suspects,
                lesson_pending=decision.lesson_pending,
            )
        finally:
            self._hand_off(account_id, decision.token, turn)
        return turn.result

    def _hand_off(self, account_id: str, token: str | None, turn: Turn) -> None:
        ctx = self._ctx
        try:
            handoff = ctx.gate.handoff(
                account_id,
                token=token,
                answered=turn.called,
                accepted=turn.accepted,
                learned_per_minute=turn.pace_per_minute,
                offers=offers_of(turn.offers),
            )
        except LimiterUnavailable as exc:
            # The lock expires by itself; what the turn armed goes as tasks of its own.
            log.warning("account %s: slot not handed on (%s)", account_id, exc)
            ctx.publisher(turn.offers)
            return
        self._publish(handoff.pick, account_id)
        if (
            turn.accepted
            and turn.pace_per_minute is not None
            and handoff.run >= ctx.settings.pace_recover_sends
        ):
            self._recover(account_id, turn.pace_per_minute)

    def _recover(self, account_id: str, ceiling: float) -> None:
        """A long run at the learned ceiling without a refusal: it rises."""
        ctx = self._ctx
        configured = ctx.gate.rate.per_minute
        higher = raised(
            per_minute=ceiling, configured_per_minute=configured, factor=PACE_RECOVER_FACTOR
        )
        try:
            with session_scope(ctx.engine) as db:
                accounts.raise_rate(db, account_id, per_minute=higher, proven=ceiling, now=utcnow())
            ctx.gate.reset_run(account_id)
        except (LedgerError, LimiterUnavailable) as exc:
            log.warning("account %s: ceiling not raised (%s); next time", account_id, exc)
            return
        log.warning(
            "account %s: %d sends at %.1f/min without a refusal; its ceiling rises to %s",
            account_id,
            ctx.settings.pace_recover_sends,
            ceiling,
            f"{higher:.1f}/min" if higher is not None else "the configured rate",
        )

    def _publish(self, pick: Pick | None, account_id: str) -> None:
        if pick is not None:
            self._ctx.tasks(pick, account_id)
