"""Sending one chunk: the heart of the pipeline.

A send task calls :meth:`SendPipeline.process` with a chunk id and gets back a
:class:`StepResult`: done, or "retry in N seconds". The steps:

1. Read the ledger. A chunk that is no longer pending, or is not the head of its
   conversation (the first pending chunk of the oldest open message from this
   account to this peer), is left alone: whoever sends the head wakes it later.
2. Past its message's deadline: dead. Not yet due (chunk gap), or its account's
   session expired: wait, without calling the platform or spending budget.
3. Ask the account gate in Redis for the send lock and a rate slot. Cooling down,
   busy or paced: wait (a paced waiter holds a reserved slot).
4. Write the attempt row (``in_flight``) and commit; call the platform with the
   chunk's fixed ``client_id``; classify the answer.
5. In one transaction: complete the attempt row and move chunk, message and
   account as :func:`delivery.policy.outcomes.decide` says.
6. After the commit: publish the next chunk (after the gap) or wake the
   conversation's next message.

Example::

    result = pipeline.process(chunk_id)
    if result.retry_in_seconds is not None:
        raise task.retry(countdown=result.retry_in_seconds)
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from delivery.errors import LedgerError, LimiterUnavailable, TransportError
from delivery.ilink.classify import classify
from delivery.ledger.context_tokens import usable_context_token
from delivery.ledger.db import session_scope
from delivery.ledger.models import Account, Chunk, Message
from delivery.ledger.states import (
    OPEN_MESSAGE_STATES,
    AttemptOutcome,
    ChunkStatus,
    SessionState,
)
from delivery.ledger.types import utcnow
from delivery.pipeline import ledger_ops as ops
from delivery.pipeline.clients import ClientPool
from delivery.pipeline.dispatch import publish_send, wake_conversations
from delivery.pipeline.outcome import Job, apply_outcome
from delivery.pipeline.snapshot import Snapshot, read_snapshot
from delivery.policy.outcomes import Decision, Step, decide
from delivery.policy.timing import cooldown_seconds, spread_seconds
from delivery.ratelimit.gate import AccountGate
from delivery.settings import Settings

__all__ = ["SendPipeline", "StepResult"]

log = logging.getLogger(__name__)

_RETRY_SOON_SECONDS = 0.05  # a stale context token is dropped and the chunk retried at once
_ON_TIME_SECONDS = 0.002  # a countdown to a reserved slot: never zero, never late


@dataclass(frozen=True)
class StepResult:
    """How a task run ended: a summary for logs and Flower, and whether to retry."""

    summary: str
    retry_in_seconds: float | None = None


class SendPipeline:
    """Sends chunks for one worker process. See the module docstring for the steps.

    ``backoff`` maps a chunk's transient failure count to a countdown in seconds
    (the send task builds it from its ``retry_backoff`` options).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        gate: AccountGate,
        clients: ClientPool,
        settings: Settings,
        backoff: Callable[[int], float],
        host: str,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._clients = clients
        self._settings = settings
        self._backoff = backoff
        self._host = host
        self._rng = rng or random.Random()

    # -- the steps -------------------------------------------------------------

    def process(self, chunk_id: int) -> StepResult:
        """Try to send one chunk; see the module docstring."""
        try:
            return self._process(chunk_id)
        except LimiterUnavailable as exc:
            wait = self._spread(self._settings.outage_retry_seconds)
            log.warning("chunk %s waits %.1fs: %s (nothing sent)", chunk_id, wait, exc)
            self._postpone_quietly(chunk_id, wait)
            return StepResult(f"limiter unavailable; retry in {wait:.1f}s", wait)
        except LedgerError as exc:
            wait = self._spread(self._settings.outage_retry_seconds)
            log.error("chunk %s waits %.1fs: %s", chunk_id, wait, exc)
            return StepResult(f"ledger unavailable; retry in {wait:.1f}s", wait)

    def _process(self, chunk_id: int) -> StepResult:
        now = utcnow()
        with session_scope(self._engine, readonly=True) as session:
            snap = read_snapshot(session, chunk_id)
        if snap is None:
            log.warning("chunk %s is not in the ledger; its task is dropped", chunk_id)
            return StepResult(f"chunk {chunk_id} not found")
        if snap.chunk_status != ChunkStatus.PENDING or snap.message_status not in (
            OPEN_MESSAGE_STATES
        ):
            return StepResult(f"chunk {chunk_id} already {snap.chunk_status}")
        if snap.head_chunk_id != chunk_id:
            return StepResult(
                f"chunk {chunk_id} waits behind message {snap.head_message_id} of its chat"
            )
        if now >= snap.deadline_at:
            return self._miss_deadline(snap, now)
        if snap.next_attempt_at > now:
            wait = self._on_time((snap.next_attempt_at - now).total_seconds())
            return StepResult(f"chunk {chunk_id} not due yet", wait)
        if snap.session_state == SessionState.EXPIRED:
            return self._wait(
                snap, self._settings.session_recheck_seconds, "the account's session expired"
            )
        decision = self._gate.acquire(snap.account_id, ticket=str(chunk_id))
        if not decision.granted:
            # A reserved slot is this task's own: come back right on it. A cooldown
            # ends for every waiter at once: spread them out.
            return self._wait(
                snap, decision.wait_seconds, decision.reason, spread=not decision.scheduled
            )
        assert decision.token is not None
        try:
            return self._attempt(snap)
        finally:
            self._release(snap.account_id, decision.token)

    def _attempt(self, snap: Snapshot) -> StepResult:
        job = self._start(snap.chunk_id)
        if isinstance(job, float):
            # Another task of this chunk recorded a wait (a backoff) meanwhile.
            return StepResult(f"chunk {snap.chunk_id} not due yet", self._on_time(job))
        if isinstance(job, str):
            if job == SessionState.EXPIRED:
                # Expired while this task queued for the lock: do not call.
                return self._wait(
                    snap, self._settings.session_recheck_seconds, "the account's session expired"
                )
            return StepResult(f"chunk {snap.chunk_id} {job}")
        result = self._call(job)
        wait = self._account_effects(job, result.outcome)
        decision = decide(
            result.outcome,
            reason=result.reason,
            failures=job.failures,
            max_failures=self._settings.max_transient_failures,
            used_context_token=job.context_token is not None,
            last_chunk=job.seq >= job.chunk_count,
        )
        return self._finish(job, result, decision, wait)

    # -- reading and waiting -----------------------------------------------------

    def _wait(self, snap: Snapshot, seconds: float, why: str, *, spread: bool = True) -> StepResult:
        wait = self._spread(seconds) if spread else self._on_time(seconds)
        with session_scope(self._engine) as session:
            ops.postpone(session, snap.chunk_id, until=utcnow() + dt.timedelta(seconds=wait))
        log.debug(
            "message %s chunk %s/%s waits %.2fs: %s",
            snap.message_id,
            snap.seq,
            snap.chunk_count,
            wait,
            why,
        )
        return StepResult(f"{why}; retry in {wait:.2f}s", wait)

    def _spread(self, seconds: float) -> float:
        """A shared wait (a cooldown ends for all its waiters at once), spread out."""
        return min(self._settings.max_countdown_seconds, spread_seconds(seconds, rng=self._rng))

    def _on_time(self, seconds: float) -> float:
        """A wait of this task's own (a reserved slot, the chunk gap): exact, never zero.

        Capped like every countdown: a task woken early just waits again.
        """
        return min(self._settings.max_countdown_seconds, max(_ON_TIME_SECONDS, seconds))

    def _postpone_quietly(self, chunk_id: int, seconds: float) -> None:
        try:
            with session_scope(self._engine) as session:
                ops.postpone(session, chunk_id, until=utcnow() + dt.timedelta(seconds=seconds))
        except LedgerError:
            pass  # then the reconciler cannot run either

    def _release(self, account_id: str, token: str) -> None:
        try:
            if not self._gate.release(account_id, token):
                log.warning(
                    "account %s: the send lock expired before the send ended "
                    "(DELIVERY_SEND_LOCK_TTL_SECONDS too short?)",
                    account_id,
                )
        except LimiterUnavailable as exc:
            log.warning("account %s: lock not released (%s); it expires by itself", account_id, exc)

    def _miss_deadline(self, snap: Snapshot, now: dt.datetime) -> StepResult:
        lock_ttl = dt.timedelta(seconds=self._settings.send_lock_ttl_seconds)
        with session_scope(self._engine) as session:
            message = session.get(Message, snap.message_id, with_for_update=True)
            if message is None or message.status not in OPEN_MESSAGE_STATES:
                return StepResult(f"message {snap.message_id} already final")
            if ops.attempt_in_flight(session, snap.chunk_id, since=now - lock_ttl):
                # Its answer decides; the deadline is looked at again after it.
                return StepResult("a send of this chunk is in flight", self._on_time(1.0))
            last = session.scalar(select(Chunk.last_outcome).where(Chunk.id == snap.chunk_id))
            reason = (
                f"not delivered by its deadline {message.deadline_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(DELIVERY_DELIVERY_DEADLINE_SECONDS); last outcome: {last or 'never tried'}"
            )
            unsent = ops.abandon_message(session, message, reason=reason, now=now)
        log.error("message %s is dead: %s; %d chunk(s) unsent", snap.message_id, reason, unsent)
        self._wake(snap.account_id, snap.to_user_id)
        return StepResult(f"message {snap.message_id} dead: deadline passed")

    # -- the attempt -------------------------------------------------------------

    def _start(self, chunk_id: int) -> Job | str | float:
        """Under the account lock: re-check, close lost attempts, write the attempt row.

        Returns the job; or why there is nothing to send (the session expired,
        the chunk was sent meanwhile by a duplicate task); or, as seconds, how
        long until the chunk is due (a duplicate task recorded a backoff).
        """
        with session_scope(self._engine) as session:
            chunk = session.get(Chunk, chunk_id, with_for_update=True)
            if chunk is None or chunk.status != ChunkStatus.PENDING:
                return "was sent meanwhile"
            due_in = (chunk.next_attempt_at - utcnow()).total_seconds()
            if due_in > _ON_TIME_SECONDS:
                return due_in
            message = chunk.message
            if message.status not in OPEN_MESSAGE_STATES:
                return f"belongs to a message that is {message.status}"
            account = session.get(Account, message.account_id)
            assert account is not None
            if account.session_state == SessionState.EXPIRED:
                return SessionState.EXPIRED
            # Only a chunk tried before can have an attempt cut off mid-call.
            lost = ops.close_lost_attempts(session, chunk_id) if chunk.attempt_count else 0
            if lost:
                log.warning(
                    "message %s chunk %s: %d earlier attempt(s) were cut off mid-call; "
                    "sending again with the same client_id %s, which the platform de-duplicates",
                    message.id,
                    chunk.seq,
                    lost,
                    chunk.client_id,
                )
            context_token = usable_context_token(
                session, account_id=account.id, peer_id=message.to_user_id
            )
            attempt = ops.start_attempt(
                session, chunk, context_token=context_token, host=self._host, now=utcnow()
            )
            return Job(
                attempt_id=attempt.id,
                attempt_no=attempt.attempt_no,
                chunk_id=chunk.id,
                seq=chunk.seq,
                chunk_count=message.chunk_count,
                failures=chunk.failure_count,
                message_id=message.id,
                account_id=account.id,
                to_user_id=message.to_user_id,
                base_url=account.base_url,
                token=account.token,
                token_version=account.token_version,
                client_id=chunk.client_id,
                text=chunk.text,
                context_token=context_token,
            )

    def _call(self, job: Job) -> ops.AttemptResult:
        client = self._clients.get(
            account_id=job.account_id,
            token=job.token,
            token_version=job.token_version,
            base_url=job.base_url,
        )
        started = time.monotonic()
        try:
            reply = client.send_text(
                to_user_id=job.to_user_id,
                client_id=job.client_id,
                text=job.text,
                context_token=job.context_token,
            )
        except TransportError as exc:
            duration_ms = int((time.monotonic() - started) * 1000)
            return ops.AttemptResult(AttemptOutcome.TRANSIENT, str(exc), None, duration_ms)
        verdict = classify(reply.answer, used_context_token=job.context_token is not None)
        return ops.AttemptResult(verdict.outcome, verdict.reason, reply.answer, reply.elapsed_ms)

    def _account_effects(self, job: Job, outcome: AttemptOutcome) -> float | None:
        """Redis side of an outcome: end a rate-limit streak, or start a cooldown.

        Returns the cooldown's time left (seconds) for a rate-limited answer.
        """
        settings = self._settings
        try:
            if outcome == AttemptOutcome.ACCEPTED:
                self._gate.succeeded(job.account_id)  # ends the streak, lets the pace climb
                return None
            if outcome != AttemptOutcome.RATE_LIMITED:
                return None
            strikes = self._gate.rate_limited(job.account_id)
            pause = cooldown_seconds(
                strikes=strikes,
                base_seconds=settings.cooldown_base_seconds,
                max_seconds=settings.cooldown_max_seconds,
                rng=self._rng,
            )
            left = self._gate.cool_down(job.account_id, pause)
        except LimiterUnavailable as exc:
            log.warning("account %s: cooldown not recorded (%s)", job.account_id, exc)
            return (
                settings.cooldown_base_seconds if outcome == AttemptOutcome.RATE_LIMITED else None
            )
        log.warning(
            "account %s rate limited (strike %d): every send of it pauses %.1fs%s",
            job.account_id,
            strikes,
            left,
            "; it now sends at half its pace and climbs back to 90% of it" if strikes == 1 else "",
        )
        return left

    def _finish(
        self,
        job: Job,
        result: ops.AttemptResult,
        decision: Decision,
        cooldown_left: float | None,
    ) -> StepResult:
        step = decision.step
        wait = self._wait_for(step, job, cooldown_left)
        with session_scope(self._engine) as session:
            applied = apply_outcome(
                session,
                job=job,
                result=result,
                decision=decision,
                wait_seconds=wait,
                settings=self._settings,
                now=utcnow(),
            )
        if applied.was_final_already:
            log.warning(
                "%s: %s, but the message had died meanwhile (deadline); it stays dead",
                job.label,
                result.reason,
            )
            return StepResult(f"{job.label}: {result.outcome}, message already final")
        self._log_attempt(job, result, step, wait)
        if applied.next_chunk_id is not None:
            publish_send(applied.next_chunk_id, countdown_seconds=applied.gap_seconds)
        if applied.message_final:
            self._wake(job.account_id, job.to_user_id)
        summary = f"{job.label} attempt {job.attempt_no}: {result.outcome} -> {step}"
        return StepResult(summary, wait)

    def _wait_for(self, step: Step, job: Job, cooldown_left: float | None) -> float | None:
        settings = self._settings
        match step:
            case Step.COOL_DOWN:
                return self._spread(cooldown_left or settings.cooldown_base_seconds)
            case Step.AWAIT_SESSION:
                return self._spread(settings.session_recheck_seconds)
            case Step.RETRY_SOON:
                return self._spread(_RETRY_SOON_SECONDS)
            case Step.BACK_OFF:
                return min(settings.max_countdown_seconds, self._backoff(job.failures + 1))
        return None

    def _log_attempt(
        self, job: Job, result: ops.AttemptResult, step: Step, wait: float | None
    ) -> None:
        then = f"; next try in {wait:.1f}s" if wait is not None else ""
        level = logging.INFO if result.outcome == AttemptOutcome.ACCEPTED else logging.WARNING
        if step == Step.DEAD:
            level = logging.ERROR
        log.log(
            level,
            "%s to %s via %s: %s in %d ms (attempt %d, %s)%s",
            job.label,
            job.to_user_id,
            job.account_id,
            result.reason,
            result.duration_ms,
            job.attempt_no,
            "message dead" if step == Step.DEAD else step.value,
            then,
        )

    def _wake(self, account_id: str, to_user_id: str) -> None:
        try:
            wake_conversations(self._engine, [(account_id, to_user_id)])
        except LedgerError as exc:
            log.warning(
                "could not wake the next message to %s (%s); the reconciler will", to_user_id, exc
            )
