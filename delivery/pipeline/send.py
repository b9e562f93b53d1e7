"""Sending one chunk: the heart of the pipeline.

A send task calls :meth:`SendPipeline.process` with a chunk id and the generation
it was published with, and gets back :class:`~delivery.pipeline.results.Done` or
:class:`~delivery.pipeline.results.Wait`. The steps:

1. Read the ledger. A task whose generation is no longer the chunk's exits (a
   newer task holds the chunk). A chunk that is no longer pending, or is parked,
   is left alone: the event a parked head waits for publishes it later.
2. Past its message's deadline: dead (a message waiting for its reader has its
   own, longer limit). Not yet due (chunk gap): wait. Its account's session
   expired, or its reader's window closed or budget spent: park (no task; the
   healed session, or the reader's next message, wakes it).
3. Ask the account gate in Redis for the send lock and a rate slot. Cooling down,
   busy or not yet its turn in the account's line: wait (it keeps its place).
4. Under the lock, one attempt (:mod:`delivery.pipeline.attempt`): claim (still
   the head of its conversation, the first pending chunk of the oldest open
   message from this account to this peer; else it steps aside, and whoever
   sends the head wakes it later), call, record the answer (never thrown away),
   publish what follows.

Example::

    match pipeline.process(chunk_id, generation):
        case Wait(seconds=seconds):
            raise task.retry(countdown=seconds)
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from delivery.errors import LedgerError, LimiterUnavailable
from delivery.ledger import attempts, outbox
from delivery.ledger.db import session_scope
from delivery.ledger.models import Chunk
from delivery.ledger.states import OPEN_MESSAGE_STATES, ChunkStatus, SessionState
from delivery.ledger.types import utcnow
from delivery.pipeline.attempt import AttemptRunner
from delivery.pipeline.context import PipelineContext
from delivery.pipeline.readers import ReaderView
from delivery.pipeline.results import Done, StepResult, Wait
from delivery.pipeline.snapshot import Snapshot, read_snapshot
from delivery.ratelimit.gate import order_key
from delivery.ratelimit.learning import learned_rate

__all__ = ["SendPipeline"]

log = logging.getLogger(__name__)


class SendPipeline:
    """Sends chunks for one worker process. See the module docstring for the steps."""

    def __init__(self, ctx: PipelineContext) -> None:
        self._ctx = ctx
        self._attempts = AttemptRunner(ctx)

    def process(self, chunk_id: int, generation: int | None = None) -> StepResult:
        """Try to send one chunk; see the module docstring.

        ``generation`` None is a task published before chunks had leases: it is
        taken as the live one.
        """
        ctx = self._ctx
        try:
            return self._process(chunk_id, generation)
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

    def _process(self, chunk_id: int, generation: int | None) -> StepResult:
        ctx = self._ctx
        now = utcnow()
        with session_scope(ctx.engine, readonly=True) as db:
            snap = read_snapshot(db, chunk_id)
        if snap is None:
            log.warning("chunk %s is not in the ledger; its task is dropped", chunk_id)
            return Done(f"chunk {chunk_id} not found")
        if generation is not None and snap.generation != generation:
            return Done(f"chunk {chunk_id}: a newer task holds it (generation {snap.generation})")
        if snap.chunk_status != ChunkStatus.PENDING or snap.message_status not in (
            OPEN_MESSAGE_STATES
        ):
            return Done(f"chunk {chunk_id} already {snap.chunk_status}")
        if snap.parked_on is not None:
            return Done(f"chunk {chunk_id} is parked, waiting for its {snap.parked_on}")
        reader = ReaderView.of(snap, settings=ctx.settings, now=now)
        if reader.waiting:
            # A message waiting for its reader is held to its own limit, not the deadline.
            if now >= reader.hold_until:
                return self._miss_deadline(snap, now, reader_waited=True)
        elif now >= snap.deadline_at:
            return self._miss_deadline(snap, now)
        if snap.next_attempt_at > now:
            return Wait(ctx.on_time((snap.next_attempt_at - now).total_seconds()), "not due yet")
        trial = snap.session_state == SessionState.EXPIRED and ctx.trials.take(
            snap.account_id, chunk_id=chunk_id
        )
        if snap.session_state == SessionState.EXPIRED and not trial:
            self._leave_line(snap)
            return ctx.park_on_session(
                chunk_id, snap.account_id, generation, until=snap.deadline_at
            )
        if reader.waiting:
            self._leave_line(snap)
            return ctx.park_on_reader(
                snap,
                chunk_id,
                generation,
                account_id=snap.account_id,
                peer_id=snap.to_user_id,
                until=reader.hold_until,
            )
        decision = ctx.gate.acquire(
            snap.account_id,
            ticket=str(chunk_id),
            order=order_key(message_id=snap.message_id, seq=snap.seq),
            weight=snap.chunk_count - snap.seq + 1,
            learned_per_minute=self._learned(snap, now),
        )
        if not decision.granted:
            # A turn in the line is this task's own: come back right on it. A cooldown
            # ends for every waiter at once: spread them out.
            wait = (
                ctx.on_time(decision.wait_seconds)
                if decision.scheduled
                else ctx.spread(decision.wait_seconds)
            )
            return ctx.postpone(chunk_id, generation, wait, decision.reason)
        assert decision.token is not None
        try:
            return self._attempts.run(
                snap, generation, trial=trial, learned_per_minute=self._learned(snap, now)
            )
        finally:
            self._release(snap.account_id, decision.token)

    def _learned(self, snap: Snapshot, now: dt.datetime) -> float | None:
        return learned_rate(
            snap.learned_rate_per_minute,
            snap.learned_at,
            now=now,
            memory_seconds=self._ctx.settings.pace_memory_seconds,
        )

    def _leave_line(self, snap: Snapshot) -> None:
        """A chunk that stops waiting gives up its place in its account's line (else
        it holds it until its grace runs out)."""
        try:
            self._ctx.gate.leave(snap.account_id, str(snap.chunk_id))
        except LimiterUnavailable as exc:
            log.debug("chunk %s: place in line not given up (%s)", snap.chunk_id, exc)

    def _release(self, account_id: str, token: str) -> None:
        try:
            if not self._ctx.gate.release(account_id, token):
                log.warning(
                    "account %s: the send lock expired before the send ended "
                    "(DELIVERY_SEND_LOCK_TTL_SECONDS too short?)",
                    account_id,
                )
        except LimiterUnavailable as exc:
            log.warning("account %s: lock not released (%s); it expires by itself", account_id, exc)

    def _miss_deadline(
        self, snap: Snapshot, now: dt.datetime, *, reader_waited: bool = False
    ) -> StepResult:
        settings = self._ctx.settings
        lock_ttl = dt.timedelta(seconds=settings.send_lock_ttl_seconds)
        with session_scope(self._ctx.engine) as db:
            if attempts.in_flight_since(db, snap.chunk_id, since=now - lock_ttl):
                # Its answer decides; the deadline is looked at again after it.
                return Wait(self._ctx.on_time(1.0), "a send of this chunk is in flight")
            last = db.scalar(select(Chunk.last_outcome).where(Chunk.id == snap.chunk_id))
            if reader_waited:
                reason = (
                    f"reader did not write within {_span(settings.reader_wait_seconds)} "
                    "(DELIVERY_READER_WAIT_SECONDS); the platform delivers only within "
                    "their reply window"
                )
            else:
                reason = (
                    f"not delivered by its deadline {snap.deadline_at:%Y-%m-%d %H:%M:%S} UTC "
                    f"(DELIVERY_DELIVERY_DEADLINE_SECONDS); last outcome: {last or 'never tried'}"
                )
            unsent = outbox.kill(db, snap.message_id, reason=reason, now=now)
        self._leave_line(snap)
        if unsent is None:
            return Done(f"message {snap.message_id} already final")
        log.error("message %s is dead: %s; %d chunk(s) unsent", snap.message_id, reason, unsent)
        self._ctx.wake(snap.account_id, snap.to_user_id)
        return Done(f"message {snap.message_id} dead: deadline passed")


def _span(seconds: float) -> str:
    """``7 days``, ``36 hours``, ``90 s``: a duration as an operator reads it."""
    if seconds >= 2 * 86_400 and seconds % 86_400 == 0:
        return f"{seconds / 86_400:g} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} s"
